package e2e

// What a device receives, as API.md "Push payloads" fixes it: the fields every push carries, and the wire
// shape of each push per kind of device token.

import (
	"slices"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// shapesFCMData fails unless m is a data-only FCM message at Android priority high (a ring or a stop).
func shapesFCMData(t *testing.T, what string, m fakefcm.Message) {
	t.Helper()
	if m.Notification != nil {
		t.Errorf("%s: has a notification block %+v, want data only", what, *m.Notification)
	}
	if m.AndroidPriority != "high" {
		t.Errorf("%s: android priority %q, want high", what, m.AndroidPriority)
	}
}

// shapesFCMAlert fails unless m is an FCM message with a notification title and body beside its data.
func shapesFCMAlert(t *testing.T, what string, m fakefcm.Message) {
	t.Helper()
	if m.Notification == nil || m.Notification.Title == "" || m.Notification.Body == "" {
		t.Errorf("%s: notification %+v, want a title and a body", what, m.Notification)
	}
	if len(m.Data) == 0 {
		t.Errorf("%s: no data beside the notification", what)
	}
}

// shapesVoIP fails unless n is a VoIP push: push type voip, the .voip topic, priority 10.
func shapesVoIP(t *testing.T, what string, n fakeapns.Notification) {
	t.Helper()
	if n.PushType != "voip" || n.Topic != harness.Topic+".voip" || n.Priority != 10 {
		t.Errorf("%s: push type %q, topic %q, priority %d; want voip, %s.voip, 10", what, n.PushType, n.Topic, n.Priority, harness.Topic)
	}
}

// shapesAPNsAlert fails unless n is an alert push to the app's topic at priority 10 with aps.alert title and body.
func shapesAPNsAlert(t *testing.T, what string, n fakeapns.Notification) {
	t.Helper()
	if n.PushType != "alert" || n.Topic != harness.Topic || n.Priority != 10 {
		t.Errorf("%s: push type %q, topic %q, priority %d; want alert, %s, 10", what, n.PushType, n.Topic, n.Priority, harness.Topic)
	}
	alert, _ := n.Aps()["alert"].(map[string]any)
	title, _ := alert["title"].(string)
	body, _ := alert["body"].(string)
	if title == "" || body == "" {
		t.Errorf("%s: aps.alert %v, want a title and a body", what, n.Aps()["alert"])
	}
}

// shapesAPNsStop fails unless n is a silent background push at priority 5 with aps.content-available 1.
func shapesAPNsStop(t *testing.T, what string, n fakeapns.Notification) {
	t.Helper()
	if n.PushType != "background" || n.Topic != harness.Topic || n.Priority != 5 {
		t.Errorf("%s: push type %q, topic %q, priority %d; want background, %s, 5", what, n.PushType, n.Topic, n.Priority, harness.Topic)
	}
	if n.Aps()["content-available"] != float64(1) {
		t.Errorf("%s: aps %v, want content-available 1", what, n.Aps())
	}
	if _, ok := n.Aps()["alert"]; ok {
		t.Errorf("%s: a stop shows an alert: %v", what, n.Aps())
	}
}

func TestRingPushCarriesEveryContractFieldForEachReceiver(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	e.Device("carol", harness.APNsToken("carol-voip"), "apn", true)
	e.Device("dave", harness.APNsToken("dave-iphone"), "apn", false)

	r := e.MustCall(201, "POST", "/v1/call/huddle/standup-1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{
			"members": rulesMembers("bob", "carol", "dave"),
			"custom":  map[string]any{"display_name": "Daily standup", "video": true},
		},
	})
	ringID := rulesRingID(t, rulesCallOf(t, r))
	want := func(receiver string) map[string]string {
		return map[string]string{
			"sender": "ringer", "type": "call.ring",
			"call_cid": "huddle:standup-1", "call_type": "huddle", "call_id": "standup-1",
			"call_display_name": "Daily standup", "created_by_id": "alice", "created_by_display_name": "Alice",
			"receiver_id": receiver, "ring_id": ringID, "video": "true",
		}
	}
	rulesFields(t, "bob's FCM ring", rulesFCM(t, e, "bob-android", rulesRing)[0].Data, want("bob"))
	rulesFields(t, "carol's VoIP ring", rulesAPNs(t, e, "carol-voip", rulesRing)[0].Data(), want("carol"))
	rulesFields(t, "dave's APNs alert ring", rulesAPNs(t, e, "dave-iphone", rulesRing)[0].Data(), want("dave"))
}

