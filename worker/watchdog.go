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
// a ring lasts seconds. So while the ring lasts, every WatchInterval:
//   - it schedules its next tick first, so a worker dying during this one does not end the watch;
//   - it settles members whose ring time has passed, in case the timeout task died with its worker;
//   - it re-enqueues the ring push of every member still ringing whose push is undelivered, whose lease has
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
	tickAt := time.UnixMilli(task.Tick * queue.WatchInterval.Milliseconds())
	if err := w.cfg.Queue.ScheduleWatch(ctx, task.Call, task.RingID, tickAt); err != nil {
		return err
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
	if due {
		if err := w.cfg.Calls.Expire(ctx, cid, task.RingID); err != nil {
			return fmt.Errorf("watch ring %s: expire: %w", task.RingID, err)
		}
	}
	if len(live) == 0 {
		return nil
	}
	pipe = w.cfg.Redis.Pipeline()
	names := make([]any, len(live))
	leases := make([]string, len(live))
	atFields := make([]string, len(live))
	for i, m := range live {
		names[i] = m.UserID
		leases[i] = queue.LeaseKey(cid, task.RingID, m.UserID)
		atFields[i] = "at:" + m.UserID
	}
	deliveredCmd := pipe.SMIsMember(ctx, queue.DeliveredKey(cid, task.RingID), names...)
	leaseCmds := make([]*redis.StringCmd, len(live))
	for i, k := range leases {
		leaseCmds[i] = pipe.Get(ctx, k) // one GET each: on a cluster the leases share the call's slot anyway
	}
	atCmd := pipe.HMGet(ctx, queue.RingKey(cid), atFields...)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("watch ring %s: %w", task.RingID, err)
	}
	delivered := deliveredCmd.Val()
	at := atCmd.Val()
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

func parseMs(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
