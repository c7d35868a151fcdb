package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/ringer-dev/ringer/gate"
)

// Retention keeps a completed task, and so its id, for the dedup window: enqueueing the same work again
// within it is a no-op. The ledger is the guarantee; the ids only save work. Client.SetRetention shortens it.
const (
	RingRetention   = 15 * time.Minute
	NotifyRetention = 15 * time.Minute
	// NotifyMaxRetry bounds how long a notification is retried (exponential backoff, about a day).
	NotifyMaxRetry = 20
	// ringMaxRetry is high because the ring's end, not its retry count, ends a ring task: the handler revokes
	// it once the ring is over. Ring tasks carry no Asynq Deadline on purpose: Asynq fails a task past its
	// deadline before the handler runs, so a task a dead worker held, handed back after the ring, would fail
	// its retries one by one and be archived instead of being dropped.
	ringMaxRetry = 100
	// enqueueParallel bounds concurrent enqueues of one fan-out; Asynq has no batch enqueue.
	enqueueParallel = 32
)

// Client enqueues ringer's tasks. It is safe for concurrent use.
type Client struct {
	rdb   redis.UniversalClient
	gate  *gate.Gate
	asynq *asynq.Client
	// ringRetention and notifyRetention are how long completed tasks are kept (SetRetention).
	ringRetention, notifyRetention time.Duration
	// layout picks each task's shard of its queue (SetShards).
	layout Layout
}

// NewClient returns a Client on rdb. Close releases nothing of rdb's.
func NewClient(rdb redis.UniversalClient) *Client {
	return &Client{rdb: rdb, gate: gate.New(rdb), asynq: asynq.NewClientFromRedisClient(enqueuer(rdb)),
		ringRetention: RingRetention, notifyRetention: NotifyRetention}
}

// MinRetention is the shortest SetRetention keeps completed tasks. Every task of a ring is enqueued once by
// the transition that owes it, and what keeps a push single is the ledger and the ring's delivered set (a
// repeated ring task finds its member delivered), not the id; a minute still dedups an enqueue retried by a
// client that retries its request.
const MinRetention = time.Minute

// SetRetention keeps completed tasks for d instead of RingRetention and NotifyRetention when d is shorter,
// but at least MinRetention: the calls' retention, since a task id dedups nothing once its call is gone, and
// completed tasks are most of Redis's memory under load (every ring leaves a ring, a timeout and a stop task).
// Call it before the client is used.
func (c *Client) SetRetention(d time.Duration) {
	d = max(d, MinRetention)
	c.ringRetention, c.notifyRetention = min(d, RingRetention), min(d, NotifyRetention)
}

// SetShards splits each queue over n Asynq queues (Layout), as RINGER_QUEUE_SHARDS does for ringer's own
// processes; every process enqueueing to, and every worker serving, the same Redis must use the same n.
// Call it before the client is used.
func (c *Client) SetShards(n int) { c.layout = NewLayout(n) }

// Layout is how the client's queues are split.
func (c *Client) Layout() Layout { return c.layout }

// enqueuer is the Redis client Asynq enqueues through: rdb's autopipeliner when it has one (go-redis'
// AutoPipeline, of *redis.Client and *redis.ClusterClient), else rdb. The autopipeliner sends the commands
// that goroutines issue at the same time (a ring's tasks, watchdog and timeout, and every other request's
// enqueues) as one pipeline: under load a Redis round trip, not Go, is most of an enqueue's cost
// (BENCHMARKS.md, "seven round trips a ring"), for this process and for Redis.
//
// Enqueues, and only they, may go this way: every task ringer enqueues has a deterministic id, so an enqueue
// that a retried batch runs twice is a no-op (ErrTaskIDConflict is success, see enqueue), and an enqueue
// does not need its caller's context once queued (it completes or fails within the client's read and write
// timeouts, as a plain command does). The gate scripts here and the transition scripts of calls stay on rdb.
// The autopipeliner belongs to rdb, which closes it when it is closed. go-redis marks AutoPipeline
// experimental (v9.23, pinned in go.mod): a go-redis upgrade must re-run the e2e, ops and fault tests.
func enqueuer(rdb redis.UniversalClient) redis.UniversalClient {
	var (
		ap  *redis.AutoPipeliner
		err error
	)
	switch c := rdb.(type) {
	case *redis.Client:
		ap, err = c.AutoPipeline()
	case *redis.ClusterClient:
		ap, err = c.AutoPipeline()
	default:
		return rdb
	}
	if err != nil {
		return rdb // an invalid AutoPipelineOptions in rdb's options: enqueue one command at a time
	}
	return ap
}

