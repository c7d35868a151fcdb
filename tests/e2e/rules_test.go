package e2e

// One test per rule of API.md "The ring, step by step", each asserting the exact pushes every device got.
// The helpers prefixed "rules" are shared by shapes_test.go, notify_test.go and queue_client_test.go.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/fakepush"
	"github.com/ringer-dev/ringer/tests/harness"
)

// Push types (API.md, "Events").
const (
	rulesRing     = "call.ring"
	rulesNotif    = "call.notification"
	rulesAccepted = "call.accepted"
	rulesRejected = "call.rejected"
	rulesMissed   = "call.missed"
	rulesEnded    = "call.ended"
)

// rulesPushFields are the string fields every push carries (API.md, "Push payloads").
var rulesPushFields = []string{
	"sender", "type", "call_cid", "call_type", "call_id", "call_display_name",
	"created_by_id", "created_by_display_name", "receiver_id", "ring_id", "video",
}

// rulesMembers is a members list naming each user.
func rulesMembers(users ...string) []map[string]any {
	ms := make([]map[string]any, len(users))
	for i, u := range users {
		ms[i] = map[string]any{"user_id": u}
	}
	return ms
}

// rulesPath is the path of call default:id, followed by action when one is given.
func rulesPath(id string, action ...string) string {
	p := "/v1/call/default/" + id
	for _, a := range action {
		p += "/" + a
	}
	return p
}

// rulesTimeouts is a settings_override with the ring timeouts given (0 leaves one to its default).
func rulesTimeouts(autoMs, incomingMs int) map[string]any {
	ring := map[string]any{}
	if autoMs != 0 {
		ring["auto_cancel_timeout_ms"] = autoMs
	}
	if incomingMs != 0 {
		ring["incoming_call_timeout_ms"] = incomingMs
	}
	return map[string]any{"ring": ring}
}

// rulesCreateRing creates call default:id as caller with ring true, members callees (the caller is not named:
// ringer adds it), and the extra data fields given (custom, settings_override). It returns the call.
func rulesCreateRing(t *testing.T, e *harness.Env, caller, id string, extra map[string]any, callees ...string) map[string]any {
	t.Helper()
	data := map[string]any{"members": rulesMembers(callees...)}
	for k, v := range extra {
		data[k] = v
	}
	r := e.MustCall(201, "POST", rulesPath(id), e.Token(caller), map[string]any{"ring": true, "data": data})
	return rulesCallOf(t, r)
}

// rulesCallOf is the call object of an answer.
func rulesCallOf(t *testing.T, r harness.Resp) map[string]any {
	t.Helper()
	c, ok := r.Body["call"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no call object: %s", r.Raw)
	}
	return c
}

// rulesGet is GET of call default:id as user.
func rulesGet(t *testing.T, e *harness.Env, user, id string) map[string]any {
	t.Helper()
	return rulesCallOf(t, e.MustCall(200, "GET", rulesPath(id), e.Token(user), nil))
}

// rulesAct posts a transition (accept, reject, join, leave, mark_ended) as user and returns the call.
func rulesAct(t *testing.T, e *harness.Env, user, id, action string, body any) map[string]any {
	t.Helper()
	return rulesCallOf(t, e.MustCall(200, "POST", rulesPath(id, action), e.Token(user), body))
}

// rulesRingID is the call's ring_id, failing when it has none.
func rulesRingID(t *testing.T, call map[string]any) string {
	t.Helper()
	id, _ := call["ring_id"].(string)
	if id == "" {
		t.Fatalf("call %v has no ring_id", call["cid"])
	}
	return id
}

// rulesSession is the call's session object.
func rulesSession(t *testing.T, call map[string]any) map[string]any {
	t.Helper()
	s, ok := call["session"].(map[string]any)
	if !ok {
		t.Fatalf("call %v has no session: %v", call["cid"], call)
	}
	return s
}

// rulesSessionUsers is the user ids in session[field]: a map of user to time (accepted_by, rejected_by,
// missed_by) or the participants list.
func rulesSessionUsers(t *testing.T, call map[string]any, field string) []string {
	t.Helper()
	var users []string
	switch v := rulesSession(t, call)[field].(type) {
	case map[string]any:
		for u := range v {
			users = append(users, u)
		}
	case []any:
		for _, p := range v {
			if pm, ok := p.(map[string]any); ok {
				u, _ := pm["user_id"].(string)
				users = append(users, u)
			}
		}
	default:
		t.Fatalf("session.%s is %T, want a map or a list: %v", field, v, v)
	}
	slices.Sort(users)
	return users
}

// rulesWantUsers fails unless session[field] names exactly users.
func rulesWantUsers(t *testing.T, call map[string]any, field string, users ...string) {
	t.Helper()
	got := rulesSessionUsers(t, call, field)
	want := slices.Clone(users)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("session.%s = %v, want %v", field, got, want)
	}
}

// rulesHasEnded reports whether the call has ended_at set.
func rulesHasEnded(call map[string]any) bool { return call["ended_at"] != nil }

// rulesRinging is the call's ringing flag.
func rulesRinging(t *testing.T, call map[string]any) bool {
	t.Helper()
	r, ok := call["ringing"].(bool)
	if !ok {
		t.Fatalf("call %v has no boolean ringing: %v", call["cid"], call["ringing"])
	}
	return r
}

// rulesTime parses an RFC 3339 time of an answer.
func rulesTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return at
}

// rulesFCM waits until the FCM token has got exactly the pushes of the types want, in that order, and the
// queues are quiet, and returns them. With no want it checks the token got nothing.
func rulesFCM(t *testing.T, e *harness.Env, token string, want ...string) []fakefcm.Message {
	t.Helper()
	return rulesPushes(t, e, "FCM", token, token, e.FCM.To, e.WaitFCM, want)
}

