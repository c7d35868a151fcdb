package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// The retry policy: a ring or stop push is tried again within its handler first (withQuickRetries), then by
// Asynq after ringRetryDelay; a notification by Asynq after notifyRetryDelay. Both honour a provider's
// Retry-After (retryAfterError).

// quickRetries are the waits, before jitter, between tries of a ring or stop push inside its handler: a
// phone must ring or stop within moments, and Asynq's own retries are only as fine as whole seconds.
var quickRetries = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}

// maxRingRetryDelay caps the quick backoff of ring and stop retries.
const maxRingRetryDelay = 2 * time.Second

// withQuickRetries runs try again after a short jittered wait while it asks to be retried, resending only
// what the ledger lacks; a longer Retry-After, or a fourth failure, goes back to Asynq.
func withQuickRetries(ctx context.Context, try func() error) error {
	err := try()
	for _, base := range quickRetries {
		var ra *retryAfterError
		if !errors.As(err, &ra) {
			return err
		}
		wait := jitter(base)
		if ra.after > time.Second {
			return err
		}
		wait = max(wait, ra.after)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		err = try()
	}
	return err
}

// retryWait is how long a retried ring push waits: the provider's Retry-After, else the longest quick retry.
func retryWait(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > 0 {
		return ra.after + 500*time.Millisecond
	}
	return maxRingRetryDelay + 500*time.Millisecond
}

// errWaitForRing is a stop that found its member's ring push still in flight: it runs again shortly, so it
// sees every device the ring reached.
var errWaitForRing = errors.New("ring push in flight")

// retryAfterError carries a provider's Retry-After to the retry delay.
type retryAfterError struct {
	after time.Duration
	err   error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

func isFailure(err error) bool { return !errors.Is(err, errWaitForRing) }

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// ringRetryDelay is quick: a ring lasts seconds, and the handler has already retried quickly itself. It
// honours Retry-After.
func ringRetryDelay(n int, err error, t *asynq.Task) time.Duration {
	if errors.Is(err, errWaitForRing) {
		return 20 * time.Millisecond
	}
	d := jitter(min(100*time.Millisecond<<min(n, 5), maxRingRetryDelay))
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > d {
		return toWholeSecond(ra.after)
	}
	return d
}

// notifyRetryDelay is Asynq's exponential backoff with jitter, at least the provider's Retry-After.
func notifyRetryDelay(n int, err error, t *asynq.Task) time.Duration {
	d := asynq.DefaultRetryDelayFunc(n, err, t)
	if n == 0 {
		d = jitter(2 * time.Second)
	}
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > d {
		d = ra.after
	}
	return toWholeSecond(d)
}

// toWholeSecond lengthens d so that now+d falls on a whole second. Asynq keeps retry times in whole seconds,
// truncated: without this a Retry-After would be cut short by up to a second.
func toWholeSecond(d time.Duration) time.Duration {
	at := time.Now().Add(d)
	if r := at.Truncate(time.Second); r.Before(at) {
		at = r.Add(time.Second)
	}
	return time.Until(at)
}
