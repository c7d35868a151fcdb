// Package ratelimit bounds how fast one user starts rings (API.md, "Limits on callers": RINGER_RING_RATE). It
// is a GCRA limiter per user, github.com/go-redis/redis_rate, on the same Redis as everything else, so every API
// process shares one count per user.
//
// # Keys
//
//	rate:ringer:{u:<user>}:rings   the user's GCRA state (redis_rate prefixes its keys with "rate:")
//
// The key is hash-tagged by user, as the user's devices are, so it lives in one Redis Cluster slot, and it
// lapses by itself once the user has been quiet for a period.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// DefaultRate is RINGER_RING_RATE's default: enough for anyone placing calls by hand (one every two seconds,
// with a burst of thirty), far from what ringing a thousand people a minute takes.
var DefaultRate = Rate{N: 30, Per: time.Minute}

// Rate is N rings per Per; a zero N turns the limit off.
type Rate struct {
	N   int
	Per time.Duration
}

func (r Rate) String() string {
	if r.N == 0 {
		return "0"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	return strconv.Itoa(r.N) + "/" + unit
}

// ParseRate reads a rate as RINGER_RING_RATE takes it: "30/m", "5/s", "600/h", or a plain number of rings per
// minute ("30"); "0" turns the limit off.
func ParseRate(s string) (Rate, error) {
	num, unit, hasUnit := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 {
		return Rate{}, fmt.Errorf("%q is not a rate like 30/m (rings per s, m or h) or a number of rings per minute", s)
	}
	per := time.Minute
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s":
			per = time.Second
		case "m":
			per = time.Minute
		case "h":
			per = time.Hour
		default:
			return Rate{}, fmt.Errorf("%q: the unit after / must be s, m or h", s)
		}
	}
	return Rate{N: n, Per: per}, nil
}

// ErrLimited is the class of LimitedError: the user starts rings faster than the rate allows.
var ErrLimited = errors.New("too many rings")

// LimitedError refuses a ring: its user is past the rate.
type LimitedError struct {
	Rate       Rate
	RetryAfter time.Duration // when the next ring would be allowed
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("%v: at most %s, next in %s", ErrLimited, e.Rate, e.RetryAfter)
}
func (e *LimitedError) Unwrap() error { return ErrLimited }

// Limiter counts each user's rings in Redis. It is safe for concurrent use.
type Limiter struct {
	rate    Rate
	limit   redis_rate.Limit
	limiter *redis_rate.Limiter
}

// New returns a limiter of rate on rdb; nil when the rate is off.
func New(rdb redis.UniversalClient, rate Rate) *Limiter {
	if rate.N == 0 {
		return nil
	}
	// A burst as large as the rate: a user who has not rung for a while may ring that many at once.
	return &Limiter{rate: rate, limit: redis_rate.Limit{Rate: rate.N, Burst: rate.N, Period: rate.Per}, limiter: redis_rate.NewLimiter(rdb)}
}

func key(userID string) string { return "ringer:{u:" + userID + "}:rings" }

// AllowRing counts one ring of userID: nil when it is within the rate, a *LimitedError when it is not (and then
// it is not counted). A nil Limiter allows everything.
func (l *Limiter) AllowRing(ctx context.Context, userID string) error {
	if l == nil {
		return nil
	}
	res, err := l.limiter.Allow(ctx, key(userID), l.limit)
	if err != nil {
		return fmt.Errorf("ring rate of %s: %w", userID, err)
	}
	if res.Allowed > 0 {
		return nil
	}
	return &LimitedError{Rate: l.rate, RetryAfter: max(res.RetryAfter, 0)}
}