// rulesAPNs is rulesFCM for the APNs token of the device called name (harness.APNsToken(name)).
func rulesAPNs(t *testing.T, e *harness.Env, name string, want ...string) []fakeapns.Notification {
	t.Helper()
	return rulesPushes(t, e, "APNs", name, harness.APNsToken(name), e.APNs.To, e.WaitAPNs, want)
}

// rulesPushes is rulesFCM and rulesAPNs: to is what the fake recorded for a token, wait is e.WaitFCM or
// e.WaitAPNs, and name is how a failure names the device.
func rulesPushes[P fakepush.Typed](t *testing.T, e *harness.Env, provider, name, token string,
	to func(string) []P, wait func(string, int) []P, want []string) []P {
	t.Helper()
	var got []P
	if len(want) == 0 {
		e.Quiet()
		got = to(token)
	} else {
		got = wait(token, len(want))
	}
	if types := fakepush.Types(got); !slices.Equal(types, want) {
		t.Fatalf("%s %s got %v, want %v", provider, name, types, want)
	}
	return got
}

// rulesPhone registers for user an Android phone (FCM token "<user>-android") and an iPhone: its VoIP
// token ("<user>-voip") when voip, and its regular token ("<user>-iphone").
func rulesPhone(e *harness.Env, user string, voip bool) {
	e.Device(user, user+"-android", "firebase", false)
	if voip {
		e.Device(user, harness.APNsToken(user+"-voip"), "apn", true)
	}
	e.Device(user, harness.APNsToken(user+"-iphone"), "apn", false)
}

// rulesPhoneGotNothing checks that none of the devices of rulesPhone(e, user, true) got a push.
func rulesPhoneGotNothing(t *testing.T, e *harness.Env, user string) {
	t.Helper()
	rulesFCM(t, e, user+"-android")
	rulesAPNs(t, e, user+"-voip")
	rulesAPNs(t, e, user+"-iphone")
}

// rulesFields fails unless a push's string fields hold every field of API.md and the values want names.
func rulesFields(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for _, k := range rulesPushFields {
		if _, ok := got[k]; !ok {
			t.Errorf("%s: field %q missing: %v", what, k, got)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got[k], v)
		}
	}
}

func TestRingAddsTheCreatorAsMemberAndRingsEveryOtherMember(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "alice", true)
	e.Android("bob", "carol")

	r := e.MustCall(201, "POST", rulesPath("team"), e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": rulesMembers("bob", "carol")},
	})
	if r.Body["created"] != true {
		t.Errorf("created = %v, want true", r.Body["created"])
	}
	var members []string
	for _, m := range r.Body["members"].([]any) {
		members = append(members, m.(map[string]any)["user_id"].(string))
	}
	slices.Sort(members)
	if !slices.Equal(members, []string{"alice", "bob", "carol"}) {
		t.Errorf("members = %v, want alice (the creator), bob and carol", members)
	}
	call := rulesCallOf(t, r)
	if !rulesRinging(t, call) {
		t.Errorf("ringing = false right after a ring")
	}
	ringID := rulesRingID(t, call)

	for _, u := range []string{"bob", "carol"} {
		m := rulesFCM(t, e, u+"-android", rulesRing)[0]
		rulesFields(t, u+" ring", m.Data, map[string]string{"ring_id": ringID, "receiver_id": u, "created_by_id": "alice"})
	}
	rulesPhoneGotNothing(t, e, "alice")
}

func TestAcceptStopsOtherDevicesOfTheSameMember(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	e.Device("bob", "bob-tablet", "firebase", false)

	ringID := rulesRingID(t, rulesCreateRing(t, e, "alice", "c1", nil, "bob"))
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesFCM(t, e, "bob-tablet", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesAPNs(t, e, "bob-iphone") // a VoIP token rang instead

	rulesAct(t, e, "bob", "c1", "accept", nil)
	for _, tok := range []string{"bob-android", "bob-tablet"} {
		stop := rulesFCM(t, e, tok, rulesRing, rulesAccepted)[1]
		shapesFCMData(t, tok+" stop", stop)
		rulesFields(t, tok+" stop", stop.Data, map[string]string{"ring_id": ringID, "receiver_id": "bob"})
	}
	// The regular APNs token stops the ring its VoIP token showed; nothing goes over VoIP but the ring.
	stop := rulesAPNs(t, e, "bob-iphone", rulesAccepted)[0]
	shapesAPNsStop(t, "bob-iphone stop", stop)
	rulesFields(t, "bob-iphone stop", stop.Data(), map[string]string{"ring_id": ringID, "receiver_id": "bob"})
	rulesAPNs(t, e, "bob-voip", rulesRing)
}

func TestStopGoesOnlyToDevicesThatGotTheRing(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	rulesCreateRing(t, e, "alice", "c1", nil, "bob")
	rulesFCM(t, e, "bob-android", rulesRing)

	// Devices registered after the ring reached bob never rang, so they have nothing to stop.
	e.Device("bob", "bob-new-android", "firebase", false)
	e.Device("bob", harness.APNsToken("bob-new-iphone"), "apn", false)
	rulesAct(t, e, "bob", "c1", "accept", nil)

	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	rulesFCM(t, e, "bob-new-android")
	rulesAPNs(t, e, "bob-new-iphone")
}

func TestFirstAcceptJoinsTheCallerAndOtherCalleesKeepRinging(t *testing.T) {
	t.Parallel()
	e, _ := rulesGroupRung(t)

	call := rulesAct(t, e, "bob", "group", "accept", nil)
	rulesWantUsers(t, call, "participants", "alice")
	rulesWantUsers(t, call, "accepted_by", "bob")
	if !rulesRinging(t, call) || rulesHasEnded(call) {
		t.Errorf("after bob's accept: ringing %v, ended_at %v; want carol still ringing", call["ringing"], call["ended_at"])
	}

	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	// carol is still being rung: no stop of any kind reaches her.
	rulesFCM(t, e, "carol-android", rulesRing)
	rulesAPNs(t, e, "carol-voip", rulesRing)
	rulesAPNs(t, e, "carol-iphone")

	// ...and she can still answer.
	call = rulesAct(t, e, "carol", "group", "accept", nil)
	rulesWantUsers(t, call, "accepted_by", "bob", "carol")
	rulesWantUsers(t, call, "participants", "alice")
	rulesFCM(t, e, "carol-android", rulesRing, rulesAccepted)
	rulesAPNs(t, e, "carol-iphone", rulesAccepted)
}

func TestAcceptingAgainAnswers200AndSendsNoSecondStop(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	rulesCreateRing(t, e, "alice", "c1", nil, "bob", "carol")
	rulesFCM(t, e, "bob-android", rulesRing)

	rulesAct(t, e, "bob", "c1", "accept", nil)
	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	rulesAPNs(t, e, "bob-iphone", rulesAccepted)

	call := rulesAct(t, e, "bob", "c1", "accept", nil)
	rulesWantUsers(t, call, "accepted_by", "bob")
	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	rulesAPNs(t, e, "bob-iphone", rulesAccepted)
	rulesAPNs(t, e, "bob-voip", rulesRing)
}

// rulesBobAndCarolRung starts ringer, gives bob a phone with a VoIP token and carol one without, has alice
// ring them in call cid, and waits for the ring pushes: bob's Android phone and VoIP token, carol's Android
// phone and iPhone (no VoIP token: the regular token rings). It returns the ring_id.
func rulesBobAndCarolRung(t *testing.T, cid string) (*harness.Env, string) {
	t.Helper()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	rulesPhone(e, "carol", false)
	ringID := rulesRingID(t, rulesCreateRing(t, e, "alice", cid, nil, "bob", "carol"))
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing)
	rulesAPNs(t, e, "carol-iphone", rulesRing)
	return e, ringID
}