// Close is for symmetry with Asynq; rdb stays open for its owner.
func (c *Client) Close() error { return nil }

// RingMember is one member to ring and when its ring ends.
type RingMember struct {
	UserID string
	EndsAt time.Time
}

// ErrRingLive is returned by Ring when another ring of the call is still live.
var ErrRingLive = gate.ErrRingLive

// Ring opens the ring gate for members and enqueues one ring task each. It is for call services that keep
// their own call state; ringer's own calls package opens the gate in its transition scripts and uses
// EnqueueRing. Calling it twice with the same ringID rings nobody twice. The gate lapses the retention after
// the last member's ring ends: a call service's calls are its own to keep, but their gates are ringer's.
func (c *Client) Ring(ctx context.Context, call CallInfo, ringID string, members []RingMember) error {
	if len(members) == 0 {
		return nil
	}
	gm := make([]gate.Member, len(members))
	for i, m := range members {
		gm[i] = gate.Member{ID: m.UserID, EndsAt: m.EndsAt}
	}
	if err := c.gate.Open(ctx, call.CID, ringID, c.ringRetention, gm); err != nil {
		return fmt.Errorf("ring %s: %w", call.CID, err)
	}
	return c.EnqueueRing(ctx, call, ringID, members)
}

// StopRinging takes members out of the ring gate and enqueues their stop push (event: call.accepted,
// call.rejected, call.ended, or call.missed for a missed-call alert). For call services that keep their own
// state; ringer's calls package closes the gate in its scripts and uses EnqueueStop.
func (c *Client) StopRinging(ctx context.Context, call CallInfo, ringID, event string, members []string) error {
	if len(members) == 0 {
		return nil
	}
	if _, err := c.gate.Close(ctx, call.CID, ringID, members); err != nil {
		return fmt.Errorf("stop ringing %s: %w", call.CID, err)
	}
	return c.EnqueueStop(ctx, call, ringID, event, members)
}

// EnqueueRing enqueues one ring task per member, and the ring's watchdog; the caller has already put the
// members in the ring gate.
func (c *Client) EnqueueRing(ctx context.Context, call CallInfo, ringID string, members []RingMember) error {
	start := time.Now()
	now := start.UnixMilli()
	// The watchdog's first two ticks are two more independent enqueues: jobs 0 and 1 of the fan-out, issued
	// with the ring tasks (and pipelined with them, see enqueuer) rather than a round trip before them. The
	// first tick comes while the ring's pushes are in flight, when a worker is likeliest to die holding one,
	// and it may die holding the tick too: the second then goes on with the watch (the worker's HandleWatch).
	// The second is an ordinary tick: marked first, it would schedule a third whatever it read.
	return c.fanOut(ctx, len(members)+2, func(ctx context.Context, i int) error {
		if i < 2 {
			return c.scheduleWatch(ctx, call, ringID, start.Add(time.Duration(i)*WatchInterval), i == 0)
		}
		m := members[i-2]
		payload, err := json.Marshal(RingTask{Call: call, RingID: ringID, Member: m.UserID, EndsAt: m.EndsAt.UnixMilli(), EnqueuedAt: now})
		if err != nil {
			return err
		}
		return c.enqueue(ctx, asynq.NewTask(TypeRing, payload),
			c.in(QueueRing, RingTaskID(ringID, m.UserID)),
			asynq.MaxRetry(ringMaxRetry), asynq.Retention(c.ringRetention))
	})
}

