package e2e

// notify (API.md): one regular push, call.notification, to every other member's devices that show alerts,
// whether or not the request created the call; never over VoIP, never a ring.

import (
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

// notifyWant is the fields of a call.notification push about call default:id from alice to receiver.
func notifyWant(id, receiver string) map[string]string {
	return map[string]string{
		"sender": "ringer", "type": rulesNotif, "call_cid": "default:" + id, "call_type": "default", "call_id": id,
		"call_display_name": "Standup", "created_by_id": "alice", "created_by_display_name": "Alice",
		"receiver_id": receiver, "video": "false",
	}
}

// notifyCreate creates call default:id as alice with members bob and carol, custom display name Standup.
func notifyCreate(t *testing.T, e *harness.Env, id string, notify bool) map[string]any {
	t.Helper()
	r := e.MustCall(201, "POST", rulesPath(id), e.Token("alice"), map[string]any{"notify": notify, "data": map[string]any{
		"members": rulesMembers("bob", "carol"), "custom": map[string]any{"display_name": "Standup"},
	}})
	return rulesCallOf(t, r)
}

func TestNotifyOnCreateSendsOneNotificationToEveryOtherMembersAlertDevices(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "alice", true)
	rulesPhone(e, "bob", true)
	e.Android("carol")

	call := notifyCreate(t, e, "huddle", true)
	if rulesRinging(t, call) {
		t.Errorf("notify alone made the call ring")
	}

	fcm := rulesFCM(t, e, "bob-android", rulesNotif)[0]
	shapesFCMAlert(t, "bob's FCM notification", fcm)
	rulesFields(t, "bob's FCM notification", fcm.Data, notifyWant("huddle", "bob"))
	apns := rulesAPNs(t, e, "bob-iphone", rulesNotif)[0]
	shapesAPNsAlert(t, "bob's APNs notification", apns)
	rulesFields(t, "bob's APNs notification", apns.Data(), notifyWant("huddle", "bob"))
	rulesAPNs(t, e, "bob-voip") // a VoIP push must show a call: never a notification
	rulesFields(t, "carol's FCM notification", rulesFCM(t, e, "carol-android", rulesNotif)[0].Data, notifyWant("huddle", "carol"))
	rulesPhoneGotNothing(t, e, "alice")
}

func TestNotifyOnAnExistingCallNotifiesAgain(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("alice")
	rulesPhone(e, "bob", true)
	e.Android("carol")
	notifyCreate(t, e, "huddle", true)
	rulesFCM(t, e, "bob-android", rulesNotif)
	rulesFCM(t, e, "carol-android", rulesNotif)

	// bob arrives in the huddle: "I am here" to everyone else, alice included.
	r := e.MustCall(200, "POST", rulesPath("huddle"), e.Token("bob"), map[string]any{"notify": true})
	if r.Body["created"] != false {
		t.Errorf("get-or-create of an existing call: created = %v", r.Body["created"])
	}
	shapesFCMAlert(t, "alice's notification", rulesFCM(t, e, "alice-android", rulesNotif)[0])
	rulesFCM(t, e, "carol-android", rulesNotif, rulesNotif)
	rulesFCM(t, e, "bob-android", rulesNotif)
	rulesAPNs(t, e, "bob-iphone", rulesNotif)
	rulesAPNs(t, e, "bob-voip")
}

func TestGetWithNotifyNotifiesEveryOtherMember(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Device("alice", harness.APNsToken("alice-iphone"), "apn", false)
	e.Android("bob")
	rulesPhone(e, "carol", true)
	notifyCreate(t, e, "huddle", false)

	e.MustCall(200, "GET", rulesPath("huddle"), e.Token("bob"), nil)
	rulesAPNs(t, e, "alice-iphone") // a plain get notifies nobody

	e.MustCall(200, "GET", rulesPath("huddle")+"?notify=true", e.Token("bob"), nil)
	shapesAPNsAlert(t, "alice's notification", rulesAPNs(t, e, "alice-iphone", rulesNotif)[0])
	fcm := rulesFCM(t, e, "carol-android", rulesNotif)[0]
	shapesFCMAlert(t, "carol's FCM notification", fcm)
	rulesFields(t, "carol's FCM notification", fcm.Data, map[string]string{"type": rulesNotif, "call_cid": "default:huddle", "receiver_id": "carol"})
	shapesAPNsAlert(t, "carol's APNs notification", rulesAPNs(t, e, "carol-iphone", rulesNotif)[0])
	rulesAPNs(t, e, "carol-voip")
	rulesFCM(t, e, "bob-android")
}

func TestGetWithRingAndNotifyBothRingsAndNotifies(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.AndroidAndVoIP("bob", "bob")
	e.MustCall(201, "POST", rulesPath("c1"), e.Token("alice"), map[string]any{"data": map[string]any{"members": rulesMembers("bob")}})

	// API.md: the query's ring=true and notify=true act as in the get-or-create body, where both act.
	e.MustCall(200, "GET", rulesPath("c1")+"?ring=true&notify=true", e.Token("alice"), nil)
	e.Quiet() // every push the answer caused has been attempted
	types := map[string]int{}
	for _, m := range e.FCM.MessagesTo("bob-android") {
		types[m.Data["type"]]++
	}
	if len(types) != 2 || types[rulesRing] != 1 || types[rulesNotif] != 1 {
		t.Errorf("bob's FCM got %v, want one call.ring and one call.notification", e.FCMTypes("bob-android"))
	}
	rulesAPNs(t, e, "bob-voip", rulesRing)
}