// rulesGroupRung starts ringer, gives bob an Android phone and carol a phone with a VoIP token, has alice
// ring them in call "group", and waits for the ring pushes to bob's phone and to carol's Android phone and
// VoIP token. It returns the ring_id.
func rulesGroupRung(t *testing.T) (*harness.Env, string) {
	t.Helper()
	e := harness.Start(t)
	e.Android("bob")
	rulesPhone(e, "carol", true)
	ringID := rulesRingID(t, rulesCreateRing(t, e, "alice", "group", nil, "bob", "carol"))
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing)
	rulesAPNs(t, e, "carol-voip", rulesRing)
	return e, ringID
}

// rulesAndroidsRung starts ringer, gives bob and carol an Android phone each, has alice ring them in call
// "group", and waits for the ring pushes.
func rulesAndroidsRung(t *testing.T) *harness.Env {
	t.Helper()
	e := harness.Start(t)
	e.Android("bob", "carol")
	rulesCreateRing(t, e, "alice", "group", nil, "bob", "carol")
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing)
	return e
}

func TestRejectStopsOnlyTheRejectingCalleeAndOthersRingOn(t *testing.T) {
	t.Parallel()
	e, ringID := rulesBobAndCarolRung(t, "group")

	call := rulesAct(t, e, "bob", "group", "reject", map[string]any{"reason": "decline"})
	if rulesHasEnded(call) || !rulesRinging(t, call) {
		t.Errorf("after one of two callees rejected: ended_at %v, ringing %v; want carol still ringing", call["ended_at"], call["ringing"])
	}
	rulesWantUsers(t, call, "rejected_by", "bob")

	stop := rulesFCM(t, e, "bob-android", rulesRing, rulesRejected)[1]
	shapesFCMData(t, "bob-android stop", stop)
	rulesFields(t, "bob-android stop", stop.Data, map[string]string{"ring_id": ringID, "receiver_id": "bob"})
	shapesAPNsStop(t, "bob-iphone stop", rulesAPNs(t, e, "bob-iphone", rulesRejected)[0])
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing)
	rulesAPNs(t, e, "carol-iphone", rulesRing)
}

func TestEveryCalleeRejectingEndsTheCall(t *testing.T) {
	t.Parallel()
	e := rulesAndroidsRung(t)
	events := e.Events(e.Token("alice"), "")

	call := rulesAct(t, e, "bob", "group", "reject", map[string]any{"reason": "decline"})
	if rulesHasEnded(call) {
		t.Fatalf("the call ended while carol was still being rung")
	}
	call = rulesAct(t, e, "carol", "group", "reject", map[string]any{"reason": "decline"})
	if !rulesHasEnded(call) || rulesRinging(t, call) {
		t.Errorf("after every callee rejected: ended_at %v, ringing %v; want ended, not ringing", call["ended_at"], call["ringing"])
	}
	rulesWantUsers(t, call, "rejected_by", "bob", "carol")
	if c := rulesGet(t, e, "alice", "group"); !rulesHasEnded(c) {
		t.Errorf("GET after every callee rejected: ended_at %v", c["ended_at"])
	}

	seen, ok := events.Until(rulesEnded, 10*time.Second)
	var names []string
	for _, ev := range seen {
		name := ev.Name
		if name == rulesRejected {
			user, _ := ev.Data["user"].(map[string]any)
			name = fmt.Sprintf("%s by %v", name, user["id"])
		}
		names = append(names, name)
	}
	want := []string{"call.rejected by bob", "call.rejected by carol", "call.ended"}
	if !ok || !slices.Equal(names, want) {
		t.Errorf("caller's events = %v (complete %v), want %v", names, ok, want)
	}

	rulesFCM(t, e, "bob-android", rulesRing, rulesRejected)
	rulesFCM(t, e, "carol-android", rulesRing, rulesRejected)
}