func TestCallDisplayNameIsTheFirstStringOfDisplayNameNameTitle(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	cases := []struct {
		id          string
		custom      map[string]any
		name, video string
	}{
		{"all-three", map[string]any{"display_name": "Standup", "name": "N", "title": "T"}, "Standup", "false"},
		{"name", map[string]any{"name": "Weekly", "title": "T", "video": false}, "Weekly", "false"},
		{"not-a-string", map[string]any{"display_name": 42, "name": map[string]any{"x": "y"}, "title": "Retro"}, "Retro", "false"},
		{"none", map[string]any{"topic": "planning", "video": true}, "", "true"},
		{"no-custom", nil, "", "false"},
	}
	for i, tc := range cases {
		data := map[string]any{"members": rulesMembers("bob")}
		if tc.custom != nil {
			data["custom"] = tc.custom
		}
		e.MustCall(201, "POST", rulesPath(tc.id), e.Token("alice"), map[string]any{"ring": true, "data": data})
		e.Eventually(30*time.Second, "ring of "+tc.id, func() bool { return len(e.FCM.MessagesTo("bob-android")) > i })
	}
	got := map[string]map[string]string{}
	for _, m := range e.WaitFCM("bob-android", len(cases)) {
		got[m.Data["call_id"]] = m.Data
	}
	for _, tc := range cases {
		d := got[tc.id]
		if d == nil {
			t.Errorf("no ring for call %s", tc.id)
			continue
		}
		if d["call_display_name"] != tc.name || d["video"] != tc.video {
			t.Errorf("call %s with custom %v: call_display_name %q, video %q; want %q, %q",
				tc.id, tc.custom, d["call_display_name"], d["video"], tc.name, tc.video)
		}
	}
}

func TestCreatedByDisplayNameFallsBackToTheCallerID(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	nameless := e.TokenWith(api.TokenClaims{UserID: "carol"})
	e.MustCall(201, "POST", rulesPath("c1"), nameless, map[string]any{"ring": true, "data": map[string]any{"members": rulesMembers("bob")}})
	m := rulesFCM(t, e, "bob-android", rulesRing)[0]
	rulesFields(t, "ring from a caller without a name", m.Data, map[string]string{"created_by_id": "carol", "created_by_display_name": "carol"})
}

// shapesCreateRingFor creates call id as alice ringing bob with the ring timeouts given, and returns when, by
// created_at, each of bob's rings ends (the shorter of the two timeouts).
func shapesCreateRingFor(t *testing.T, e *harness.Env, id string, autoMs, incomingMs int) (ringEnd time.Time, ringFor time.Duration) {
	t.Helper()
	call := rulesCreateRing(t, e, "alice", id, map[string]any{"settings_override": rulesTimeouts(autoMs, incomingMs)}, "bob")
	ringFor = time.Duration(autoMs) * time.Millisecond
	if incomingMs != 0 && incomingMs < autoMs {
		ringFor = time.Duration(incomingMs) * time.Millisecond
	}
	return rulesTime(t, call["created_at"]).Add(ringFor), ringFor
}

// shapesCheckTTL fails unless m's TTL is the time its ring had left when it was sent: at most the ring's
// length, and at least what was left when the fake received it.
func shapesCheckTTL(t *testing.T, what string, m fakefcm.Message, ringEnd time.Time, ringFor time.Duration) {
	t.Helper()
	left := ringEnd.Sub(m.At)
	if !m.HasTTL || m.TTL > ringFor || m.TTL < left-50*time.Millisecond {
		t.Errorf("%s: TTL %s (sent: %v), want the ring's time left: between %s and %s", what, m.TTL, m.HasTTL, left, ringFor)
	}
}

// shapesCheckExpiration fails unless n expires at the ring's end (apns-expiration has whole seconds).
func shapesCheckExpiration(t *testing.T, what string, n fakeapns.Notification, ringEnd time.Time) {
	t.Helper()
	if d := n.Expiration.Sub(ringEnd); n.Expiration.IsZero() || d < -time.Second || d > time.Second {
		t.Errorf("%s: apns-expiration %s, want the ring's end %s", what, n.Expiration, ringEnd)
	}
}

func TestRingToFCMIsDataOnlyHighPriorityWithTTLOfTheRingLeft(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	ringEnd, ringFor := shapesCreateRingFor(t, e, "c1", 20000, 0)
	m := rulesFCM(t, e, "bob-android", rulesRing)[0]
	shapesFCMData(t, "FCM ring", m)
	shapesCheckTTL(t, "FCM ring", m, ringEnd, ringFor)
}

