package worker

import (
	"context"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
)

// ringFirst keeps rings on time in a worker that serves rings and notifications in one process, without a
// process of their own for notifications (RINGER_NOTIFY_PROCESS=inline). Go has no goroutine priorities: a
// ring's goroutines wait in the same run queue as every runnable notification goroutine, once per Redis round
// trip and provider answer. So notification pushes are admitted here, one slot a push:
//
//   - while a ring, stop, timeout or watchdog task runs, at most ringFirstFloor notification pushes are in
//     flight, so the ring's own round trips find the cores free;
//   - otherwise at most limit, which follows the scheduler: runtime/metrics reports how long runnable goroutines
//     waited for a core, and while that wait is long the limit shrinks (multiplicatively), while it is short it
//     grows back (additively), so the run queue that a ring's next dequeue or timer lands in stays short.
//
// Admission is FIFO (as golang.org/x/sync/semaphore), so no push starves. A worker serving notifications in the
// notify child (RINGER_NOTIFY_PROCESS=child) gives way the same way to the ring-side tasks of its parent, which
// tells it when it runs some (Config.RingWork there, Config.RingsElsewhere here): the child's niceness puts its
// work behind the parent's on the cores, but not the providers' answers to its pushes behind the ring's, and a
// provider (or a fake one on the same cores) busy with notification pushes answers a ring push later. A worker
// serving rings only has nothing to give way to and runs without it.
type ringFirst struct {
	mu        sync.Mutex
	here      bool // this worker runs ring-side tasks (ringTasks)
	elsewhere bool // another process's worker runs ring-side tasks
	inFlight  int  // notification pushes admitted and not yet released
	limit     int  // the admission limit while no ring work runs
	max       int
	waiters   []chan struct{}

	// followScheduler turns on the limit's following of the scheduler's latency: for a worker sharing its
	// process with rings. A niced notify child's goroutines wait for a core by design, behind everything else
	// on the machine, and would shrink its limit for nothing.
	followScheduler bool
	sched           []metrics.Sample // /sched/latencies:seconds
	lastCount       []uint64
	lastAdjust      time.Time
}

const (
	// ringFirstFloor keeps notifications moving while rings run all the time, so a ring storm does not starve
	// them.
	ringFirstFloor = 2
	// ringFirstTick is how often the limit follows the scheduler's latency, at most: it is adjusted as pushes
	// come and go, so an idle worker spends nothing on it.
	ringFirstTick = 10 * time.Millisecond
	// A tick's waits are long, and the limit shrinks, when more than ringFirstLongShare of them took
	// ringFirstTargetWait or more: a ring's push takes several round trips, each of which may wait once. A
	// lower bar keeps rings faster and costs notifications throughput, most with a slow provider, whose
	// pushes need many in flight (BENCHMARKS.md has the trade measured).
	ringFirstTargetWait = 4 * time.Millisecond
	ringFirstLongShare  = 0.05
	// ringFirstGrow is how many slots a tick with short waits adds back.
	ringFirstGrow = 4
)

func newRingFirst(max int, followScheduler bool) *ringFirst {
	return &ringFirst{
		limit: max, max: max, followScheduler: followScheduler,
		sched: []metrics.Sample{{Name: "/sched/latencies:seconds"}},
	}
}

// recentWaitLong says whether more than ringFirstLongShare of the goroutine waits for a core recorded since the
// last call were ringFirstTargetWait or longer.
func (r *ringFirst) recentWaitLong() bool {
	metrics.Read(r.sched)
	if r.sched[0].Value.Kind() != metrics.KindFloat64Histogram {
		return false
	}
	h := r.sched[0].Value.Float64Histogram()
	if len(r.lastCount) != len(h.Counts) {
		r.lastCount = make([]uint64, len(h.Counts))
		copy(r.lastCount, h.Counts)
		return false
	}
	var total, long uint64
	for i, c := range h.Counts {
		d := c - r.lastCount[i]
		r.lastCount[i] = c
		total += d
		if h.Buckets[i] >= ringFirstTargetWait.Seconds() {
			long += d
		}
	}
	return total > 0 && float64(long) > ringFirstLongShare*float64(total)
}