func TestRejectBusyOrTimeoutCountsAsMissedAndDeclineDoesNot(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	callees := map[string]string{"bob": "busy", "carol": "timeout", "dave": "decline"}
	for u := range callees {
		e.Device(u, u+"-android", "firebase", false)
	}
	rulesCreateRing(t, e, "alice", "group", nil, "bob", "carol", "dave", "erin")
	for u, reason := range callees {
		rulesFCM(t, e, u+"-android", rulesRing)
		rulesAct(t, e, u, "group", "reject", map[string]any{"reason": reason})
	}
	call := rulesGet(t, e, "alice", "group")
	rulesWantUsers(t, call, "rejected_by", "bob", "carol", "dave")
	rulesWantUsers(t, call, "missed_by", "bob", "carol")
	if rulesHasEnded(call) {
		t.Errorf("the call ended while erin was still being rung")
	}
	// A rejection is answered with its stop, never with a missed-call push.
	for u := range callees {
		rulesFCM(t, e, u+"-android", rulesRing, rulesRejected)
	}
}

// rulesCancelScenario rings bob (Android, VoIP, iPhone) and carol (Android, iPhone without VoIP), lets
// cancel end the ring as alice, and checks that each callee got exactly one call.missed per device that
// shows alerts, as the stop, and that the call ended.
func rulesCancelScenario(t *testing.T, cancel func(e *harness.Env) map[string]any) {
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	rulesPhone(e, "carol", false)
	rulesPhone(e, "alice", true)
	ringID := rulesRingID(t, rulesCreateRing(t, e, "alice", "c1", nil, "bob", "carol"))
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing)
	rulesAPNs(t, e, "carol-iphone", rulesRing)

	call := cancel(e)
	if !rulesHasEnded(call) || rulesRinging(t, call) {
		t.Errorf("after the caller cancelled: ended_at %v, ringing %v; want ended, not ringing", call["ended_at"], call["ringing"])
	}
	rulesWantUsers(t, call, "missed_by", "bob", "carol")
	rulesWantUsers(t, call, "accepted_by")

	for _, u := range []string{"bob", "carol"} {
		missed := rulesFCM(t, e, u+"-android", rulesRing, rulesMissed)[1]
		shapesFCMAlert(t, u+"-android missed", missed)
		rulesFields(t, u+"-android missed", missed.Data, map[string]string{"ring_id": ringID, "receiver_id": u, "created_by_id": "alice"})
	}
	// bob's iPhone showed the ring over VoIP; the missed-call alert goes to its regular token, and nothing
	// more goes over VoIP.
	shapesAPNsAlert(t, "bob-iphone missed", rulesAPNs(t, e, "bob-iphone", rulesMissed)[0])
	rulesAPNs(t, e, "bob-voip", rulesRing)
	shapesAPNsAlert(t, "carol-iphone missed", rulesAPNs(t, e, "carol-iphone", rulesRing, rulesMissed)[1])
	// The caller hears nothing by push.
	rulesPhoneGotNothing(t, e, "alice")
	// The call is over: nobody can pick up any more.
	e.MustCall(409, "POST", rulesPath("c1", "accept"), e.Token("bob"), nil)
}

func TestCallerRejectCancelsTheRingWithOneMissedPushAsTheStop(t *testing.T) {
	t.Parallel()
	rulesCancelScenario(t, func(e *harness.Env) map[string]any {
		return rulesAct(t, e, "alice", "c1", "reject", map[string]any{"reason": "cancel"})
	})
}

func TestCallerLeavingBeforeAnyAcceptCancelsTheRing(t *testing.T) {
	t.Parallel()
	rulesCancelScenario(t, func(e *harness.Env) map[string]any {
		return rulesAct(t, e, "alice", "c1", "leave", nil)
	})
}

func TestCancelSendsNoMissedPushToACalleeWhoAlreadyRejected(t *testing.T) {
	t.Parallel()
	e := rulesAndroidsRung(t)

	rulesAct(t, e, "bob", "group", "reject", map[string]any{"reason": "decline"})
	call := rulesAct(t, e, "alice", "group", "reject", map[string]any{"reason": "cancel"})
	if !rulesHasEnded(call) {
		t.Errorf("the caller's cancel did not end the call")
	}
	rulesWantUsers(t, call, "missed_by", "carol")
	rulesFCM(t, e, "bob-android", rulesRing, rulesRejected)
	rulesFCM(t, e, "carol-android", rulesRing, rulesMissed)
}

