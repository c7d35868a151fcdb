package e2e

// PATCH /v1/call/{type}/{id} (API.md, "Updating a call"): starts_at, custom and settings_override, by whoever
// may end the call; a change sends call.updated over SSE and webhooks.

import (
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

func TestPatchChangesTheCallAndEveryMemberAndWebhookHearsCallUpdated(t *testing.T) {
	t.Parallel()
	const secret = "whsec-update"
	rcv := newReceiver(t, secret)
	e := harness.Start(t, harness.Options{Env: webhookEnv(rcv.URL, secret)})
	e.MustCall(201, "POST", rulesPath("up1"), e.Token("alice"), map[string]any{"data": map[string]any{
		"members": rulesMembers("bob"), "custom": map[string]any{"display_name": "Standup"},
	}})
	bob := e.Events(e.Token("bob"), "")

	starts := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	r := e.MustCall(200, "PATCH", rulesPath("up1"), e.Token("alice"), map[string]any{
		"starts_at":         starts.Format(time.RFC3339),
		"custom":            map[string]any{"display_name": "Retro"},
		"settings_override": rulesTimeouts(5000, 0),
	})
	call := r.Body["call"].(map[string]any)
	if call["starts_at"] != starts.Format(time.RFC3339) {
		t.Errorf("starts_at = %v, want %s", call["starts_at"], starts.Format(time.RFC3339))
	}
	if call["custom"].(map[string]any)["display_name"] != "Retro" {
		t.Errorf("custom = %v, want the new one", call["custom"])
	}
	ring := call["settings"].(map[string]any)["ring"].(map[string]any)
	if ring["auto_cancel_timeout_ms"] != float64(5000) || ring["incoming_call_timeout_ms"] != float64(30000) {
		t.Errorf("settings.ring = %v, want auto_cancel 5000 and incoming left at 30000", ring)
	}

	seen, ok := bob.Until("call.updated", 10*time.Second)
	if !ok {
		t.Fatalf("bob did not hear call.updated; heard %v", eventNamesOf(seen))
	}
	ev := seen[len(seen)-1].Data
	if ev["user"].(map[string]any)["id"] != "alice" || ev["call"].(map[string]any)["custom"].(map[string]any)["display_name"] != "Retro" {
		t.Errorf("call.updated = %v, want alice's update with the new call", ev)
	}
	e.Eventually(10*time.Second, "the call.updated webhook", func() bool { return len(rcv.ofType("call.updated")) > 0 })
	if h := rcv.ofType("call.updated")[0]; !h.SignatureOK || h.Body["call_cid"] != "default:up1" {
		t.Errorf("call.updated webhook: signature ok %v, body %v", h.SignatureOK, h.Body)
	}

	// null makes the call unscheduled.
	r = e.MustCall(200, "PATCH", rulesPath("up1"), e.ServerToken(), map[string]any{"starts_at": nil})
	if r.Body["call"].(map[string]any)["starts_at"] != nil {
		t.Errorf("starts_at after null = %v, want null", r.Body["call"].(map[string]any)["starts_at"])
	}

	// A ring after the update takes its timeout: 5 s.
	rung := e.MustCall(200, "POST", rulesPath("up1", "ring"), e.Token("alice"), nil)
	if rung.Body["call"].(map[string]any)["ringing"] != true {
		t.Fatalf("ring after the update did not ring: %v", rung.Body)
	}
	e.Eventually(12*time.Second, "the 5 s ring to end (the default would take 30 s)", func() bool {
		return e.MustCall(200, "GET", rulesPath("up1"), e.Token("alice"), nil).Body["call"].(map[string]any)["ringing"] == false
	})
}

func TestOnlyWhoMayEndTheCallMayPatchIt(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.MustCall(201, "POST", rulesPath("up2"), e.Token("alice"), map[string]any{"data": map[string]any{
		"members": []map[string]any{{"user_id": "bob"}, {"user_id": "carol", "role": "admin"}},
	}})
	body := map[string]any{"custom": map[string]any{"topic": "q4"}}
	e.MustCall(403, "PATCH", rulesPath("up2"), e.Token("bob"), body)
	e.MustCall(403, "PATCH", rulesPath("up2"), e.Token("mallory"), body)
	e.MustCall(200, "PATCH", rulesPath("up2"), e.Token("carol"), body)
	e.MustCall(200, "PATCH", rulesPath("up2"), e.Token("alice"), body)
	e.MustCall(404, "PATCH", rulesPath("nope"), e.Token("alice"), body)
	for field, v := range map[string]any{"starts_at": "tomorrow", "custom": "text"} {
		r := e.Call("PATCH", rulesPath("up2"), e.Token("alice"), map[string]any{field: v})
		if r.Status != 400 {
			t.Errorf("PATCH with %s %v: %d %s, want 400", field, v, r.Status, r.Raw)
		}
	}
	e.MustCall(200, "POST", rulesPath("up2", "mark_ended"), e.Token("alice"), nil)
	e.MustCall(409, "PATCH", rulesPath("up2"), e.Token("alice"), body)
}
