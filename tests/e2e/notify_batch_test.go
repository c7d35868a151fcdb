package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
)

// A notification is served NotifyBatch members a task; every member of every batch, the last partial one
// included, gets exactly one push per device.
func TestNotifyAcrossSeveralBatchesReachesEveryMemberOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	n := 2*queue.NotifyBatch + 37
	members := []map[string]any{}
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("m%03d", i)
		e.Device(user, "tok-"+user, "firebase", false)
		members = append(members, map[string]any{"user_id": user})
	}
	e.MustCall(201, "POST", "/v1/call/default/batched", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": members},
	})
	e.Eventually(60*time.Second, "every member's notification", func() bool { return e.FCM.Count() >= n })
	e.Quiet()
	for i := 0; i < n; i++ {
		tok := fmt.Sprintf("tok-m%03d", i)
		got := e.FCM.MessagesTo(tok)
		if len(got) != 1 || got[0].Data["type"] != "call.notification" || got[0].Data["receiver_id"] != tok[4:] {
			t.Fatalf("%s got %d pushes (%v), want one call.notification for it", tok, len(got), e.FCMTypes(tok))
		}
	}
}