// rulesWaitRingOver polls GET until the call stops ringing and checks that it ends on time: never while
// GET answers before due, always once a GET starts later than due+slack. It returns when it saw the end.
func rulesWaitRingOver(t *testing.T, e *harness.Env, user, id string, due, slack time.Duration, createdAt time.Time) {
	t.Helper()
	end := createdAt.Add(due)
	for {
		start := time.Now()
		call := rulesGet(t, e, user, id)
		answered := time.Now()
		ringing := rulesRinging(t, call)
		switch {
		case !ringing && answered.Before(end):
			t.Fatalf("the ring was over %s after created_at, before its %s were up", answered.Sub(createdAt), due)
		case ringing && start.After(end.Add(slack)):
			t.Fatalf("still ringing %s after created_at: the ring of %s must end within %s", start.Sub(createdAt), due, slack)
		case !ringing:
			t.Logf("ring seen over %s after created_at (due at %s)", answered.Sub(createdAt), due)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rulesTimeoutScenario rings bob (Android, VoIP, iPhone) and carol (Android, iPhone without VoIP) for one
// second, runs atEnd (which returns once the ring is over), and checks that each callee got one missed-call
// push per device that shows alerts and that the call ended.
func rulesTimeoutScenario(t *testing.T, atEnd func(e *harness.Env, createdAt time.Time)) {
	t.Helper()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	rulesPhone(e, "carol", false)
	call := rulesCreateRing(t, e, "alice", "c1", map[string]any{"settings_override": rulesTimeouts(1000, 0)}, "bob", "carol")
	createdAt := rulesTime(t, call["created_at"])
	ringID := rulesRingID(t, call)

	atEnd(e, createdAt)

	missed := rulesFCM(t, e, "bob-android", rulesRing, rulesMissed)[1]
	t.Logf("bob's missed-call push left %s after created_at", missed.At.Sub(createdAt))
	shapesFCMAlert(t, "bob-android missed", missed)
	rulesFields(t, "bob-android missed", missed.Data, map[string]string{"ring_id": ringID, "receiver_id": "bob"})
	shapesAPNsAlert(t, "bob-iphone missed", rulesAPNs(t, e, "bob-iphone", rulesMissed)[0])
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing, rulesMissed)
	rulesAPNs(t, e, "carol-iphone", rulesRing, rulesMissed)

	call = rulesGet(t, e, "alice", "c1")
	if !rulesHasEnded(call) || rulesRinging(t, call) {
		t.Errorf("after nobody answered: ended_at %v, ringing %v; want ended", call["ended_at"], call["ringing"])
	}
	rulesWantUsers(t, call, "missed_by", "bob", "carol")
	e.MustCall(409, "POST", rulesPath("c1", "accept"), e.Token("bob"), nil)
}

func TestRingEndsOnTimeWithMissedPushesWhenNobodyAnswers(t *testing.T) {
	t.Parallel()
	rulesTimeoutScenario(t, func(e *harness.Env, createdAt time.Time) {
		// 250 ms is the contract; 50 more absorb the GET's own way through a loaded machine.
		rulesWaitRingOver(t, e, "alice", "c1", time.Second, 300*time.Millisecond, createdAt)
	})
}

func TestAcceptAfterTheRingTimedOutAnswers409AndMissedPushesStillGo(t *testing.T) {
	t.Parallel()
	// bob picks up just as the ring ends: too late, and bob and carol must still learn they missed it.
	rulesTimeoutScenario(t, func(e *harness.Env, createdAt time.Time) {
		rulesWaitRingOver(t, e, "alice", "c1", time.Second, 300*time.Millisecond, createdAt)
		e.MustCall(409, "POST", rulesPath("c1", "accept"), e.Token("bob"), nil)
	})
}

func TestRequestSeeingTheRingEndFirstStillLeavesTheMissedPushes(t *testing.T) {
	t.Parallel()
	// Whatever request first sees that the ring's time is up (here alice ringing bob again, which changes
	// nothing while the ring is live) must not swallow the missed-call pushes the timeout owes.
	rulesTimeoutScenario(t, func(e *harness.Env, createdAt time.Time) {
		end := createdAt.Add(time.Second)
		time.Sleep(time.Until(end.Add(-100 * time.Millisecond))) // positions the probes at the ring's end
		for n := 0; ; n++ {
			r := e.Call("POST", rulesPath("c1", "ring"), e.Token("alice"), map[string]any{"members_ids": []string{"bob"}})
			if r.Status == 409 {
				t.Logf("ring answered 409 %s after created_at, after %d answers of 200", time.Since(createdAt), n)
				return
			}
			if r.Status != 200 {
				t.Fatalf("ring while bob rings: %d %s", r.Status, r.Raw)
			}
			if time.Now().After(end.Add(5 * time.Second)) {
				t.Fatalf("ring still answered 200 %s after created_at: the ring of 1s never ended", time.Since(createdAt))
			}
		}
	})
}

func TestTimeoutMissesOnlyCalleesWhoDidNotAnswerAndKeepsAnAcceptedCall(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", false)
	rulesPhone(e, "carol", false)
	rulesPhone(e, "dave", false)
	call := rulesCreateRing(t, e, "alice", "group", map[string]any{"settings_override": rulesTimeouts(2000, 0)}, "bob", "carol", "dave")
	createdAt := rulesTime(t, call["created_at"])
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing)

	// bob accepts and carol rejects at once (within the two seconds the ring lasts); dave never answers.
	if r := e.Call("POST", rulesPath("group", "accept"), e.Token("bob"), nil); r.Status != 200 {
		t.Fatalf("bob's accept %s after created_at: %d %s", time.Since(createdAt), r.Status, r.Raw)
	}
	if r := e.Call("POST", rulesPath("group", "reject"), e.Token("carol"), map[string]any{"reason": "decline"}); r.Status != 200 {
		t.Fatalf("carol's reject %s after created_at: %d %s", time.Since(createdAt), r.Status, r.Raw)
	}
	rulesWaitRingOver(t, e, "alice", "group", 2*time.Second, 300*time.Millisecond, createdAt)

	rulesFCM(t, e, "dave-android", rulesRing, rulesMissed)
	rulesAPNs(t, e, "dave-iphone", rulesRing, rulesMissed)
	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	rulesAPNs(t, e, "bob-iphone", rulesRing, rulesAccepted)
	rulesFCM(t, e, "carol-android", rulesRing, rulesRejected)
	rulesAPNs(t, e, "carol-iphone", rulesRing, rulesRejected)

	call = rulesGet(t, e, "alice", "group")
	if rulesHasEnded(call) || rulesRinging(t, call) {
		t.Errorf("after the ring timed out with bob's accept: ended_at %v, ringing %v; want a live call, not ringing", call["ended_at"], call["ringing"])
	}
	rulesWantUsers(t, call, "missed_by", "dave")
	rulesWantUsers(t, call, "participants", "alice")
}

func TestCalleeNotAnsweringWithinIncomingTimeoutIsMissedAloneWhileOthersRingOn(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob", "carol")
	const incoming = 4 * time.Second
	e.MustCall(201, "POST", rulesPath("group"), e.Token("alice"), map[string]any{"data": map[string]any{
		"members": rulesMembers("bob", "carol"), "settings_override": rulesTimeouts(60000, int(incoming.Milliseconds())),
	}})
	// bob is rung first and carol half his time later, into the same ring: bob's time is up while carol's
	// is not.
	ringID := rulesRingID(t, rulesCallOf(t, e.MustCall(200, "POST", rulesPath("group", "ring"), e.Token("alice"),
		map[string]any{"members_ids": []string{"bob"}})))
	bobRung := time.Now()
	rulesFCM(t, e, "bob-android", rulesRing)
	time.Sleep(time.Until(bobRung.Add(incoming / 2))) // spaces the two rings; nothing is awaited
	carolRung := time.Now()
	call := rulesCallOf(t, e.MustCall(200, "POST", rulesPath("group", "ring"), e.Token("alice"),
		map[string]any{"members_ids": []string{"carol"}}))
	if id := rulesRingID(t, call); id != ringID {
		t.Fatalf("ringing carol while bob rings started ring %s, want the live ring %s", id, ringID)
	}
	rulesFCM(t, e, "carol-android", rulesRing)

	missed := rulesFCM(t, e, "bob-android", rulesRing, rulesMissed)[1]
	rulesFields(t, "bob-android missed", missed.Data, map[string]string{"ring_id": ringID, "receiver_id": "bob"})
	if left := time.Until(carolRung.Add(incoming)); left < 500*time.Millisecond {
		t.Fatalf("bob's missed-call push came so late (%s before carol's own time is up) that carol's ring cannot be checked", left)
	}
	call = rulesGet(t, e, "alice", "group")
	if rulesHasEnded(call) || !rulesRinging(t, call) {
		t.Errorf("after bob was missed: ended_at %v, ringing %v; want carol still ringing", call["ended_at"], call["ringing"])
	}
	rulesWantUsers(t, call, "missed_by", "bob")
	rulesFCM(t, e, "carol-android", rulesRing)
	call = rulesAct(t, e, "carol", "group", "accept", nil)
	rulesWantUsers(t, call, "accepted_by", "carol")
	rulesWantUsers(t, call, "missed_by", "bob")
	rulesFCM(t, e, "carol-android", rulesRing, rulesAccepted)
	rulesFCM(t, e, "bob-android", rulesRing, rulesMissed)
}

func TestMarkEndedStopsEveryMemberStillRingingAndEndsTheCall(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	rulesPhone(e, "carol", false)
	rulesPhone(e, "dave", false)
	ringID := rulesRingID(t, rulesCreateRing(t, e, "alice", "group", nil, "bob", "carol", "dave"))
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing)
	rulesAPNs(t, e, "carol-iphone", rulesRing)
	rulesFCM(t, e, "dave-android", rulesRing)
	rulesAct(t, e, "dave", "group", "accept", nil)
	rulesFCM(t, e, "dave-android", rulesRing, rulesAccepted)

	events := e.Events(e.Token("carol"), "")
	call := rulesAct(t, e, "alice", "group", "mark_ended", nil)
	if !rulesHasEnded(call) || rulesRinging(t, call) {
		t.Errorf("after mark_ended: ended_at %v, ringing %v", call["ended_at"], call["ringing"])
	}
	if _, ok := events.Until(rulesEnded, 10*time.Second); !ok {
		t.Errorf("carol got no call.ended event")
	}

	stop := rulesFCM(t, e, "bob-android", rulesRing, rulesEnded)[1]
	shapesFCMData(t, "bob-android stop", stop)
	rulesFields(t, "bob-android stop", stop.Data, map[string]string{"ring_id": ringID, "receiver_id": "bob"})
	shapesAPNsStop(t, "bob-iphone stop", rulesAPNs(t, e, "bob-iphone", rulesEnded)[0])
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesFCM(t, e, "carol-android", rulesRing, rulesEnded)
	shapesAPNsStop(t, "carol-iphone stop", rulesAPNs(t, e, "carol-iphone", rulesRing, rulesEnded)[1])
	// dave no longer rang: nothing more for him.
	rulesFCM(t, e, "dave-android", rulesRing, rulesAccepted)
	rulesAPNs(t, e, "dave-iphone", rulesRing, rulesAccepted)
}

