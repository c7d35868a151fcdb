package e2e

import (
	"testing"
	"time"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
)

// With RINGER_QUEUE_SHARDS, each queue is several Asynq queues (for a Redis Cluster, where one queue is one
// master): rings, stops and notifications spread over them, and the worker serves every one, each push once.
func TestShardedQueuesRingStopAndNotifyEveryMemberOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_QUEUE_SHARDS=4"}})
	const callees, notified = 12, 300
	rung := harness.UserIDs("sh-callee", callees)
	e.Android(rung...)
	e.MustCall(201, "POST", "/v1/call/default/shards-ring", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList(rung...)},
	})
	for _, u := range rung {
		e.WaitFCM(u+"-android", 1)
	}
	// The caller cancels: every callee's phone gets its stop after its ring.
	e.MustCall(200, "POST", "/v1/call/default/shards-ring/reject", e.Token("alice"), map[string]any{"reason": "cancel"})
	for _, u := range rung {
		e.Eventually(15*time.Second, "the stop of "+u, func() bool {
			return len(e.FCM.MessagesTo(u+"-android")) == 2
		})
	}

	notify := harness.UserIDs("sh-member", notified)
	e.Android(notify...)
	e.MustCall(201, "POST", "/v1/call/default/shards-notify", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList(notify...)},
	})
	for _, u := range notify {
		e.WaitFCM(u+"-android", 1)
	}
	names, err := queue.KnownQueues(e.Context(), e.RDB)
	if err != nil {
		t.Fatal(err)
	}
	shards := map[string]int{}
	for _, q := range names {
		shards[queue.Base(q)]++
	}
	if shards[queue.QueueRing] < 2 || shards[queue.QueueNotify] < 2 {
		t.Fatalf("queues in Redis %v: the tasks did not spread over the shards", names)
	}
	e.Quiet()
	for _, u := range rung {
		if got := e.FCMTypes(u + "-android"); len(got) != 2 {
			t.Errorf("%s got %v, want its ring and its stop once each", u, got)
		}
	}
}

// A worker serves the shards it finds in Redis beside its own: lowering RINGER_QUEUE_SHARDS, or a worker
// started with the old count, leaves no task behind in a shard nobody serves.
func TestAWorkerServesShardsItFindsInRedisWhenItStarts(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_QUEUE_SHARDS=6"}})
	const n = 300
	notify := harness.UserIDs("old-shard", n)
	e.Android(notify...)
	e.MustCall(201, "POST", "/v1/call/default/old-shards", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList(notify...)},
	})
	e.Eventually(15*time.Second, "the notification tasks in several shards", func() bool {
		names, err := queue.KnownQueues(e.Context(), e.RDB)
		return err == nil && len(names) >= 2
	})
	e.StartProcess("worker", "RINGER_QUEUE_SHARDS=1")
	for _, u := range notify {
		e.WaitFCM(u+"-android", 1)
	}
	e.Quiet()
}
