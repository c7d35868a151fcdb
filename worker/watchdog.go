package worker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
)

// rescueAfter is how long a member may sit in the gate with its push undelivered and no live lease before the
// watchdog enqueues its push again. It also bounds how often one member is rescued.
const rescueAfter = 1500 * time.Millisecond

// HandleWatch is one tick of a ring's watchdog (ARCHITECTURE.md: "a ring must survive a killed worker by its
// own means"). Asynq hands a dead worker's task back only after its lease and the recoverer, a minute or two;
// a ring lasts seconds. So while the ring lasts, each tick:
//   - schedules the next before it acts, so a worker dying during this one does not end the watch: the next
//     WatchInterval while a member's push is undelivered, else the first tick at or after the earliest end
//     of a member's ring (with every push delivered there is nothing to rescue, and a tick every second for
//     every live ring came due in bursts that new ring pushes queued behind: BENCHMARKS.md, "Ring under load").
//     While a push is undelivered it keeps two ticks ahead, the one after the next too: a worker dying inside
//     a tick, before it scheduled the next, would otherwise leave its ring without a watch until Asynq hands
//     the tick back, long after the ring. The ring's first two ticks are scheduled with its pushes
//     (queue.Client.EnqueueRing), and the first tick schedules the following second's before it even reads
//     the ring (the second was scheduled already: it costs a conflict);
//   - settles members whose ring time has passed, in case the timeout task died with its worker;
//   - re-enqueues the ring push of every member still ringing whose push is undelivered, whose lease has
//     lapsed (no live worker is sending it, none is waiting to retry it) and who was rung at least
//     rescueAfter ago. The ledger keeps devices that got the push from getting it twice.
func (w *Worker) HandleWatch(ctx context.Context, t *asynq.Task) error {
	var task queue.WatchTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	cid := task.Call.CID
	if task.First {
		// The first tick comes while the ring's pushes are in flight, when a worker dying with one is likeliest,
		// and this worker may be that one: dying here before the next tick is scheduled (below, after a read)
		// would end the watch until Asynq hands this tick back, long after the ring. So the next second's tick
		// goes first; when the read below picks a later one, the ring costs one tick more.
		if err := w.cfg.Queue.ScheduleWatch(ctx, task.Call, task.RingID, queue.WatchTickAt(task.Tick)); err != nil {
			return err
		}
	}
	now := time.Now()
	view, err := w.gate.Inspect(ctx, cid, task.RingID, now)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if !view.Current {
		return nil // the ring is over: the watch ends
	}
	live := make([]queue.RingMember, len(view.Live))
	delivered := make([]bool, len(view.Live))
	for i, m := range view.Live {
		live[i], delivered[i] = queue.RingMember{UserID: m.ID, EndsAt: m.EndsAt}, m.Delivered
	}
	next := nextWatch(task.Tick, live, delivered)
	if err := w.cfg.Queue.ScheduleWatch(ctx, task.Call, task.RingID, next); err != nil {
		return err
	}
	if slices.Contains(delivered, false) {
		// The tick after the next too, in case the next dies with its worker.
		following := queue.WatchTickAt(task.Tick + 1)
		if err := w.cfg.Queue.ScheduleWatch(ctx, task.Call, task.RingID, following); err != nil {
			return err
		}
	}
	if view.Due {
		if err := w.cfg.Calls.Expire(ctx, cid, task.RingID); err != nil {
			return fmt.Errorf("watch ring %s: expire: %w", task.RingID, err)
		}
	}
	bucket := now.UnixMilli() / rescueAfter.Milliseconds()
	for i, v := range view.Live {
		if v.Delivered {
			continue
		}
		if v.Leased {
			continue // a live worker sends it, or a retry waits
		}
		if v.RungAt.IsZero() || now.Sub(v.RungAt) < rescueAfter {
			continue
		}
		m := live[i]
		if err := w.cfg.Queue.Rescue(ctx, task.Call, task.RingID, m, bucket); err != nil {
			return fmt.Errorf("watch ring %s: rescue %s: %w", task.RingID, m.UserID, err)
		}
		w.cfg.Metrics.Rescues.Inc()
		w.log.Warn("ring push rescued: its worker died or it was never picked up", "cid", cid, "ring_id", task.RingID, "member", m.UserID)
	}
	return nil
}

// nextWatch is the time whose following tick (queue.ScheduleWatch) the watch of a ring takes after tick: the
// very next one while a live member's push is undelivered, else the first at or after the earliest end of a
// live member's ring.
func nextWatch(tick int64, live []queue.RingMember, delivered []bool) time.Time {
	next := queue.WatchTickAt(tick)
	if len(live) == 0 {
		return next
	}
	earliest := live[0].EndsAt
	for i, m := range live {
		if i >= len(delivered) || !delivered[i] {
			return next
		}
		if m.EndsAt.Before(earliest) {
			earliest = m.EndsAt
		}
	}
	if justBefore := earliest.Add(-time.Millisecond); justBefore.After(next) {
		return justBefore
	}
	return next
}
