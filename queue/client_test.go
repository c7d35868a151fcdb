package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// newClient is a queue.Client on a Redis of the test's own, and a client of that Redis to look at what the
// queue wrote.
func newClient(t *testing.T) (*queue.Client, *redis.Client) {
	t.Helper()
	rdb := testredis.Start(t).Client(t)
	return queue.NewClient(rdb), rdb
}

// A call service's ring gate is ringer's to keep: it lapses after the ring, not never.
func TestAnOutsideServicesRingGateLapsesAfterItsRing(t *testing.T) {
	c, rdb := newClient(t)
	ctx := context.Background()
	ends := time.Now().Add(time.Minute)
	call := queue.CallInfo{CID: "external:gate"}
	if err := c.Ring(ctx, call, "g1", []queue.RingMember{{UserID: "bob", EndsAt: ends}, {UserID: "carol", EndsAt: ends.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{gate.RingKey(call.CID), gate.RingingKey(call.CID)} {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl < 2*time.Minute || ttl > 2*time.Minute+queue.RingRetention {
			t.Errorf("%s lives %v (err %v), want past the last member's ring (2 min) by the task retention", k, ttl, err)
		}
	}
}

// With shards, every task goes to the shard its id picks, the same one when enqueued twice (so it is still
// enqueued once), and the ring backlog sees a ring push waiting in any shard.
func TestShardedTasksLandInTheShardTheirIDPicksOnceAndTheBacklogSeesEveryShard(t *testing.T) {
	c, rdb := newClient(t)
	c.SetShards(4)
	ctx := context.Background()
	in := asynq.NewInspectorFromRedisClient(rdb)
	// A member whose ring task falls outside shard 0, so that the backlog must look past the plain queue.
	var member string
	for i := 0; member == ""; i++ {
		if m := fmt.Sprintf("bob%d", i); c.Layout().For(queue.QueueRing, queue.RingTaskID("r1", m)) != queue.QueueRing {
			member = m
		}
	}
	shard := c.Layout().For(queue.QueueRing, queue.RingTaskID("r1", member))
	call := queue.CallInfo{CID: "default:shards"}
	members := []queue.RingMember{{UserID: member, EndsAt: time.Now().Add(time.Minute)}}
	for range 2 {
		if err := c.EnqueueRing(ctx, call, "r1", members); err != nil {
			t.Fatal(err)
		}
	}
	info, err := in.GetQueueInfo(shard)
	if err != nil || info.Pending != 1 {
		t.Fatalf("shard %s: %+v, %v; want the one ring task pending", shard, info, err)
	}
	if _, err := in.GetTaskInfo(shard, queue.RingTaskID("r1", member)); err != nil {
		t.Fatalf("ring task not in shard %s: %v", shard, err)
	}
	harness.Eventually(t, 5*time.Second, "the backlog to see the ring push in "+shard, func() bool {
		b, err := c.RingBacklog(ctx)
		return err == nil && b > 0
	})
	names, err := in.Queues()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range names {
		if queue.Base(q) == q && q != queue.QueueWatch && q != queue.QueueRing {
			t.Errorf("queue %s is not a shard of ring or watch", q)
		}
	}
}

// A ring's watchdog starts with two ticks: the worker that takes the first may die holding it as well as a ring
// push, and the second then goes on with the watch. Only the first is marked first (it schedules the next
// before it reads the ring): the second, so marked, would schedule a third tick for every ring.
func TestARingSchedulesTheFirstTwoTicksOfItsWatch(t *testing.T) {
	c, rdb := newClient(t)
	ctx := context.Background()
	before := time.Now()
	if err := c.EnqueueRing(ctx, queue.CallInfo{CID: "default:w2"}, "r2", []queue.RingMember{{UserID: "bob", EndsAt: before.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	scheduled, err := asynq.NewInspectorFromRedisClient(rdb).ListScheduledTasks(queue.QueueWatch)
	if err != nil {
		t.Fatal(err)
	}
	ticks := map[int64]bool{} // tick → marked first
	for _, ti := range scheduled {
		var w queue.WatchTask
		if err := json.Unmarshal(ti.Payload, &w); err != nil {
			t.Fatal(err)
		}
		if ti.ID != queue.WatchTaskID("r2", w.Tick) {
			t.Errorf("watch tick %d as task %s; want its own id", w.Tick, ti.ID)
		}
		ticks[w.Tick] = w.First
	}
	// The ring was enqueued within the second of before or the one after it.
	first := before.UnixMilli()/queue.WatchInterval.Milliseconds() + 1
	if _, ok := ticks[first]; !ok {
		first++
	}
	second, ok := ticks[first+1]
	if len(ticks) != 2 || !ticks[first] || !ok || second {
		t.Errorf("watch ticks %v (tick → marked first); want the two that follow the ring's start (from %d), the first marked first and the second not", ticks, first)
	}
}

// A notification enqueued in parts (NotifyBatches) makes the tasks Notify makes, each once, whatever the parts;
// a part outside the members' tasks is refused and enqueues nothing.
func TestANotificationInPartsMakesTheTasksNotifyMakes(t *testing.T) {
	c, rdb := newClient(t)
	ctx := context.Background()
	in := asynq.NewInspectorFromRedisClient(rdb)
	members := make([]string, 2*queue.NotifyBatch+1)
	for i := range members {
		members[i] = fmt.Sprintf("m%03d", i)
	}
	call := queue.CallInfo{CID: "default:parts"}
	tasks := func(notifyID string) map[string]queue.NotifyTask {
		t.Helper()
		pending, err := in.ListPendingTasks(queue.QueueNotify, asynq.PageSize(100))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]queue.NotifyTask{}
		for _, ti := range pending {
			var n queue.NotifyTask
			if err := json.Unmarshal(ti.Payload, &n); err != nil {
				t.Fatal(err)
			}
			if n.NotifyID == notifyID {
				out[ti.ID] = n
			}
		}
		return out
	}
	if err := c.Notify(ctx, call, "whole", queue.EventNotification, members); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyBatches(ctx, call, "parts", queue.EventNotification, members, 0, 4); err == nil {
		t.Errorf("a part past the members' %d tasks was enqueued", queue.NotifyTasks(len(members)))
	}
	if got := tasks("parts"); len(got) != 0 {
		t.Fatalf("a refused part enqueued %d tasks", len(got))
	}
	for _, part := range [][2]int{{1, 3}, {0, 2}, {2, 2}} { // the second part overlaps the first
		if err := c.NotifyBatches(ctx, call, "parts", queue.EventNotification, members, part[0], part[1]); err != nil {
			t.Fatalf("part %v: %v", part, err)
		}
	}
	whole, parts := tasks("whole"), tasks("parts")
	if len(whole) != 3 || len(parts) != 3 {
		t.Fatalf("%d tasks of Notify, %d of the parts; want 3 each", len(whole), len(parts))
	}
	for i := range 3 {
		w, p := whole[queue.NotifyTaskID("whole", i)], parts[queue.NotifyTaskID("parts", i)]
		if p.Batch != i || !slices.Equal(p.Members, w.Members) || w.Batch != i {
			t.Errorf("task %d: the parts' has batch %d and %d members, Notify's batch %d and %d", i, p.Batch, len(p.Members), w.Batch, len(w.Members))
		}
	}
}
