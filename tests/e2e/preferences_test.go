package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/client"
	"github.com/ringer-dev/ringer/tests/harness"
)

// ringBob has alice ring bob on a new call that times out after timeoutMs, and returns its ring id.
func ringBob(t *testing.T, e *harness.Env, id string, timeoutMs int) string {
	t.Helper()
	r := e.MustCall(201, "POST", "/v1/call/default/"+id, e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{
			"members":           harness.MemberList("alice", "bob"),
			"settings_override": map[string]any{"ring": map[string]any{"auto_cancel_timeout_ms": timeoutMs, "incoming_call_timeout_ms": timeoutMs}},
		},
	})
	return r.Body["call"].(map[string]any)["ring_id"].(string)
}

// bobRinging says whether bob's call list shows call id ringing.
func bobRinging(e *harness.Env, id string) bool {
	r := e.MustCall(200, "GET", "/v1/calls?calling_state=ringing", e.Token("bob"), nil)
	return strings.Contains(string(r.Raw), `"cid":"default:`+id+`"`)
}

// missedBy says whether call id records bob as having missed its ring.
func missedBy(e *harness.Env, id, user string) bool {
	r := e.MustCall(200, "GET", "/v1/call/default/"+id, e.Token("alice"), nil)
	missed, _ := r.Body["call"].(map[string]any)["session"].(map[string]any)["missed_by"].(map[string]any)
	_, ok := missed[user]
	return ok
}

func TestAUserWithPushesOffIsRungInTheAPIWithNoPushAndGetsTheRingAgainOnceBackOn(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)

	bad := e.MustCall(400, "POST", "/v1/push_preferences", e.Token("bob"), map[string]any{"call_level": "some"})
	if bad.Body["code"] != "invalid_field" || !strings.HasPrefix(bad.Body["message"].(string), "call_level") {
		t.Fatalf("unknown call_level: %s", bad.Raw)
	}
	got := e.MustCall(200, "GET", "/v1/push_preferences", e.Token("bob"), nil)
	if got.Body["call_level"] != "all" || got.Body["disabled_until"] != nil || got.Body["user_id"] != "bob" {
		t.Fatalf("default preferences: %s", got.Raw)
	}
	set := e.MustCall(200, "POST", "/v1/push_preferences", e.ServerToken(), map[string]any{"call_level": "none", "user_id": "bob"})
	if set.Body["call_level"] != "none" || set.Body["disabled_until"] != nil || set.Body["user_id"] != "bob" {
		t.Fatalf("stored preferences: %s", set.Raw)
	}
	if got := e.MustCall(200, "GET", "/v1/push_preferences?user_id=bob", e.ServerToken(), nil); got.Body["call_level"] != "none" {
		t.Fatalf("read back: %s", got.Raw)
	}

	events := e.Events(e.Token("bob"), "")
	ringBob(t, e, "off", 1000)
	if !bobRinging(e, "off") {
		t.Fatal("bob with pushes off is not ringing in GET /v1/calls")
	}
	// The event stream carries the ring and, as the ring times out as usual, the miss; the miss brings no
	// alert either.
	eventsUntil(t, events, "call.ring", "default:off")
	eventsUntil(t, events, "call.missed", "default:off")
	e.Eventually(10*time.Second, "bob to miss the ring", func() bool { return missedBy(e, "off", "bob") })
	e.Quiet()
	for _, tok := range []string{bobVoIP, bobIPhone} {
		if n := len(e.APNs.NotificationsTo(tok)); n != 0 {
			t.Fatalf("APNs device of bob with pushes off got %v", e.APNsTypes(tok))
		}
	}
	if n := len(e.FCM.MessagesTo("bob-android")); n != 0 {
		t.Fatalf("FCM device of bob with pushes off got %v", e.FCMTypes("bob-android"))
	}
	m := harness.Scrape(t, e.URL)
	if n := m.Get("ringer_pushes_suppressed_total", "type", "call.ring"); n != 2 {
		t.Fatalf("ringer_pushes_suppressed_total{type=call.ring} = %v, want 2 (the FCM and VoIP tokens a ring would reach)", n)
	}
	if n := m.Get("ringer_pushes_suppressed_total", "type", "call.missed"); n != 2 {
		t.Fatalf("ringer_pushes_suppressed_total{type=call.missed} = %v, want 2 (the devices that show alerts)", n)
	}

	e.MustCall(200, "POST", "/v1/push_preferences", e.Token("bob"), map[string]any{"call_level": "all"})
	ringID := ringBob(t, e, "on", 30000)
	ring := e.WaitFCM("bob-android", 1)[0]
	if ring.Data["type"] != "call.ring" || ring.Data["ring_id"] != ringID {
		t.Fatalf("ring once pushes are back on: %+v", ring)
	}
	e.WaitAPNs(bobVoIP, 1)
}