// EnqueueStop enqueues one stop task per member; the gate is already closed for them. Their pending ring
// tasks are left in the queue on purpose: Inspector.DeleteTask scans the whole pending list (an LREM, whose
// cost grows with the backlog and is paid per member, on the Redis every ring shares; BENCHMARKS.md, "an
// O(backlog) delete per accept", has the figure) while a ring task that runs anyway finds its member out of
// the gate and revokes itself at once (ARCHITECTURE.md, invariants 4 and 8).
func (c *Client) EnqueueStop(ctx context.Context, call CallInfo, ringID, event string, members []string) error {
	return c.fanOut(ctx, len(members), func(ctx context.Context, i int) error {
		m := members[i]
		payload, err := json.Marshal(StopTask{Call: call, RingID: ringID, Member: m, Event: event})
		if err != nil {
			return err
		}
		return c.enqueue(ctx, asynq.NewTask(TypeStop, payload),
			c.in(QueueRing, StopTaskID(ringID, m)),
			asynq.MaxRetry(NotifyMaxRetry), asynq.Retention(c.ringRetention))
	})
}

// NotifyBatch is how many members one notification task serves.
const NotifyBatch = 100

// Notify enqueues the notification (event: call.notification) of members, NotifyBatch members a task. The
// same notifyID with the same members enqueues nothing twice.
func (c *Client) Notify(ctx context.Context, call CallInfo, notifyID, event string, members []string) error {
	return c.NotifyBatches(ctx, call, notifyID, event, members, 0, NotifyTasks(len(members)))
}

// NotifyTasks is how many tasks Notify makes of n members.
func NotifyTasks(n int) int { return (n + NotifyBatch - 1) / NotifyBatch }

// NotifyBatches enqueues the tasks numbered from to to-1 of Notify's for members: its notification in parts,
// for a caller with something to do before each part. The parts of one notifyID make the tasks Notify makes.
func (c *Client) NotifyBatches(ctx context.Context, call CallInfo, notifyID, event string, members []string, from, to int) error {
	if from < 0 || to > NotifyTasks(len(members)) || from > to {
		return fmt.Errorf("notify %s: batches %d to %d of %d members", call.CID, from, to, len(members))
	}
	return c.fanOut(ctx, to-from, func(ctx context.Context, j int) error {
		i := from + j
		batch := members[i*NotifyBatch : min((i+1)*NotifyBatch, len(members))]
		payload, err := json.Marshal(NotifyTask{Call: call, NotifyID: notifyID, Batch: i, Members: batch, Event: event})
		if err != nil {
			return err
		}
		return c.enqueue(ctx, asynq.NewTask(TypeNotify, payload),
			c.in(QueueNotify, NotifyTaskID(notifyID, i)),
			asynq.MaxRetry(NotifyMaxRetry), asynq.Retention(c.notifyRetention))
	})
}

// WatchInterval is the period of a ring's watchdog while a push is undelivered. One second: Asynq keeps
// scheduled tasks by whole seconds (a task's score is its Unix second) and moves them all at the start of
// it, so ticks less than a second apart would come due together: more work for no earlier rescue.
const WatchInterval = time.Second

// WatchTickAt is when watchdog tick `tick` comes due: ticks are numbered by the WatchInterval since the epoch.
func WatchTickAt(tick int64) time.Time { return time.UnixMilli(tick * WatchInterval.Milliseconds()) }

// ScheduleWatch schedules the ring's watchdog tick that follows `after`.
func (c *Client) ScheduleWatch(ctx context.Context, call CallInfo, ringID string, after time.Time) error {
	return c.scheduleWatch(ctx, call, ringID, after, false)
}

