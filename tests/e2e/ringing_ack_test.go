package e2e

import (
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

func ringingBy(t *testing.T, r harness.Resp) map[string]any {
	t.Helper()
	rb, ok := r.Body["call"].(map[string]any)["session"].(map[string]any)["ringing_by"].(map[string]any)
	if !ok {
		t.Fatalf("no session.ringing_by in %v", r.Body)
	}
	return rb
}

func TestACalleeAcknowledgesTheRingOnceAndMembersHearItOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Events(e.Token("alice"), "")
	r := e.MustCall(201, "POST", "/v1/call/default/ack1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("bob")},
	})
	if len(ringingBy(t, r)) != 0 {
		t.Fatalf("ringing_by before any acknowledgement: %v", ringingBy(t, r))
	}
	first := ringingBy(t, e.MustCall(200, "POST", "/v1/call/default/ack1/ringing", e.Token("bob"), nil))
	if first["bob"] == nil {
		t.Fatalf("ringing_by after bob's acknowledgement: %v", first)
	}
	again := ringingBy(t, e.MustCall(200, "POST", "/v1/call/default/ack1/ringing", e.Token("bob"), nil))
	if again["bob"] != first["bob"] {
		t.Errorf("a second acknowledgement moved bob's time from %v to %v", first["bob"], again["bob"])
	}
	e.MustCall(200, "POST", "/v1/call/default/ack1/accept", e.Token("bob"), nil)
	seen, ok := alice.Until("call.accepted", 10*time.Second)
	if !ok {
		t.Fatalf("alice did not hear the accept; heard %v", eventNamesOf(seen))
	}
	n := 0
	for _, ev := range seen {
		if ev.Name == "call.ringing" {
			n++
			if u := ev.Data["user"].(map[string]any)["id"]; u != "bob" {
				t.Errorf("call.ringing names %v, want bob", u)
			}
		}
	}
	if n != 1 {
		t.Errorf("alice heard call.ringing %d times, want once: %v", n, eventNamesOf(seen))
	}
}

func TestOnlyAMemberBeingRungCanAcknowledgeTheRing(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.MustCall(201, "POST", "/v1/call/default/ack2", e.Token("alice"), map[string]any{
		"data": map[string]any{"members": harness.MemberList("bob", "carol")},
	})
	// Nobody is rung yet.
	e.MustCall(409, "POST", "/v1/call/default/ack2/ringing", e.Token("bob"), nil)
	e.MustCall(200, "POST", "/v1/call/default/ack2/ring", e.Token("alice"), map[string]any{"members_ids": []string{"bob"}})
	// The caller and a member not rung in this ring.
	e.MustCall(409, "POST", "/v1/call/default/ack2/ringing", e.Token("alice"), nil)
	e.MustCall(409, "POST", "/v1/call/default/ack2/ringing", e.Token("carol"), nil)
	// Not a member at all.
	e.MustCall(403, "POST", "/v1/call/default/ack2/ringing", e.Token("mallory"), nil)
	e.MustCall(404, "POST", "/v1/call/default/nope/ringing", e.Token("bob"), nil)
	// The ring over for bob: accepted.
	e.MustCall(200, "POST", "/v1/call/default/ack2/accept", e.Token("bob"), nil)
	r := e.MustCall(409, "POST", "/v1/call/default/ack2/ringing", e.Token("bob"), nil)
	if r.Body["code"] != "conflict" {
		t.Errorf("409 body %v, want code conflict", r.Body)
	}
}

func eventNamesOf(evs []harness.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Name
	}
	return out
}