func TestASnoozedUserGetsNoPushUntilTheSnoozeEnds(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")

	until := time.Now().Add(4 * time.Second).UTC().Truncate(time.Millisecond)
	set := e.MustCall(200, "POST", "/v1/push_preferences", e.Token("bob"), map[string]any{"disabled_until": until.Format(time.RFC3339Nano)})
	if set.Body["call_level"] != "all" || set.Body["disabled_until"] != until.Format(time.RFC3339Nano) {
		t.Fatalf("stored snooze: %s, want disabled_until %s", set.Raw, until.Format(time.RFC3339Nano))
	}
	ringBob(t, e, "snoozed", 30000)
	if !bobRinging(e, "snoozed") {
		t.Fatal("snoozed bob is not ringing in GET /v1/calls")
	}
	e.Quiet()
	if n := len(e.FCM.MessagesTo("bob-android")); n != 0 {
		t.Fatalf("snoozed bob's device got %v", e.FCMTypes("bob-android"))
	}
	e.MustCall(200, "POST", "/v1/call/default/snoozed/mark_ended", e.Token("alice"), nil)

	// The snooze's end is a moment on the clock: wait for it, then a new ring is pushed.
	e.Eventually(10*time.Second, "the snooze to end", func() bool { return time.Now().After(until) })
	if got := e.MustCall(200, "GET", "/v1/push_preferences", e.Token("bob"), nil); got.Body["disabled_until"] != nil {
		t.Fatalf("a snooze that has passed reads %s, want disabled_until null", got.Raw)
	}
	ringID := ringBob(t, e, "awake", 30000)
	ring := e.WaitFCM("bob-android", 1)[0]
	if ring.Data["type"] != "call.ring" || ring.Data["ring_id"] != ringID {
		t.Fatalf("ring after the snooze: %+v", ring)
	}
}

func TestARingThatStartedBeforePushesWentOffStillGetsItsStop(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	rulesPhone(e, "bob", true)

	ringBob(t, e, "c1", 30000)
	e.WaitFCM("bob-android", 1)
	e.WaitAPNs(bobVoIP, 1)
	e.MustCall(200, "POST", "/v1/push_preferences", e.Token("bob"), map[string]any{"call_level": "none"})
	// The caller gives up: bob misses the ring. The devices it reached stop, silently: no missed-call alert.
	e.MustCall(200, "POST", "/v1/call/default/c1/reject", e.Token("alice"), map[string]any{"reason": "cancel"})
	stop := e.WaitFCM("bob-android", 2)[1]
	if stop.Data["type"] != "call.missed" || stop.Notification != nil || stop.AndroidPriority != "high" {
		t.Fatalf("FCM stop of a ring that started before pushes went off: %+v", stop)
	}
	bg := e.WaitAPNs(bobIPhone, 1)[0]
	if bg.PushType != "background" || bg.Data()["type"] != "call.missed" {
		t.Fatalf("APNs stop of a VoIP-rung member: %+v", bg)
	}
}

func TestTheGoClientSetsAndReadsPushPreferences(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	ctx := e.Context()
	bob := clientFor(e, e.Token("bob"))
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	got, err := bob.SetPushPreferences(ctx, client.PushPreferences{CallLevel: "none", DisabledUntil: &until})
	if err != nil || got.CallLevel != "none" || got.DisabledUntil == nil || !got.DisabledUntil.Equal(until) || got.UserID != "bob" {
		t.Fatalf("SetPushPreferences = %+v, %v", got, err)
	}
	if got, err := clientFor(e, e.ServerToken()).GetPushPreferences(ctx, "bob"); err != nil || got.CallLevel != "none" {
		t.Fatalf("GetPushPreferences = %+v, %v", got, err)
	}
	_, err = bob.SetPushPreferences(ctx, client.PushPreferences{CallLevel: "loud"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 400 || !strings.HasPrefix(ce.Message, "call_level") {
		t.Fatalf("an unknown call level: %v, want 400 naming call_level", err)
	}
}
