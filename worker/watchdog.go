package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

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
//     each of hundreds of live rings came due in bursts that new ring pushes queued behind);
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
	pipe := w.cfg.Redis.Pipeline()
	idCmd := pipe.HGet(ctx, queue.RingKey(cid), "id")
	ringingCmd := pipe.ZRangeWithScores(ctx, queue.RingingKey(cid), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("watch ring %s: %w", task.RingID, err)
	}
	if idCmd.Val() != task.RingID || len(ringingCmd.Val()) == 0 {
		return nil // the ring is over: the watch ends
	}
	now := time.Now()
	var live []queue.RingMember
	due := false
	for _, z := range ringingCmd.Val() {
		m, _ := z.Member.(string)
		ends := time.UnixMilli(int64(z.Score))
		if !ends.After(now) {
			due = true
			continue
		}
		live = append(live, queue.RingMember{UserID: m, EndsAt: ends})
	}
	var (
		delivered []bool
		leaseCmds []*redis.StringCmd
		at        []any
	)
	if len(live) > 0 {
		pipe = w.cfg.Redis.Pipeline()
		names := make([]any, len(live))
		atFields := make([]string, len(live))
		for i, m := range live {
			names[i] = m.UserID
			atFields[i] = "at:" + m.UserID
		}
		deliveredCmd := pipe.SMIsMember(ctx, queue.DeliveredKey(cid, task.RingID), names...)
		leaseCmds = make([]*redis.StringCmd, len(live))
		for i, m := range live {
			// One GET each: on a cluster the leases share the call's slot anyway.
			leaseCmds[i] = pipe.Get(ctx, queue.LeaseKey(cid, task.RingID, m.UserID))
		}
		atCmd := pipe.HMGet(ctx, queue.RingKey(cid), atFields...)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("watch ring %s: %w", task.RingID, err)
		}
		delivered, at = deliveredCmd.Val(), atCmd.Val()
	}
	if err := w.cfg.Queue.ScheduleWatch(ctx, task.Call, task.RingID, nextWatch(task.Tick, live, delivered)); err != nil {
		return err
	}
	if due {
		if err := w.cfg.Calls.Expire(ctx, cid, task.RingID); err != nil {
			return fmt.Errorf("watch ring %s: expire: %w", task.RingID, err)
		}
	}
	bucket := now.UnixMilli() / rescueAfter.Milliseconds()
	for i, m := range live {
		if i < len(delivered) && delivered[i] {
			continue
		}
		if leaseCmds[i].Val() != "" {
			continue // a live worker sends it, or a retry waits
		}
		rungAt := parseMs(at[i])
		if rungAt == 0 || now.Sub(time.UnixMilli(rungAt)) < rescueAfter {
			continue
		}
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
	next := time.UnixMilli(tick * queue.WatchInterval.Milliseconds())
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

func parseMs(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
