package e2e

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

// checkedCall is rawCall through the harness's checked client: the answer must match openapi.yaml.
func checkedCall(t *testing.T, e *harness.Env, method, path, token string, body any) harness.Resp {
	t.Helper()
	return rawCallWith(t, e.HTTP(), e, method, path, token, body)
}

// checkRateLimited fails unless a is the 429 rate_limited answer with a Retry-After of whole seconds.
func checkRateLimited(t *testing.T, what string, a harness.Resp) {
	t.Helper()
	if a.Status != http.StatusTooManyRequests || a.Body["code"] != "rate_limited" {
		t.Fatalf("%s: %d %v, want 429 rate_limited", what, a.Status, a.Body)
	}
	// A 2/m rate gives a ring back every 30 s.
	if n, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || n < 1 || n > 30 {
		t.Fatalf("%s: Retry-After %q, want whole seconds from 1 to 30", what, a.Header.Get("Retry-After"))
	}
}

func TestAUserPastTheRingRateIsRefused429WithRetryAfterAndNothingIsStored(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_RING_RATE=2/m"}})
	alice := e.Token("alice")
	ring := func(id string) harness.Resp {
		return checkedCall(t, e, "POST", "/v1/call/default/"+id, alice, map[string]any{"ring": true, "data": map[string]any{"members": harness.MemberList("alice", "bob")}})
	}
	for _, id := range []string{"c1", "c2"} {
		if a := ring(id); a.Status != http.StatusCreated {
			t.Fatalf("ring %s within the rate: %d %v", id, a.Status, a.Body)
		}
	}
	checkRateLimited(t, "get-or-create with ring past the rate", ring("c3"))
	if r := e.Call("GET", "/v1/call/default/c3", e.ServerToken(), nil); r.Status != http.StatusNotFound {
		t.Fatalf("a refused get-or-create stored its call: %d %s", r.Status, r.Raw)
	}
	checkRateLimited(t, "POST .../ring past the rate", checkedCall(t, e, "POST", "/v1/call/default/c1/ring", alice, map[string]any{}))
	checkRateLimited(t, "GET ?ring=true past the rate", checkedCall(t, e, "GET", "/v1/call/default/c1?ring=true", alice, nil))

	// What starts no ring is never limited, and neither is another user, nor the backend.
	e.MustCall(201, "POST", "/v1/call/default/quiet", alice, map[string]any{"data": map[string]any{"members": harness.MemberList("alice", "bob")}})
	e.MustCall(200, "POST", "/v1/call/default/c1/reject", alice, map[string]any{"reason": "cancel"})
	e.MustCall(201, "POST", "/v1/call/default/bob1", e.Token("bob"), map[string]any{"ring": true, "data": map[string]any{"members": harness.MemberList("bob", "alice")}})
	e.MustCall(201, "POST", "/v1/call/default/backend", e.ServerToken(), map[string]any{"ring": true, "data": map[string]any{"created_by_id": "alice", "members": harness.MemberList("alice", "bob")}})
	e.MustCall(200, "POST", "/v1/call/default/c2/ring", e.ServerToken(), map[string]any{"user_id": "alice"})

	if n := harness.Scrape(t, e.URL).Get("ringer_rings_rate_limited_total"); n != 3 {
		t.Fatalf("ringer_rings_rate_limited_total = %v, want 3", n)
	}
}