func TestMarkEndedIsAllowedToCreatorAdminMemberAdminUserAndServer(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	for i, tc := range []struct {
		id, who, token string
	}{
		{"by-creator", "the creator", e.Token("alice")},
		{"by-admin-member", "a member with role admin", e.Token("mod")},
		{"by-admin-user", "a user token with role admin", e.TokenWith(api.TokenClaims{UserID: "root", Role: "admin"})},
		{"by-server", "a server token", e.ServerToken()},
	} {
		e.MustCall(201, "POST", rulesPath(tc.id), e.Token("alice"), map[string]any{"ring": true, "data": map[string]any{
			"members": []map[string]any{{"user_id": "bob"}, {"user_id": "mod", "role": "admin"}},
		}})
		// The ring must have reached bob for its stop to have something to stop.
		e.Eventually(30*time.Second, "bob's ring of "+tc.id, func() bool { return len(e.FCM.MessagesTo("bob-android")) >= 2*i+1 })
		if r := e.Call("POST", rulesPath(tc.id, "mark_ended"), e.Token("bob"), nil); r.Status != 403 {
			t.Errorf("%s: mark_ended by a plain member: %d, want 403: %s", tc.id, r.Status, r.Raw)
		}
		call := rulesCallOf(t, e.MustCall(200, "POST", rulesPath(tc.id, "mark_ended"), tc.token, nil))
		if !rulesHasEnded(call) {
			t.Errorf("mark_ended by %s did not end the call", tc.who)
		}
	}
	got := map[string][]string{}
	for _, m := range e.WaitFCM("bob-android", 8) {
		got[m.Data["call_id"]] = append(got[m.Data["call_id"]], m.Data["type"])
	}
	for _, id := range []string{"by-creator", "by-admin-member", "by-admin-user", "by-server"} {
		if want := []string{rulesRing, rulesEnded}; !slices.Equal(got[id], want) {
			t.Errorf("bob's pushes for call %s: %v, want %v", id, got[id], want)
		}
	}
}

