package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// One worker process serves rings and notifications (RINGER_NOTIFY_PROCESS=inline): while it drains a
// notification, a ring's push still goes out (its notification pushes give way while the ring runs), and the
// drain then finishes with every member notified once.
func TestARingGoesOutWhileTheSameWorkerDrainsANotificationAndTheDrainLosesNothing(t *testing.T) {
	t.Parallel()
	// One notify slot and a slow provider make the drain last seconds.
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_NOTIFY_PROCESS=inline", "RINGER_NOTIFY_CONCURRENCY=1"}})
	const n = 600
	members := []map[string]any{{"user_id": "alice"}}
	for i := range n {
		user := fmt.Sprintf("d%03d", i)
		e.Device(user, "tok-"+user, "firebase", false)
		members = append(members, map[string]any{"user_id": user})
	}
	e.Device("bob", "bob-android", "firebase", false)
	e.FCM.SetLatency(100 * time.Millisecond)
	e.MustCall(201, "POST", "/v1/call/default/drain", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": members},
	})
	e.Eventually(30*time.Second, "the drain under way", func() bool { return e.FCM.Count() > 0 })

	e.MustCall(201, "POST", "/v1/call/default/rung", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("alice", "bob")},
	})
	e.Eventually(30*time.Second, "bob's ring push", func() bool { return len(e.FCM.MessagesTo("bob-android")) > 0 })
	if sent := e.FCM.Count() - 1; sent >= n {
		t.Fatalf("the ring push came after all %d notifications: it waited for the drain", n)
	}

	e.Eventually(120*time.Second, "every member's notification", func() bool { return e.FCM.Count() >= n+1 })
	e.Quiet()
	for i := range n {
		tok := fmt.Sprintf("tok-d%03d", i)
		if got := e.FCMTypes(tok); len(got) != 1 || got[0] != "call.notification" {
			t.Fatalf("%s got %v, want one call.notification", tok, got)
		}
	}
	if got := e.FCMTypes("bob-android"); len(got) != 1 || got[0] != "call.ring" {
		t.Fatalf("bob got %v, want one call.ring", got)
	}
}
