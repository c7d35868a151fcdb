package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Asynq's keys for one queue (its internal/base names them; the layout is part of Asynq's stored format):
// the list of pending task ids, newest on the left (enqueue LPUSHes, dequeue RPOPLPUSHes from the right),
// and the hash of each task, whose pending_since field is the unix ns at which it became pending.
func asynqPendingKey(queue string) string    { return "asynq:{" + queue + "}:pending" }
func asynqTaskKeyPrefix(queue string) string { return "asynq:{" + queue + "}:t:" }

// oldestPendingScript answers when the oldest pending task of a queue became pending: two O(1) reads, where
// Asynq's Inspector.GetQueueInfo, which has the same figure as Latency, counts every state of the queue.
//
// KEYS[1] -> asynq:{<queue>}:pending   pending task ids, oldest at the right end
// ARGV[1] -> asynq:{<queue>}:t:        task key prefix (the task keys share the queue's slot)
//
// Returns the oldest pending task's pending_since (unix ns, as stored), or false when none is pending.
var oldestPendingScript = redis.NewScript(`
local id = redis.call('LINDEX', KEYS[1], -1)
if not id then return false end
return redis.call('HGET', ARGV[1] .. id, 'pending_since')
`)

// RingBacklog is how long the oldest task waiting in the ring queue (in any of its shards) has waited: how far
// behind ring delivery is. Zero when nothing waits.
func (c *Client) RingBacklog(ctx context.Context) (time.Duration, error) {
	var oldest time.Duration
	for _, q := range c.layout.Names(QueueRing) {
		v, err := oldestPendingScript.Run(ctx, c.rdb, []string{asynqPendingKey(q)}, asynqTaskKeyPrefix(q)).Text()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("ring backlog of %s: %w", q, err)
		}
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			// A task taken between the two reads of the script has no pending_since any more: nothing waited.
			continue
		}
		oldest = max(oldest, time.Since(time.Unix(0, ns)))
	}
	return oldest, nil
}

// ErrOverloaded is the class of OverloadedError: rings cannot be delivered in time.
var ErrOverloaded = errors.New("rings cannot be delivered in time")

// OverloadedError refuses a new ring: ring pushes already wait longer than the budget.
type OverloadedError struct {
	Backlog    time.Duration // how long the oldest ring push has waited
	Budget     time.Duration
	RetryAfter time.Duration // whole seconds, at least one
}

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("%v: ring pushes wait %v, budget %v", ErrOverloaded, e.Backlog.Round(time.Millisecond), e.Budget)
}

func (e *OverloadedError) Is(target error) bool { return target == ErrOverloaded }

// Admission refuses new rings while the ring queue is behind by more than a budget, so that every ring it
// lets in still rings in time instead of expiring in a backlog (a FIFO queue past its capacity serves only
// rings that waited longest, most of them over). Rings already accepted are never touched.
//
// Once it refuses, it admits again only when the backlog has fallen to half the budget: admitting again at the
// budget itself would keep the queue full, so that every accepted ring waits the whole budget, and would let
// each burst of admissions between two readings push the backlog past it again.
//
// The backlog is read at most once per freshness interval per process, by one caller while the others use
// the last answer, so the check costs a request nothing but a mutex. A stale reading that admits is still
// answered, and the fresh one is read beside the request rather than before it: a ring then never waits a
// round trip for its admission, and admitting for one more round trip is within the budget's slack. A stale
// refusal, or no reading yet, is read again before answering: a ring is refused only on a current reading.
// An outside call service ringing through Client.Ring can use an Admission of its own the same way.
type Admission struct {
	client *Client
	budget time.Duration
	fresh  time.Duration
	now    func() time.Time

	mu       sync.Mutex
	backlog  time.Duration
	readAt   time.Time
	reading  bool
	refusing bool // past the budget, and not yet back under half of it
}

// AdmissionFreshness is how old a backlog reading may be: a fifth of a second adds that much to the budget at
// worst, and keeps the read to five Redis commands a second per process.
const AdmissionFreshness = 200 * time.Millisecond

// maxRetryAfter caps the Retry-After of a refusal: a backlog drains in seconds once no new rings come.
const maxRetryAfter = 30 * time.Second

// NewAdmission refuses rings through c's queue while ring pushes wait longer than budget.
func NewAdmission(c *Client, budget time.Duration) *Admission {
	return &Admission{client: c, budget: budget, fresh: AdmissionFreshness, now: time.Now}
}

// AdmitRing returns nil when a new ring can be delivered in time, else an *OverloadedError. A backlog that
// cannot be read admits: the request's own Redis writes then report the trouble.
func (a *Admission) AdmitRing(ctx context.Context) error {
	backlog, refusing := a.current(ctx)
	if !refusing {
		return nil
	}
	// Once no new rings come, the backlog drains about as fast as it grew past the low watermark.
	wait := min(max((backlog-a.budget/2+time.Second-1).Truncate(time.Second), time.Second), maxRetryAfter)
	return &OverloadedError{Backlog: backlog, Budget: a.budget, RetryAfter: wait}
}

// admissionReadTimeout bounds a reading taken beside a request, which has no deadline of its own.
const admissionReadTimeout = time.Second

// current answers the backlog as last read and whether rings are refused, reading it again when the reading
// is stale and no other caller is reading it already: beside the request when the stale reading admits,
// before answering when it refuses or there is none.
func (a *Admission) current(ctx context.Context) (time.Duration, bool) {
	a.mu.Lock()
	now := a.now()
	if a.reading || (!a.readAt.IsZero() && now.Sub(a.readAt) < a.fresh) {
		b, r := a.backlog, a.refusing
		a.mu.Unlock()
		return b, r
	}
	a.reading = true
	if !a.readAt.IsZero() && !a.refusing {
		b := a.backlog
		a.mu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), admissionReadTimeout)
			defer cancel()
			a.read(ctx, now)
		}()
		return b, false
	}
	a.mu.Unlock()
	return a.read(ctx, now)
}

// read reads the backlog as of now, keeps it, and answers it with whether rings are refused.
func (a *Admission) read(ctx context.Context, now time.Time) (time.Duration, bool) {
	b, err := a.client.RingBacklog(ctx)
	if err != nil {
		b = 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.backlog, a.readAt, a.reading = b, now, false
	switch {
	case b > a.budget:
		a.refusing = true
	case b <= a.budget/2:
		a.refusing = false
	}
	return b, a.refusing
}