func TestEndedCallAnswers409ToRingAcceptAndReject(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	rulesCreateRing(t, e, "alice", "c1", nil, "bob", "carol")
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAct(t, e, "alice", "c1", "mark_ended", nil)
	rulesFCM(t, e, "bob-android", rulesRing, rulesEnded)

	for _, tc := range []struct {
		user, action string
		body         any
	}{
		{"alice", "ring", map[string]any{}},
		{"alice", "ring", map[string]any{"members_ids": []string{"bob"}}},
		{"bob", "accept", nil},
		{"carol", "accept", nil},
		{"bob", "reject", map[string]any{"reason": "decline"}},
		{"alice", "reject", map[string]any{"reason": "cancel"}},
		{"alice", "mark_ended", nil},
	} {
		r := e.Call("POST", rulesPath("c1", tc.action), e.Token(tc.user), tc.body)
		if r.Status != 409 || r.Body["status"] != float64(409) || r.Body["code"] == "" {
			t.Errorf("%s %s on an ended call: %d %s, want 409 with an error body", tc.user, tc.action, r.Status, r.Raw)
		}
	}
	if r := e.Call("GET", rulesPath("c1")+"?ring=true", e.Token("alice"), nil); r.Status != 409 {
		t.Errorf("GET ?ring=true on an ended call: %d %s, want 409", r.Status, r.Raw)
	}
	rulesFCM(t, e, "bob-android", rulesRing, rulesEnded)
}

func TestCallerLeavingAfterAnAcceptDoesNotStopOthersStillRinging(t *testing.T) {
	t.Parallel()
	e, _ := rulesGroupRung(t)
	rulesAct(t, e, "bob", "group", "accept", nil)

	call := rulesAct(t, e, "alice", "group", "leave", nil)
	if rulesHasEnded(call) || !rulesRinging(t, call) {
		t.Errorf("after the caller left an accepted call: ended_at %v, ringing %v; want carol still ringing", call["ended_at"], call["ringing"])
	}
	rulesWantUsers(t, call, "missed_by")
	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	rulesFCM(t, e, "carol-android", rulesRing)
	rulesAPNs(t, e, "carol-voip", rulesRing)
	rulesAPNs(t, e, "carol-iphone")
	rulesAct(t, e, "carol", "group", "accept", nil)
	rulesFCM(t, e, "carol-android", rulesRing, rulesAccepted)
}

func TestRingAfterTheRingIsOverStartsANewRing(t *testing.T) {
	t.Parallel()
	e, first := rulesGroupRung(t)
	rulesAct(t, e, "bob", "group", "accept", nil)
	rulesAct(t, e, "carol", "group", "reject", map[string]any{"reason": "decline"})
	call := rulesGet(t, e, "alice", "group")
	if rulesRinging(t, call) || rulesHasEnded(call) {
		t.Fatalf("after bob accepted and carol rejected: ringing %v, ended_at %v; want a live call, ring over", call["ringing"], call["ended_at"])
	}
	rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted)
	rulesFCM(t, e, "carol-android", rulesRing, rulesRejected)
	rulesAPNs(t, e, "carol-voip", rulesRing)

	call = rulesCallOf(t, e.MustCall(200, "POST", rulesPath("group", "ring"), e.Token("alice"), map[string]any{}))
	second := rulesRingID(t, call)
	if second == first {
		t.Fatalf("a ring after the ring was over kept ring_id %s", first)
	}
	if !rulesRinging(t, call) {
		t.Errorf("ringing = false after the new ring")
	}
	bob := rulesFCM(t, e, "bob-android", rulesRing, rulesAccepted, rulesRing)[2]
	rulesFields(t, "bob's second ring", bob.Data, map[string]string{"ring_id": second})
	carol := rulesFCM(t, e, "carol-android", rulesRing, rulesRejected, rulesRing)[2]
	rulesFields(t, "carol's second ring", carol.Data, map[string]string{"ring_id": second})
	voip := rulesAPNs(t, e, "carol-voip", rulesRing, rulesRing)[1]
	rulesFields(t, "carol's second VoIP ring", voip.Data(), map[string]string{"ring_id": second})
	rulesAPNs(t, e, "carol-iphone", rulesRejected)

	// The new ring is a ring like the first: accepting it stops it.
	rulesAct(t, e, "carol", "group", "accept", nil)
	stop := rulesFCM(t, e, "carol-android", rulesRing, rulesRejected, rulesRing, rulesAccepted)[3]
	rulesFields(t, "carol's stop of the second ring", stop.Data, map[string]string{"ring_id": second})
}

