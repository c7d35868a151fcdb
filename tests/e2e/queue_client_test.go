package e2e

// queue.Client is how an outside Go call service rings and notifies through ringer's workers without its
// HTTP API (ARCHITECTURE.md). These tests are that service: a Client on the harness's Redis, a running
// ringer worker, and members whose devices were registered through the API.

import (
	"errors"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
)

// qcInfo is an outside service's call: what its pushes show.
func qcInfo(id string) queue.CallInfo {
	return queue.CallInfo{
		CID: "external:" + id, Type: "external", ID: id, DisplayName: "Board meeting",
		CreatedByID: "svc-alice", CreatedByName: "Alice from Sales", Video: true,
	}
}

// qcWant is the fields of a push of type typ about qcInfo(id) for receiver in ring ringID (none: a
// notification, whose ring_id API.md leaves open).
func qcWant(id, typ, receiver, ringID string) map[string]string {
	w := map[string]string{
		"sender": "ringer", "type": typ, "call_cid": "external:" + id, "call_type": "external", "call_id": id,
		"call_display_name": "Board meeting", "created_by_id": "svc-alice", "created_by_display_name": "Alice from Sales",
		"receiver_id": receiver, "ring_id": ringID, "video": "true",
	}
	if ringID == "" {
		delete(w, "ring_id")
	}
	return w
}

// qcRing rings bob through a queue.Client for 30 s and returns the client and the ring's end.
func qcRing(t *testing.T, e *harness.Env, id, ringID string) (*queue.Client, time.Time) {
	t.Helper()
	c := queue.NewClient(e.RDB)
	t.Cleanup(func() { c.Close() })
	end := time.Now().Add(30 * time.Second)
	if err := c.Ring(e.Context(), qcInfo(id), ringID, []queue.RingMember{{UserID: "bob", EndsAt: end}}); err != nil {
		t.Fatalf("Ring: %v", err)
	}
	return c, end
}

// qcBobRung starts ringer, gives bob a phone with a VoIP token (rulesPhone) and rings him through a
// queue.Client in call m1, ring ext-ring-1 (qcRing). It returns the env, the client and the ring's end.
func qcBobRung(t *testing.T) (*harness.Env, *queue.Client, time.Time) {
	t.Helper()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	c, end := qcRing(t, e, "m1", "ext-ring-1")
	return e, c, end
}

func TestQueueClientRingsAMemberRegisteredThroughTheAPI(t *testing.T) {
	t.Parallel()
	e, _, end := qcBobRung(t)

	fcm := rulesFCM(t, e, "bob-android", rulesRing)[0]
	shapesFCMData(t, "FCM ring", fcm)
	shapesCheckTTL(t, "FCM ring", fcm, end, 30*time.Second)
	rulesFields(t, "FCM ring", fcm.Data, qcWant("m1", rulesRing, "bob", "ext-ring-1"))
	voip := rulesAPNs(t, e, "bob-voip", rulesRing)[0]
	shapesVoIP(t, "VoIP ring", voip)
	shapesCheckExpiration(t, "VoIP ring", voip, end)
	rulesFields(t, "VoIP ring", voip.Data(), qcWant("m1", rulesRing, "bob", "ext-ring-1"))
	rulesAPNs(t, e, "bob-iphone")
}

func TestQueueClientRingingTheSameRingTwiceSendsOnePushPerDevice(t *testing.T) {
	t.Parallel()
	e, c, end := qcBobRung(t)
	again := func() {
		t.Helper()
		if err := c.Ring(e.Context(), qcInfo("m1"), "ext-ring-1", []queue.RingMember{{UserID: "bob", EndsAt: end}}); err != nil {
			t.Fatalf("Ring again with the same ring id: %v", err)
		}
	}
	again() // at once, while the first may still be queued
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)

	again() // after the first was delivered
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesAPNs(t, e, "bob-iphone")
}

func TestQueueClientStopRingingWithAcceptedSendsTheStop(t *testing.T) {
	t.Parallel()
	e, c, _ := qcBobRung(t)
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)

	if err := c.StopRinging(e.Context(), qcInfo("m1"), "ext-ring-1", queue.EventAccepted, []string{"bob"}); err != nil {
		t.Fatalf("StopRinging: %v", err)
	}
	stop := rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)[1]
	shapesFCMData(t, "FCM stop", stop)
	rulesFields(t, "FCM stop", stop.Data, qcWant("m1", rulesAccepted, "bob", "ext-ring-1"))
	bg := rulesAPNs(t, e, "bob-iphone", rulesAccepted)[0]
	shapesAPNsStop(t, "APNs stop", bg)
	rulesFields(t, "APNs stop", bg.Data(), qcWant("m1", rulesAccepted, "bob", "ext-ring-1"))
	rulesAPNs(t, e, "bob-voip", rulesRing)

	// The gate is closed: the same ring enqueued again rings nobody.
	if err := c.EnqueueRing(e.Context(), qcInfo("m1"), "ext-ring-1", []queue.RingMember{{UserID: "bob", EndsAt: time.Now().Add(time.Minute)}}); err != nil {
		t.Fatalf("EnqueueRing after the stop: %v", err)
	}
	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	rulesAPNs(t, e, "bob-voip", rulesRing)
}

func TestQueueClientRefusesASecondRingWhileOneIsLive(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob", "carol")
	c, _ := qcRing(t, e, "m1", "ext-ring-1")
	rulesFCM(t, e, "bob-android", rulesRing)

	err := c.Ring(e.Context(), qcInfo("m1"), "ext-ring-2", []queue.RingMember{{UserID: "carol", EndsAt: time.Now().Add(30 * time.Second)}})
	if !errors.Is(err, queue.ErrRingLive) {
		t.Fatalf("a second ring of a call with a live ring: %v, want ErrRingLive", err)
	}
	rulesFCM(t, e, "carol-android")
	rulesFCM(t, e, "bob-android", rulesRing)
}

func TestQueueClientNotifySendsOneNotificationPerAlertDevice(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	e.Android("carol")
	c := queue.NewClient(e.RDB)
	t.Cleanup(func() { c.Close() })
	for range 2 { // the same notify_id twice notifies once
		if err := c.Notify(e.Context(), qcInfo("m1"), "ext-notify-1", queue.EventNotification, []string{"bob", "carol"}); err != nil {
			t.Fatalf("Notify: %v", err)
		}
	}

	fcm := rulesFCM(t, e, "bob-android", rulesNotif)[0]
	shapesFCMAlert(t, "bob's FCM notification", fcm)
	rulesFields(t, "bob's FCM notification", fcm.Data, qcWant("m1", rulesNotif, "bob", ""))
	apns := rulesAPNs(t, e, "bob-iphone", rulesNotif)[0]
	shapesAPNsAlert(t, "bob's APNs notification", apns)
	rulesAPNs(t, e, "bob-voip")
	rulesFields(t, "carol's FCM notification", rulesFCM(t, e, "carol-android", rulesNotif)[0].Data, qcWant("m1", rulesNotif, "carol", ""))

	if err := c.Notify(e.Context(), qcInfo("m1"), "ext-notify-1", queue.EventNotification, []string{"bob", "carol"}); err != nil {
		t.Fatalf("Notify after delivery: %v", err)
	}
	rulesFCM(t, e, "bob-android", rulesNotif)
	rulesFCM(t, e, "carol-android", rulesNotif)
	rulesAPNs(t, e, "bob-iphone", rulesNotif)
}
