package e2e

import (
	"fmt"
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
	rung := users("sh-callee", callees)
	e.Android(rung...)
	e.MustCall(201, "POST", "/v1/call/default/shards-ring", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList(rung...)},
	})
	for i := range callees {
		e.WaitFCM(fmt.Sprintf("sh-callee-%d-android", i), 1)
	}
	// The caller cancels: every callee's phone gets its stop after its ring.
	e.MustCall(200, "POST", "/v1/call/default/shards-ring/reject", e.Token("alice"), map[string]any{"reason": "cancel"})
	for i := range callees {
		e.Eventually(15*time.Second, "the stop of callee "+fmt.Sprint(i), func() bool {
			return len(e.FCM.MessagesTo(fmt.Sprintf("sh-callee-%d-android", i))) == 2
		})
	}

	notify := users("sh-member", notified)
	e.Android(notify...)
	e.MustCall(201, "POST", "/v1/call/default/shards-notify", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList(notify...)},
	})
	for i := range notified {
		e.WaitFCM(fmt.Sprintf("sh-member-%d-android", i), 1)
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
	for i := range callees {
		if got := e.FCMTypes(fmt.Sprintf("sh-callee-%d-android", i)); len(got) != 2 {
			t.Errorf("callee %d got %v, want its ring and its stop once each", i, got)
		}
	}
}

// A worker serves the shards it finds in Redis beside its own: lowering RINGER_QUEUE_SHARDS, or a worker
// started with the old count, leaves no task behind in a shard nobody serves.
func TestAWorkerServesShardsItFindsInRedisWhenItStarts(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_QUEUE_SHARDS=6"}})
	const n = 300
	notify := users("old-shard", n)
	e.Android(notify...)
	e.MustCall(201, "POST", "/v1/call/default/old-shards", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList(notify...)},
	})
	e.Eventually(15*time.Second, "the notification tasks in several shards", func() bool {
		names, err := queue.KnownQueues(e.Context(), e.RDB)
		return err == nil && len(names) >= 2
	})
	e.StartProcess("worker", "RINGER_QUEUE_SHARDS=1")
	for i := range n {
		e.WaitFCM(fmt.Sprintf("old-shard-%d-android", i), 1)
	}
	e.Quiet()
}

// users names n users prefix-0 .. prefix-(n-1).
func users(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}