func TestRingingAMemberStillRungInTheLiveRingChangesNothing(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)
	e.Android("carol")
	ringID := rulesRingID(t, rulesCreateRing(t, e, "alice", "c1", nil, "bob"))
	rulesFCM(t, e, "bob-android", rulesRing)

	for _, body := range []map[string]any{{"members_ids": []string{"bob"}}, {}} {
		call := rulesCallOf(t, e.MustCall(200, "POST", rulesPath("c1", "ring"), e.Token("alice"), body))
		if id := rulesRingID(t, call); id != ringID {
			t.Errorf("ring %v while bob rings: ring_id %s, want the live ring %s", body, id, ringID)
		}
	}
	if r := e.Call("GET", rulesPath("c1")+"?ring=true", e.Token("alice"), nil); r.Status != 200 {
		t.Errorf("GET ?ring=true while bob rings: %d %s", r.Status, r.Raw)
	}
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesAPNs(t, e, "bob-iphone")

	// A member added later joins the live ring, with its ring_id; bob still hears nothing new.
	e.MustCall(200, "POST", rulesPath("c1", "members"), e.Token("alice"), map[string]any{"update_members": rulesMembers("carol")})
	call := rulesCallOf(t, e.MustCall(200, "POST", rulesPath("c1", "ring"), e.Token("alice"), map[string]any{"members_ids": []string{"bob", "carol"}}))
	if id := rulesRingID(t, call); id != ringID {
		t.Errorf("ringing carol into the live ring: ring_id %s, want %s", id, ringID)
	}
	carol := rulesFCM(t, e, "carol-android", rulesRing)[0]
	rulesFields(t, "carol's ring", carol.Data, map[string]string{"ring_id": ringID, "receiver_id": "carol"})
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
}

func TestGetOrCreateWithRingOnAnExistingCallRingsNobody(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "alice", true)
	rulesPhone(e, "bob", true)
	ringID := rulesRingID(t, rulesCreateRing(t, e, "alice", "c1", nil, "bob"))
	rulesFCM(t, e, "bob-android", rulesRing)

	body := map[string]any{"ring": true, "data": map[string]any{"members": rulesMembers("alice", "bob")}}
	for _, user := range []string{"alice", "bob"} {
		r := e.MustCall(200, "POST", rulesPath("c1"), e.Token(user), body)
		if r.Body["created"] != false {
			t.Errorf("get-or-create of an existing call by %s: created = %v", user, r.Body["created"])
		}
		if id := rulesRingID(t, rulesCallOf(t, r)); id != ringID {
			t.Errorf("get-or-create of an existing call by %s: ring_id %s, want %s", user, id, ringID)
		}
	}
	rulesFCM(t, e, "bob-android", rulesRing)
	rulesAPNs(t, e, "bob-voip", rulesRing)
	rulesAPNs(t, e, "bob-iphone")
	rulesPhoneGotNothing(t, e, "alice")
}

// rulesList is GET /v1/calls as user (query like "?calling_state=ringing"): each call's cid, calling_state
// and created_by_me, in the order answered, and the calls' created_at.
func rulesList(t *testing.T, e *harness.Env, user, query string) ([]string, []time.Time) {
	t.Helper()
	r := e.MustCall(200, "GET", "/v1/calls"+query, e.Token(user), nil)
	items, ok := r.Body["calls"].([]any)
	if !ok {
		t.Fatalf("GET /v1/calls%s: no calls list: %s", query, r.Raw)
	}
	var out []string
	var created []time.Time
	for _, it := range items {
		m := it.(map[string]any)
		call := m["call"].(map[string]any)
		out = append(out, fmt.Sprintf("%v %v created_by_me=%v", call["cid"], m["calling_state"], m["created_by_me"]))
		created = append(created, rulesTime(t, call["created_at"]))
	}
	return out, created
}

func TestCallsListShowsCallingStatesAndFiltersRinging(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesCreateRing(t, e, "alice", "ringing", nil, "bob")
	rulesCreateRing(t, e, "alice", "joined", nil, "bob")
	rulesAct(t, e, "bob", "joined", "join", nil)
	e.MustCall(201, "POST", rulesPath("idle"), e.Token("alice"), map[string]any{"data": map[string]any{"members": rulesMembers("bob")}})
	rulesCreateRing(t, e, "alice", "ended", nil, "bob")
	rulesAct(t, e, "alice", "ended", "mark_ended", nil)
	rulesCreateRing(t, e, "carol", "incoming", nil, "alice")

	for _, tc := range []struct {
		user, query string
		want        []string
	}{
		{"bob", "", []string{
			"default:ended ended created_by_me=false", "default:idle idle created_by_me=false",
			"default:joined joined created_by_me=false", "default:ringing ringing created_by_me=false"}},
		{"bob", "?calling_state=ringing", []string{"default:ringing ringing created_by_me=false"}},
		{"alice", "", []string{
			"default:incoming ringing created_by_me=false", "default:ended ended created_by_me=true",
			"default:idle idle created_by_me=true", "default:joined joined created_by_me=true",
			"default:ringing ringing created_by_me=true"}},
		{"alice", "?calling_state=ringing", []string{
			"default:incoming ringing created_by_me=false", "default:ringing ringing created_by_me=true"}},
		{"alice", "?calling_state=joined", []string{"default:joined joined created_by_me=true"}},
		{"bob", "?calling_state=ended", []string{"default:ended ended created_by_me=false"}},
	} {
		got, created := rulesList(t, e, tc.user, tc.query)
		for i := 1; i < len(created); i++ {
			if created[i].After(created[i-1]) {
				t.Errorf("%s's calls%s are not newest first: %v", tc.user, tc.query, got)
			}
		}
		// Calls created within one millisecond may come in either order: compare as sets, order checked above.
		gs, ws := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tc.want))
		if !slices.Equal(gs, ws) {
			t.Errorf("%s's calls%s:\n got %v\nwant %v", tc.user, tc.query, got, tc.want)
		}
	}
}
