package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
)

// RINGER_QUEUES splits the queues between worker processes: a ring-only worker rings and leaves notifications
// in their queue until a notify worker takes them.
func TestRingOnlyAndNotifyOnlyWorkersEachServeTheirQueue(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	e.StartProcess("worker", "RINGER_QUEUES=ring")
	e.Device("bob", "q-bob", "firebase", false)
	e.Device("carol", "q-carol", "firebase", false)

	e.MustCall(201, "POST", "/v1/call/default/q-ring", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": []map[string]any{{"user_id": "bob"}}},
	})
	e.Eventually(15*time.Second, "bob's ring from the ring-only worker", func() bool { return len(e.FCM.MessagesTo("q-bob")) == 1 })

	e.MustCall(201, "POST", "/v1/call/default/q-notify", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": []map[string]any{{"user_id": "carol"}}},
	})
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	e.Eventually(15*time.Second, "the notification to wait in its queue", func() bool {
		info, err := in.GetQueueInfo(queue.QueueNotify)
		return err == nil && info.Pending == 1
	})
	if n := len(e.FCM.MessagesTo("q-carol")); n != 0 {
		t.Fatalf("a ring-only worker sent %d notifications", n)
	}
	e.StartProcess("worker", "RINGER_QUEUES=notify")
	e.WaitFCM("q-carol", 1)
}

func TestUnknownQueueInRingerQueuesStopsTheStart(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(harness.Binary(t), "worker")
	cmd.Env = append(os.Environ(), "RINGER_API_SECRET=s", "REDIS_URL=redis://127.0.0.1:1", "RINGER_QUEUES=ring,email")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "RINGER_QUEUES") {
		t.Fatalf("worker with RINGER_QUEUES=ring,email: err=%v, output %s", err, out)
	}
}
