package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
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
