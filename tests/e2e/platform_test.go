package e2e

import (
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

func TestARingAndItsStopShareOneCollapseIDOnTheWire(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)

	ringID := ringBob(t, e, "c1", 30000)
	want := "ring-" + ringID
	if ring := e.WaitFCM("bob-android", 1)[0]; ring.CollapseKey != want {
		t.Fatalf("FCM ring collapse_key %q, want %q", ring.CollapseKey, want)
	}
	if voip := e.WaitAPNs(bobVoIP, 1)[0]; voip.CollapseID != want {
		t.Fatalf("VoIP ring apns-collapse-id %q, want %q", voip.CollapseID, want)
	}
	e.MustCall(200, "POST", "/v1/call/default/c1/accept", e.Token("bob"), nil)
	if stop := e.WaitFCM("bob-android", 2)[1]; stop.Data["type"] != "call.accepted" || stop.CollapseKey != want {
		t.Fatalf("FCM stop: type %q collapse_key %q, want call.accepted %q", stop.Data["type"], stop.CollapseKey, want)
	}
	if stop := e.WaitAPNs(bobIPhone, 1)[0]; stop.PushType != "background" || stop.CollapseID != want {
		t.Fatalf("APNs stop: push type %q apns-collapse-id %q, want background %q", stop.PushType, stop.CollapseID, want)
	}

	// A new ring of the same call is a new state: it collapses with nothing of the first.
	second := e.MustCall(200, "POST", "/v1/call/default/c1/ring", e.Token("alice"), map[string]any{"members_ids": []string{"bob"}})
	if id := second.Body["call"].(map[string]any)["ring_id"]; id == ringID {
		t.Fatalf("the second ring kept ring id %v", id)
	} else if ring := e.WaitFCM("bob-android", 3)[2]; ring.CollapseKey != "ring-"+id.(string) {
		t.Fatalf("second ring collapse_key %q, want ring-%v", ring.CollapseKey, id)
	}
}

func TestNotificationsAndMissedCallsCarryTheConfiguredLifetimeAndRingsTheirRingsEnd(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_NOTIFY_TTL=10m"}})
	e.Android("bob")
	e.Device("bob", bobIPhone, "apn", false)
	near := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -5*time.Second || d > 5*time.Second {
			t.Fatalf("%s ends at %s, want about %s", what, got, want)
		}
	}

	sent := time.Now()
	e.MustCall(201, "POST", "/v1/call/default/n1", e.Token("alice"), map[string]any{"notify": true, "data": map[string]any{"members": harness.MemberList("alice", "bob")}})
	note := e.WaitFCM("bob-android", 1)[0]
	if note.Data["type"] != "call.notification" || !note.HasTTL || note.TTL > 10*time.Minute || note.TTL < 10*time.Minute-5*time.Second {
		t.Fatalf("FCM notification: type %q ttl %v (sent %v), want call.notification with about 10m", note.Data["type"], note.TTL, note.HasTTL)
	}
	alert := e.WaitAPNs(bobIPhone, 1)[0]
	near("APNs notification's apns-expiration", alert.Expiration, sent.Add(10*time.Minute))

	sent = time.Now()
	ringID := ringBob(t, e, "m1", 1000)
	// The ring lasts a second, so its missed-call push may already follow it: wait for the ring, not for a
	// quiet moment with exactly two pushes. The exact counts are checked once the missed call is in.
	e.Eventually(15*time.Second, "bob's ring push", func() bool {
		return len(e.FCM.MessagesTo("bob-android")) >= 2 && len(e.APNs.NotificationsTo(bobIPhone)) >= 2
	})
	ring := e.FCM.MessagesTo("bob-android")[1]
	if ring.Data["type"] != "call.ring" || !ring.HasTTL || ring.TTL > time.Second {
		t.Fatalf("FCM ring: type %q ttl %v, want call.ring living no longer than its 1 s ring", ring.Data["type"], ring.TTL)
	}
	ringAlert := e.APNs.NotificationsTo(bobIPhone)[1]
	near("APNs ring's apns-expiration", ringAlert.Expiration, sent.Add(time.Second))

	missed := e.WaitFCM("bob-android", 3)[2]
	if missed.Data["type"] != "call.missed" || missed.Notification == nil || !missed.HasTTL || missed.TTL < 10*time.Minute-5*time.Second ||
		missed.CollapseKey != "ring-"+ringID {
		t.Fatalf("FCM missed call: type %q ttl %v collapse_key %q, want call.missed with about 10m and ring-%s", missed.Data["type"], missed.TTL, missed.CollapseKey, ringID)
	}
	missedAlert := e.WaitAPNs(bobIPhone, 3)[2]
	if missedAlert.Data()["type"] != "call.missed" || missedAlert.CollapseID != "ring-"+ringID {
		t.Fatalf("APNs missed call: %+v", missedAlert)
	}
	near("APNs missed call's apns-expiration", missedAlert.Expiration, time.Now().Add(10*time.Minute))
}

func TestAnIPhoneWithoutAVoIPTokenIsRungWithATimeSensitiveAlertThatSounds(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Device("bob", bobIPhone, "apn", false)

	ringID := ringBob(t, e, "c1", 30000)
	n := e.WaitAPNs(bobIPhone, 1)[0]
	aps := n.Aps()
	alert, _ := aps["alert"].(map[string]any)
	if n.PushType != "alert" || n.Priority != 10 || n.Topic != harness.Topic || n.Data()["type"] != "call.ring" {
		t.Fatalf("ring to a regular APNs token: push type %q priority %d topic %q type %q", n.PushType, n.Priority, n.Topic, n.Data()["type"])
	}
	if aps["interruption-level"] != "time-sensitive" || aps["sound"] != "default" || alert["title"] == nil || alert["title"] == "" {
		t.Fatalf("aps of the ring alert: %v, want a titled alert with sound default and interruption-level time-sensitive", aps)
	}
	if n.CollapseID != "ring-"+ringID {
		t.Fatalf("apns-collapse-id %q, want ring-%s", n.CollapseID, ringID)
	}
}
