package e2e

import (
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

const eventsWait = 15 * time.Second

// eventsCheck checks an event's data as API.md says: type (the event name), call_cid, call, user, created_at.
func eventsCheck(t testing.TB, ev harness.Event, name, cid, user string) {
	t.Helper()
	if ev.Name != name {
		t.Errorf("event %q, want %q", ev.Name, name)
		return
	}
	d := ev.Data
	if d["type"] != name {
		t.Errorf("%s: data.type %v", name, d["type"])
	}
	if d["call_cid"] != cid {
		t.Errorf("%s: data.call_cid %v, want %s", name, d["call_cid"], cid)
	}
	if c, _ := d["call"].(map[string]any); c == nil || c["cid"] != cid {
		t.Errorf("%s: data.call %v", name, d["call"])
	}
	if u, _ := d["user"].(map[string]any); u == nil || u["id"] != user {
		t.Errorf("%s: data.user %v, want id %s", name, d["user"], user)
	}
	s, _ := d["created_at"].(string)
	if at, err := time.Parse(time.RFC3339Nano, s); err != nil || time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Errorf("%s: data.created_at %v is not an RFC 3339 time of now", name, d["created_at"])
	}
}

// eventsUntil reads s up to the first event named want about cid and returns the events about cid on the
// way, failing the test after eventsWait.
func eventsUntil(t testing.TB, s *harness.Events, want, cid string) []harness.Event {
	t.Helper()
	var about []harness.Event
	_, ok := s.Await(eventsWait, func(ev harness.Event) bool {
		if ev.Data["call_cid"] != cid {
			return false
		}
		about = append(about, ev)
		return ev.Name == want
	})
	if !ok {
		t.Fatalf("no %s event about %s within %s; saw %v", want, cid, eventsWait, eventsNames(about))
	}
	return about
}

func eventsNames(evs []harness.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Name
	}
	return out
}

func TestEventsReachTheMembersOfARungCall(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	bob := e.Events(e.Token("bob"), "")
	alice := e.Events(e.Token("alice"), "")
	e.MustCall(201, "POST", "/v1/call/default/ev1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	const cid = "default:ev1"

	got := eventsUntil(t, bob, "call.ring", cid)
	if len(got) < 2 || got[0].Name != "call.created" {
		t.Fatalf("bob's events about the call: %v, want call.created then call.ring", eventsNames(got))
	}
	eventsCheck(t, got[0], "call.created", cid, "alice")
	eventsCheck(t, got[len(got)-1], "call.ring", cid, "alice")
	if c, _ := got[len(got)-1].Data["call"].(map[string]any); c["ringing"] != true {
		t.Errorf("call.ring's call is not ringing: %v", c["ringing"])
	}

	e.MustCall(200, "POST", "/v1/call/default/ev1/accept", e.Token("bob"), nil)
	for who, s := range map[string]*harness.Events{"bob": bob, "alice": alice} {
		evs := eventsUntil(t, s, "call.accepted", cid)
		acc := evs[len(evs)-1]
		eventsCheck(t, acc, "call.accepted", cid, "bob")
		c, _ := acc.Data["call"].(map[string]any)
		sess, _ := c["session"].(map[string]any)
		if by, _ := sess["accepted_by"].(map[string]any); by["bob"] == nil {
			t.Errorf("%s's call.accepted: session.accepted_by %v", who, sess["accepted_by"])
		}
	}
}

func TestEventsServerTokenSubscribesForTheUserItNames(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	carol := e.Events(e.ServerToken(), "?user_id=carol")
	e.MustCall(201, "POST", "/v1/call/default/ev2", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "carol")},
	})
	got := eventsUntil(t, carol, "call.ring", "default:ev2")
	eventsCheck(t, got[len(got)-1], "call.ring", "default:ev2", "alice")

	e.MustCall(200, "POST", "/v1/call/default/ev2/reject", e.ServerToken(), map[string]any{"user_id": "carol", "reason": "decline"})
	got = eventsUntil(t, carol, "call.rejected", "default:ev2")
	eventsCheck(t, got[len(got)-1], "call.rejected", "default:ev2", "carol")
}

func TestEventsDoNotReachNonMembers(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	dave := e.Events(e.Token("dave"), "")
	bob := e.Events(e.Token("bob"), "")
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/private", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	// Published to bob: whatever dave would get about it would come before the events below.
	eventsUntil(t, bob, "call.ring", "default:private")
	e.MustCall(200, "POST", "/v1/call/default/private/accept", e.Token("bob"), nil)
	eventsUntil(t, bob, "call.accepted", "default:private")

	e.MustCall(201, "POST", "/v1/call/default/with-dave", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "dave")},
	})
	_, ok := dave.Await(eventsWait, func(ev harness.Event) bool {
		if ev.Data["call_cid"] != "default:with-dave" {
			t.Fatalf("dave, not a member, got %s about %v", ev.Name, ev.Data["call_cid"])
		}
		return ev.Name == "call.ring"
	})
	if !ok {
		t.Fatalf("dave got no call.ring for his own call within %s", eventsWait)
	}
}