// scheduleWatch is ScheduleWatch; first marks the ring's first tick (WatchTask.First).
func (c *Client) scheduleWatch(ctx context.Context, call CallInfo, ringID string, after time.Time, first bool) error {
	tick := after.UnixMilli()/WatchInterval.Milliseconds() + 1
	payload, err := json.Marshal(WatchTask{Call: call, RingID: ringID, Tick: tick, First: first})
	if err != nil {
		return err
	}
	if err := c.enqueue(ctx, asynq.NewTask(TypeWatch, payload),
		c.in(QueueWatch, WatchTaskID(ringID, tick)), asynq.ProcessAt(WatchTickAt(tick)),
		asynq.MaxRetry(3), asynq.Retention(time.Minute)); err != nil {
		return fmt.Errorf("schedule watchdog of ring %s: %w", ringID, err)
	}
	return nil
}

// Rescue enqueues member's ring push again after its worker died holding it; bucket bounds it to one task per
// bucket. The ledger keeps devices that already got it from getting it twice.
func (c *Client) Rescue(ctx context.Context, call CallInfo, ringID string, m RingMember, bucket int64) error {
	payload, err := json.Marshal(RingTask{Call: call, RingID: ringID, Member: m.UserID, EndsAt: m.EndsAt.UnixMilli(), EnqueuedAt: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	return c.enqueue(ctx, asynq.NewTask(TypeRing, payload),
		c.in(QueueRing, RescueTaskID(ringID, m.UserID, bucket)),
		asynq.MaxRetry(ringMaxRetry), asynq.Retention(c.ringRetention))
}

// ScheduleTimeout enqueues the task that settles a ring at `at`: the ring's end when ringEnd, else an earlier
// per-member deadline.
func (c *Client) ScheduleTimeout(ctx context.Context, cid, ringID string, at time.Time, ringEnd bool) error {
	payload, err := json.Marshal(TimeoutTask{CID: cid, RingID: ringID, At: at.UnixMilli()})
	if err != nil {
		return err
	}
	err = c.enqueue(ctx, asynq.NewTask(TypeTimeout, payload),
		c.in(QueueRing, TimeoutTaskID(ringID, at.UnixMilli(), ringEnd)),
		asynq.ProcessAt(at), asynq.MaxRetry(ringMaxRetry), asynq.Retention(c.ringRetention))
	if err != nil {
		return fmt.Errorf("schedule timeout of ring %s at %s: %w", ringID, strconv.FormatInt(at.UnixMilli(), 10), err)
	}
	return nil
}

// ScheduleReminder schedules the reminder of call cid for its starts_at at `at` (at once when at has passed),
// on the notify queue: a reminder is a regular push and must never take a ring's slot. Asynq keeps it in its
// scheduled set, in Redis, so it survives restarts; ReminderTaskID keeps a repeated schedule single.
func (c *Client) ScheduleReminder(ctx context.Context, cid string, startsAt, at time.Time) error {
	payload, err := json.Marshal(ReminderTask{CID: cid, StartsAt: startsAt.UnixMilli()})
	if err != nil {
		return err
	}
	err = c.enqueue(ctx, asynq.NewTask(TypeReminder, payload),
		c.in(QueueNotify, ReminderTaskID(cid, startsAt.UnixMilli())),
		asynq.ProcessAt(at), asynq.MaxRetry(NotifyMaxRetry), asynq.Retention(c.notifyRetention))
	if err != nil {
		return fmt.Errorf("schedule reminder of %s at %s: %w", cid, at.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// place is where a task goes: the shard of its queue that its id picks, under that id.
type place struct{ queue, id string }

// in places the task with id taskID in its shard of queue base.
func (c *Client) in(base, taskID string) place { return place{c.layout.For(base, taskID), taskID} }

func (c *Client) enqueue(ctx context.Context, t *asynq.Task, at place, opts ...asynq.Option) error {
	opts = append(opts, asynq.Queue(at.queue), asynq.TaskID(at.id))
	_, err := c.asynq.EnqueueContext(ctx, t, opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil // already enqueued: the deterministic id did its job
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	return nil
}

// fanOut runs fn for 0..n-1 with bounded parallelism and returns the first error.
func (c *Client) fanOut(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	if n == 1 {
		return fn(ctx, 0)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(enqueueParallel)
	for i := 0; i < n; i++ {
		g.Go(func() error { return fn(ctx, i) })
	}
	return g.Wait()
}