func TestRingToVoIPTokenIsAVoIPPushExpiringAtTheRingEnd(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Device("bob", harness.APNsToken("bob-voip"), "apn", true)
	ringEnd, _ := shapesCreateRingFor(t, e, "c1", 20000, 0)
	n := rulesAPNs(t, e, "bob-voip", rulesRing)[0]
	shapesVoIP(t, "VoIP ring", n)
	shapesCheckExpiration(t, "VoIP ring", n, ringEnd)
}

func TestRingPushLivesOnlyAsLongAsTheMembersIncomingTimeout(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.AndroidAndVoIP("bob", "bob")
	ringEnd, ringFor := shapesCreateRingFor(t, e, "c1", 60000, 10000)
	shapesCheckTTL(t, "FCM ring", rulesFCM(t, e, "bob-android", rulesRing)[0], ringEnd, ringFor)
	shapesCheckExpiration(t, "VoIP ring", rulesAPNs(t, e, "bob-voip", rulesRing)[0], ringEnd)
}

func TestRingToRegularAPNsTokenIsAnAlertOnlyWhenTheUserHasNoVoIPToken(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Device("bob", harness.APNsToken("bob-iphone"), "apn", false)
	rulesPhone(e, "carol", true)
	rulesCreateRing(t, e, "alice", "c1", nil, "bob", "carol")

	shapesAPNsAlert(t, "bob's ring without a VoIP token", rulesAPNs(t, e, "bob-iphone", rulesRing)[0])
	shapesVoIP(t, "carol's VoIP ring", rulesAPNs(t, e, "carol-voip", rulesRing)[0])
	rulesAPNs(t, e, "carol-iphone")
	rulesFCM(t, e, "carol-android", rulesRing)
}

func TestStopPushIsSilentDataOnFCMAndBackgroundOnAPNs(t *testing.T) {
	t.Parallel()
	e, ringID := rulesBobAndCarolRung(t, "c1")
	rulesAct(t, e, "bob", "c1", "reject", map[string]any{"reason": "decline"})
	rulesAct(t, e, "carol", "c1", "accept", nil)

	for _, tc := range []struct{ user, event string }{{"bob", rulesRejected}, {"carol", rulesAccepted}} {
		want := map[string]string{"sender": "ringer", "type": tc.event, "call_cid": "default:c1", "ring_id": ringID,
			"receiver_id": tc.user, "created_by_id": "alice", "created_by_display_name": "Alice"}
		fcm := rulesFCM(t, e, tc.user+"-android", rulesRing, tc.event)[1]
		shapesFCMData(t, tc.user+"'s FCM stop", fcm)
		rulesFields(t, tc.user+"'s FCM stop", fcm.Data, want)
		var apns fakeapns.Notification
		if tc.user == "bob" {
			apns = rulesAPNs(t, e, "bob-iphone", tc.event)[0] // stops the ring bob's VoIP token showed
			rulesAPNs(t, e, "bob-voip", rulesRing)
		} else {
			apns = rulesAPNs(t, e, "carol-iphone", rulesRing, tc.event)[1]
		}
		shapesAPNsStop(t, tc.user+"'s APNs stop", apns)
		rulesFields(t, tc.user+"'s APNs stop", apns.Data(), want)
	}
}

func TestCallerOwnDevicesGetNoPushAboutItsOwnCall(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "alice", true)
	e.Android("bob")
	// alice names herself among the members, rings, notifies, rings again, and ends the call.
	e.MustCall(201, "POST", rulesPath("c1"), e.Token("alice"), map[string]any{
		"ring": true, "notify": true, "data": map[string]any{"members": rulesMembers("alice", "bob")},
	})
	// The ring and the notification travel on separate queues: either may come first.
	got := e.WaitFCM("bob-android", 2)
	if types := []string{got[0].Data["type"], got[1].Data["type"]}; !slices.Contains(types, rulesRing) || !slices.Contains(types, rulesNotif) {
		t.Fatalf("bob got %v, want a ring and a notification", types)
	}
	e.MustCall(200, "GET", rulesPath("c1")+"?notify=true", e.Token("alice"), nil)
	e.WaitFCM("bob-android", 3)
	e.MustCall(200, "GET", rulesPath("c1")+"?ring=true", e.Token("alice"), nil)
	rulesAct(t, e, "bob", "c1", "accept", nil)
	rulesAct(t, e, "alice", "c1", "mark_ended", nil)
	if got := e.WaitFCM("bob-android", 4); got[2].Data["type"] != rulesNotif || got[3].Data["type"] != rulesAccepted {
		t.Errorf("bob's last pushes: %v, want call.notification, call.accepted", e.FCMTypes("bob-android"))
	}

	rulesPhoneGotNothing(t, e, "alice")
}
