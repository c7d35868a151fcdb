package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
)

// RINGER_QUEUES splits the queues between worker processes: a ring-only worker rings and leaves notifications
// in their queue until a notify worker takes them.
func TestRingOnlyAndNotifyOnlyWorkersEachServeTheirQueue(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	e.StartProcess("worker", "RINGER_QUEUES=ring")
	e.Device("bob", "q-bob-android", "firebase", false)
	e.Device("carol", "q-carol-android", "firebase", false)

	e.MustCall(201, "POST", "/v1/call/default/q-ring", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": []map[string]any{{"user_id": "bob"}}},
	})
	e.Eventually(15*time.Second, "bob's ring from the ring-only worker", func() bool { return len(e.FCM.MessagesTo("q-bob-android")) == 1 })

	e.MustCall(201, "POST", "/v1/call/default/q-notify", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": []map[string]any{{"user_id": "carol"}}},
	})
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	e.Eventually(15*time.Second, "the notification to wait in its queue", func() bool {
		info, err := in.GetQueueInfo(queue.QueueNotify)
		return err == nil && info.Pending == 1
	})
	if n := len(e.FCM.MessagesTo("q-carol-android")); n != 0 {
		t.Fatalf("a ring-only worker sent %d notifications", n)
	}
	e.StartProcess("worker", "RINGER_QUEUES=notify")
	e.WaitFCM("q-carol-android", 1)
}

func TestUnknownQueueInRingerQueuesStopsTheStart(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(harness.Binary(t), "worker")
	cmd.Env = append(os.Environ(), "RINGER_API_SECRET=queues-test-secret-of-at-least-32-bytes", "REDIS_URL=redis://127.0.0.1:1", "RINGER_QUEUES=ring,email")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "RINGER_QUEUES") {
		t.Fatalf("worker with RINGER_QUEUES=ring,email: err=%v, output %s", err, out)
	}
}

// A ring push goes before every watchdog tick waiting: ticks come due in bursts (Asynq moves a whole second's
// scheduled tasks at once), and a ring must not queue behind them. 5,000 ticks wait when the worker starts,
// enqueued before the ring; the ring push must arrive while ticks still wait.
func TestARingPushGoesBeforeABurstOfWatchdogTicks(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	e.Device("bob", "prio-bob", "firebase", false)
	c := queue.NewClient(e.RDB)
	t.Cleanup(func() { c.Close() })
	const ticks = 5000
	var g errgroup.Group
	g.SetLimit(64)
	past := time.Now().Add(-time.Minute)
	for i := range ticks {
		// Ticks of rings that are over: each ends at once, but they wait in line all the same.
		g.Go(func() error {
			return c.ScheduleWatch(e.Context(), queue.CallInfo{CID: "external:over"}, fmt.Sprintf("over-%d", i), past)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("schedule the ticks: %v", err)
	}
	if err := c.Ring(e.Context(), qcInfo("prio"), "prio-ring", []queue.RingMember{{UserID: "bob", EndsAt: time.Now().Add(time.Minute)}}); err != nil {
		t.Fatalf("Ring: %v", err)
	}
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	if info, err := in.GetQueueInfo(queue.QueueWatch); err != nil || info.Pending < ticks {
		t.Fatalf("watch queue before the worker starts: %+v, %v; want %d ticks pending", info, err, ticks)
	}

	e.StartProcess("worker")
	// Read the queue the moment the push is seen (WaitFCM also waits for stray extra pushes).
	if !harness.Poll(30*time.Second, time.Millisecond, func() bool { return len(e.FCM.MessagesTo("prio-bob")) > 0 }) {
		t.Fatal("no ring push within 30 s of the worker's start")
	}
	info, err := in.GetQueueInfo(queue.QueueWatch)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("when the ring push arrived, %d of %d ticks were still waiting", info.Pending, ticks)
	if info.Pending == 0 {
		t.Errorf("the ring push waited for every watchdog tick before it")
	}
	e.WaitFCM("prio-bob", 1)
	e.QuietWithin(2 * time.Minute) // the watch server's 4 slots take a while over 5,000 ticks under -race
}