// followSchedulerLocked adjusts the limit to the scheduler's latency once a tick has passed since it last did.
func (r *ringFirst) followSchedulerLocked(now time.Time) {
	if !r.followScheduler || now.Sub(r.lastAdjust) < ringFirstTick {
		return
	}
	r.lastAdjust = now
	r.adjustLocked(r.recentWaitLong())
}

// adjustLocked shrinks the limit after a tick of long waits and grows it after a short one.
func (r *ringFirst) adjustLocked(long bool) {
	if long {
		r.limit = max(ringFirstFloor, r.limit*3/4)
		return
	}
	r.limit = min(r.max, r.limit+ringFirstGrow)
	r.grantLocked()
}

// admit waits for a notification push's slot; release gives it back. An error is ctx's.
func (r *ringFirst) admit(ctx context.Context) (release func(), err error) {
	r.mu.Lock()
	r.followSchedulerLocked(time.Now())
	if len(r.waiters) == 0 && r.inFlight < r.allowedLocked() {
		r.inFlight++
		r.mu.Unlock()
		return r.release, nil
	}
	ready := make(chan struct{})
	r.waiters = append(r.waiters, ready)
	r.mu.Unlock()
	select {
	case <-ready:
		return r.release, nil
	case <-ctx.Done():
		r.mu.Lock()
		defer r.mu.Unlock()
		select {
		case <-ready: // granted as ctx ended: hand the slot on
			r.inFlight--
			r.grantLocked()
		default:
			for i, w := range r.waiters {
				if w == ready {
					r.waiters = append(r.waiters[:i], r.waiters[i+1:]...)
					break
				}
			}
		}
		return nil, ctx.Err()
	}
}

func (r *ringFirst) release() {
	r.mu.Lock()
	r.followSchedulerLocked(time.Now())
	r.inFlight--
	r.grantLocked()
	r.mu.Unlock()
}

// setHere records whether this worker runs ring-side tasks (a ringTasks report).
func (r *ringFirst) setHere(busy bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.here = busy
	r.grantLocked()
}

// setElsewhere records whether another process's worker runs ring-side tasks.
func (r *ringFirst) setElsewhere(busy bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.elsewhere = busy
	r.grantLocked()
}

func (r *ringFirst) allowedLocked() int {
	if r.here || r.elsewhere {
		return min(ringFirstFloor, r.limit)
	}
	return r.limit
}

// grantLocked admits waiters, first come first served, while slots are free.
func (r *ringFirst) grantLocked() {
	allowed := r.allowedLocked()
	for len(r.waiters) > 0 && r.inFlight < allowed {
		r.inFlight++
		close(r.waiters[0])
		r.waiters = r.waiters[1:]
	}
}

// isNotification says whether the task of ctx is from the notify queue, whose pushes give way to rings.
func isNotification(ctx context.Context) bool {
	q, _ := asynq.GetQueueName(ctx)
	return queue.Base(q) == queue.QueueNotify
}

// followRingsElsewhere gives way to another process's ring-side tasks as it reports them, until it is gone.
func (w *Worker) followRingsElsewhere(busy <-chan bool) {
	for b := range busy {
		if b {
			w.cfg.Metrics.RingsElsewhere.Inc()
		}
		w.ringFirst.setElsewhere(b)
	}
	w.ringFirst.setElsewhere(false)
}

// ringTasks counts a worker's running ring-side tasks (ring, stop, timeout, watchdog) and reports when it goes
// from none to some and back: to its own ringFirst, and to Config.RingWork. Reports are made in order, under
// its lock, so none may block.
type ringTasks struct {
	mu      sync.Mutex
	running int
	report  []func(busy bool)
}

func (r *ringTasks) tell(busy bool) {
	for _, f := range r.report {
		f(busy)
	}
}

// track wraps the handler of a ring-side server.
func (r *ringTasks) track(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		r.mu.Lock()
		r.running++
		if r.running == 1 {
			r.tell(true)
		}
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.running--
			if r.running == 0 {
				r.tell(false)
			}
			r.mu.Unlock()
		}()
		return h.ProcessTask(ctx, t)
	})
}
