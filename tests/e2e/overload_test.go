package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

func rawCall(t *testing.T, e *harness.Env, method, path, token string, body any) harness.Resp {
	t.Helper()
	return rawCallWith(t, http.DefaultClient, e, method, path, token, body)
}

// rawCallWith is rawCall through client (e.HTTP() checks the exchange against openapi.yaml).
func rawCallWith(t *testing.T, client *http.Client, e *harness.Env, method, path, token string, body any) harness.Resp {
	t.Helper()
	return harness.Do(t, client, method, e.URL+path, harness.Bearer(token), body)
}

// callKeys lists every key under a call's hash tag.
func callKeys(t *testing.T, e *harness.Env, cid string) []string {
	t.Helper()
	var keys []string
	iter := e.RDB.Scan(context.Background(), 0, "ringer:{"+cid+"}*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkOverloaded fails unless a is the 503 overloaded answer with a Retry-After of whole seconds.
func checkOverloaded(t *testing.T, what string, a harness.Resp) {
	t.Helper()
	if a.Status != http.StatusServiceUnavailable || a.Body["code"] != "overloaded" {
		t.Fatalf("%s: %d %v, want 503 overloaded", what, a.Status, a.Body)
	}
	if n, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("%s: Retry-After %q, want whole seconds, at least 1", what, a.Header.Get("Retry-After"))
	}
}

func TestARingThatCannotBeDeliveredInTimeIsRefusedWith503AndNothingIsStored(t *testing.T) {
	// No worker serves the ring queue: the first ring's push waits there, and past the budget every request
	// that would start a ring is refused.
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_RING_QUEUE_BUDGET=50ms"}})
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/first", alice, map[string]any{"ring": true, "data": map[string]any{"members": harness.MemberList("alice", "bob")}})

	var refused harness.Resp
	n := 0
	e.Eventually(10*time.Second, "a ring refused while the ring queue is behind", func() bool {
		n++
		refused = rawCall(t, e, "POST", fmt.Sprintf("/v1/call/default/try%d", n), alice,
			map[string]any{"ring": true, "data": map[string]any{"members": harness.MemberList("alice", "carol")}})
		if refused.Status == 201 {
			// Let in before the backlog passed the budget: end it so only the refusal matters below.
			e.MustCall(200, "POST", fmt.Sprintf("/v1/call/default/try%d/mark_ended", n), alice, nil)
		}
		return refused.Status != 201
	})
	checkOverloaded(t, "get-or-create with ring", refused)
	cid := fmt.Sprintf("default:try%d", n)
	if keys := callKeys(t, e, cid); len(keys) != 0 {
		t.Fatalf("a refused get-or-create stored %v", keys)
	}
	e.MustCall(404, "GET", "/v1/call/default/"+cid[len("default:"):], alice, nil)

	checkOverloaded(t, "get with ring=true", rawCall(t, e, "GET", "/v1/call/default/first?ring=true", alice, nil))
	checkOverloaded(t, "ring", rawCall(t, e, "POST", "/v1/call/default/first/ring", alice, map[string]any{"members_ids": []string{"bob"}}))

	// What does not start a ring goes on.
	e.MustCall(201, "POST", "/v1/call/default/quiet", alice, map[string]any{"data": map[string]any{"members": harness.MemberList("alice", "bob")}})
	e.MustCall(200, "POST", "/v1/call/default/first/accept", e.Token("bob"), nil)

	if got := harness.Scrape(t, e.URL).Get("ringer_rings_refused_total"); got < 3 {
		t.Fatalf("ringer_rings_refused_total = %v, want at least 3", got)
	}
}

func TestAnEndedCallAndEveryKeyUnderItsHashTagAreGoneAfterTheRetention(t *testing.T) {
	// The API alone: a worker's ledgers of a ring are kept two minutes past the ring's end, for its stops.
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_CALL_RETENTION=2s"}})
	alice, bob := e.Token("alice"), e.Token("bob")
	e.MustCall(201, "POST", "/v1/call/default/brief", alice, map[string]any{"ring": true, "data": map[string]any{"members": harness.MemberList("alice", "bob")}})
	e.MustCall(200, "POST", "/v1/call/default/brief/accept", bob, nil)
	e.MustCall(200, "POST", "/v1/call/default/brief/mark_ended", alice, nil)
	e.MustCall(200, "GET", "/v1/call/default/brief", alice, nil)
	if keys := callKeys(t, e, "default:brief"); len(keys) < 3 {
		t.Fatalf("keys of the ended call before its retention: %v", keys)
	}

	e.Eventually(10*time.Second, "the ended call to lapse", func() bool {
		return e.Call("GET", "/v1/call/default/brief", alice, nil).Status == 404
	})
	if keys := callKeys(t, e, "default:brief"); len(keys) != 0 {
		t.Fatalf("keys left after the retention: %v", keys)
	}
	list := e.MustCall(200, "GET", "/v1/calls", alice, nil)
	if calls, _ := list.Body["calls"].([]any); len(calls) != 0 {
		t.Fatalf("alice's list still shows the lapsed call: %v", list.Body)
	}
	if n, err := e.RDB.ZCard(context.Background(), "ringer:{u:alice}:calls").Result(); err != nil || n != 0 {
		t.Fatalf("alice's call index holds %d calls (err %v) after listing, want the lapsed one dropped", n, err)
	}
}

func TestReadyzFailsNamingTheEvictionPolicyWhenRedisMayEvict(t *testing.T) {
	e := harness.Start(t)
	e.MustCall(200, "GET", "/readyz", "", nil)
	ctx := context.Background()
	if err := e.RDB.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	r := e.MustCall(503, "GET", "/readyz", "", nil)
	if msg, _ := r.Body["message"].(string); !strings.Contains(msg, "maxmemory-policy") || !strings.Contains(msg, "allkeys-lru") {
		t.Fatalf("readyz with allkeys-lru: %v, want it to name maxmemory-policy and the policy", r.Body)
	}
	if err := e.RDB.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	e.MustCall(200, "GET", "/readyz", "", nil)
}

func TestMalformedBudgetOrRetentionStopsTheStartNamingTheVariable(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{
		"RINGER_RING_QUEUE_BUDGET=soon", "RINGER_RING_QUEUE_BUDGET=-1s",
		"RINGER_CALL_RETENTION=1d", "RINGER_CALL_RETENTION=0s", "RINGER_CALL_RETENTION=500ms",
		"RINGER_CALL_MAX_AGE=forever", "RINGER_CALL_MAX_AGE=0",
	} {
		name, _, _ := strings.Cut(kv, "=")
		res := configRun(t, configWith(configBase(), kv), "serve")
		if res.code == 0 || !strings.Contains(res.stderr, name) {
			t.Errorf("ringer serve with %s: exit %d, stderr:\n%s", kv, res.code, res.stderr)
		}
	}
}
