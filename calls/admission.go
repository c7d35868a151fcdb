package calls

import (
	"context"
	"fmt"
	"time"
)

// RingAdmitter says whether a new ring can be delivered in time (queue.Admission): nil, or an error that
// wraps queue.ErrOverloaded, which api answers 503 with Retry-After.
type RingAdmitter interface {
	AdmitRing(ctx context.Context) error
}

// SetRingAdmission makes the store refuse requests that would start a ring while a refuses them; nil admits
// every ring. Call it before the store is used.
func (s *Store) SetRingAdmission(a RingAdmitter) { s.admission = a }

// RingLimiter counts the rings each user starts (ratelimit.Limiter): nil, or an error that wraps
// ratelimit.ErrLimited, which api answers 429 with Retry-After.
type RingLimiter interface {
	AllowRing(ctx context.Context, userID string) error
}

// SetRingLimiter makes the store refuse requests that would start a ring by a user past l's rate; server
// tokens are exempt. Nil limits nobody. Call it before the store is used.
func (s *Store) SetRingLimiter(l RingLimiter) { s.limiter = l }

// admitRing is asked before anything of a ring is stored, so that a refused request leaves no trace. The
// rate is asked last, so a ring refused for overload does not count against its caller.
func (s *Store) admitRing(ctx context.Context, a Actor, cid string) error {
	if s.admission != nil {
		if err := s.admission.AdmitRing(ctx); err != nil {
			s.metrics.refused()
			return fmt.Errorf("ring %s: %w", cid, err)
		}
	}
	if s.limiter != nil && !a.Server && a.UserID != "" {
		if err := s.limiter.AllowRing(ctx, a.UserID); err != nil {
			s.metrics.rateLimited()
			return fmt.Errorf("ring %s by %s: %w", cid, a.UserID, err)
		}
	}
	return nil
}

// Retention defaults (API.md, "Configuration").
const (
	DefaultRetention = 24 * time.Hour
	DefaultMaxAge    = 7 * 24 * time.Hour
)

// SetRetention sets how long an ended call's keys are kept (retention), and how long a call that never ends
// is kept after its last transition (maxAge). Call it before the store is used.
func (s *Store) SetRetention(retention, maxAge time.Duration) {
	if retention > 0 {
		s.retention = retention
	}
	if maxAge > 0 {
		s.maxAge = maxAge
	}
}
