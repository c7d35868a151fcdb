package e2e

import (
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

var (
	bobVoIP   = harness.APNsToken("bob-voip")
	bobIPhone = harness.APNsToken("bob-iphone")
)

func TestRingReachesEveryDeviceOnceAndAcceptStopsThem(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	e.Android("alice")

	r := e.MustCall(201, "POST", "/v1/call/default/c1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": []map[string]any{{"user_id": "alice"}, {"user_id": "bob"}}},
	})
	ringID := r.Body["call"].(map[string]any)["ring_id"].(string)

	fcm := e.WaitFCM("bob-android", 1)
	if fcm[0].Data["type"] != "call.ring" || fcm[0].Data["ring_id"] != ringID || fcm[0].AndroidPriority != "high" || fcm[0].Notification != nil {
		t.Fatalf("FCM ring: %+v", fcm[0])
	}
	voip := e.WaitAPNs(bobVoIP, 1)
	if voip[0].PushType != "voip" || voip[0].Topic != harness.Topic+".voip" || voip[0].Priority != 10 {
		t.Fatalf("VoIP ring: %+v", voip[0])
	}
	if got := e.APNs.NotificationsTo(bobIPhone); len(got) != 0 {
		t.Fatalf("regular APNs token rang although a VoIP token exists: %v", e.APNsTypes(bobIPhone))
	}
	if got := e.FCM.MessagesTo("alice-android"); len(got) != 0 {
		t.Fatalf("caller's own device got %v", e.FCMTypes("alice-android"))
	}

	e.MustCall(200, "POST", "/v1/call/default/c1/accept", e.Token("bob"), nil)
	stop := e.WaitFCM("bob-android", 2)[1]
	if stop.Data["type"] != "call.accepted" || stop.Notification != nil || stop.AndroidPriority != "high" {
		t.Fatalf("FCM stop: %+v", stop)
	}
	bg := e.WaitAPNs(bobIPhone, 1)[0]
	if bg.PushType != "background" || bg.Priority != 5 || bg.Aps()["content-available"] != float64(1) {
		t.Fatalf("APNs stop: %+v", bg)
	}
	e.WaitAPNs(bobVoIP, 1) // a VoIP push must show a call: no stop over VoIP
}
