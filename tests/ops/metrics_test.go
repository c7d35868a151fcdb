package ops

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// delta is what a step changed in a counter.
type delta struct {
	name   string
	labels []string
	want   float64
}

// checkDeltas scrapes until every counter moved by exactly want from before, failing after a while with
// what moved. Counters settle a little after the pushes arrive (the ledger and metrics come after the send).
func checkDeltas(t *testing.T, e *harness.Env, before harness.Metrics, what string, ds ...delta) harness.Metrics {
	t.Helper()
	var after harness.Metrics
	ok := func() bool {
		after = harness.Scrape(t, e.URL)
		for _, d := range ds {
			if after.Get(d.name, d.labels...)-before.Get(d.name, d.labels...) != d.want {
				return false
			}
		}
		return true
	}
	if !harness.Poll(20*time.Second, 20*time.Millisecond, ok) {
		for _, d := range ds {
			got := after.Get(d.name, d.labels...) - before.Get(d.name, d.labels...)
			if got != d.want {
				t.Errorf("%s: %s%v moved by %v, want %v", what, d.name, d.labels, got, d.want)
			}
		}
		t.FailNow()
	}
	return after
}

func ringBody(callees []string, autoMs int) map[string]any {
	data := map[string]any{"members": harness.MemberList(callees...)}
	if autoMs > 0 {
		data["settings_override"] = map[string]any{"ring": map[string]any{"auto_cancel_timeout_ms": autoMs, "incoming_call_timeout_ms": autoMs}}
	}
	return map[string]any{"ring": true, "data": data}
}

func TestARingMovesTheRightCounters(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	bobVoIP := e.AndroidAndVoIP("bob", "bob")
	alice := e.Token("alice")

	before := harness.Scrape(t, e.URL)
	for _, o := range []string{"started", "accepted", "rejected", "missed", "cancelled", "ended"} {
		if !before.Has("ringer_rings_total", "outcome", o) {
			t.Errorf("ringer_rings_total{outcome=%q} is not exported before the first ring", o)
		}
	}

	// A ring to bob's two devices, then bob accepts: a stop to the Android phone (a VoIP token gets none).
	e.MustCall(201, "POST", "/v1/call/default/m-accept", alice, ringBody([]string{"bob"}, 0))
	e.WaitFCM("bob-android", 1)
	e.WaitAPNs(bobVoIP, 1)
	before = checkDeltas(t, e, before, "ring",
		delta{"ringer_rings_total", []string{"outcome", "started"}, 1},
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.ring", "outcome", "sent"}, 1},
		delta{"ringer_pushes_total", []string{"provider", "apn", "type", "call.ring", "outcome", "sent"}, 1},
		delta{"ringer_push_duration_seconds_count", []string{"provider", "firebase"}, 1},
		delta{"ringer_push_duration_seconds_count", []string{"provider", "apn"}, 1},
		delta{"ringer_ring_latency_seconds_count", nil, 2},
	)
	e.MustCall(200, "POST", "/v1/call/default/m-accept/accept", e.Token("bob"), nil)
	e.WaitFCM("bob-android", 2)
	before = checkDeltas(t, e, before, "accept",
		delta{"ringer_rings_total", []string{"outcome", "accepted"}, 1},
		delta{"ringer_rings_total", []string{"outcome", "started"}, 0},
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.accepted", "outcome", "sent"}, 1},
		delta{"ringer_pushes_total", []string{"provider", "apn"}, 0},
		delta{"ringer_ring_latency_seconds_count", nil, 0}, // a stop is no ring
	)

	// carol rejects, then alice gives up while dave still rings: one rejected, one cancelled.
	e.Android("carol", "dave")
	e.MustCall(201, "POST", "/v1/call/default/m-cancel", alice, ringBody([]string{"carol", "dave"}, 0))
	e.WaitFCM("carol-android", 1)
	e.WaitFCM("dave-android", 1)
	e.MustCall(200, "POST", "/v1/call/default/m-cancel/reject", e.Token("carol"), map[string]any{"reason": "decline"})
	e.MustCall(200, "POST", "/v1/call/default/m-cancel/reject", alice, map[string]any{"reason": "cancel"})
	e.WaitFCM("carol-android", 2)
	e.WaitFCM("dave-android", 2)
	before = checkDeltas(t, e, before, "reject and cancel",
		delta{"ringer_rings_total", []string{"outcome", "started"}, 2},
		delta{"ringer_rings_total", []string{"outcome", "rejected"}, 1},
		delta{"ringer_rings_total", []string{"outcome", "cancelled"}, 1},
		delta{"ringer_rings_total", []string{"outcome", "missed"}, 0},
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.rejected", "outcome", "sent"}, 1},
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.missed", "outcome", "sent"}, 1},
	)

	// Nobody answers erin within a second: missed.
	e.Android("erin")
	e.MustCall(201, "POST", "/v1/call/default/m-timeout", alice, ringBody([]string{"erin"}, 1000))
	e.WaitFCM("erin-android", 2) // ring, then the missed-call push
	before = checkDeltas(t, e, before, "timeout",
		delta{"ringer_rings_total", []string{"outcome", "started"}, 1},
		delta{"ringer_rings_total", []string{"outcome", "missed"}, 1},
	)

	// mark_ended while frank rings: ended.
	e.Android("frank")
	e.MustCall(201, "POST", "/v1/call/default/m-end", alice, ringBody([]string{"frank"}, 0))
	e.WaitFCM("frank-android", 1)
	e.MustCall(200, "POST", "/v1/call/default/m-end/mark_ended", alice, nil)
	e.WaitFCM("frank-android", 2)
	before = checkDeltas(t, e, before, "mark_ended",
		delta{"ringer_rings_total", []string{"outcome", "started"}, 1},
		delta{"ringer_rings_total", []string{"outcome", "ended"}, 1},
		delta{"ringer_pushes_total", []string{"type", "call.ended", "outcome", "sent"}, 1},
	)

	// FCM refuses gina's ring once (quota)'s ring, and says hank's token is dead.
	e.Android("gina", "hank")
	e.FCM.Script("gina-android", fakefcm.QuotaExceeded(""))
	e.FCM.Script("hank-android", fakefcm.Unregistered())
	e.MustCall(201, "POST", "/v1/call/default/m-retry", alice, ringBody([]string{"gina", "hank"}, 0))
	e.WaitFCM("gina-android", 1)
	e.Quiet()
	before = checkDeltas(t, e, before, "retry and prune",
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.ring", "outcome", "retry"}, 1},
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.ring", "outcome", "unregistered"}, 1},
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.ring", "outcome", "sent"}, 1},
		// A ring push retries inside its handler first (worker.withQuickRetries): one refusal is a push retry,
		// not an Asynq task retry.
		delta{"ringer_task_retries_total", []string{"task", "ring:push"}, 0},
		delta{"ringer_tokens_pruned_total", []string{"provider", "firebase"}, 1},
	)

	// A notification: its own push type.
	e.MustCall(201, "POST", "/v1/call/default/m-notify", alice, map[string]any{"notify": true, "data": map[string]any{"members": harness.MemberList("bob")}})
	e.WaitFCM("bob-android", 3)
	after := checkDeltas(t, e, before, "notify",
		delta{"ringer_pushes_total", []string{"provider", "firebase", "type", "call.notification", "outcome", "sent"}, 1},
		delta{"ringer_pushes_total", []string{"provider", "apn", "type", "call.notification"}, 0}, // VoIP tokens get no alert
	)

	// Queue depth and latency per queue, read from Redis.
	for _, q := range []string{"ring", "watch", "notify", "webhook"} {
		if after.Get("ringer_queue_up", "queue", q) != 1 {
			t.Errorf("ringer_queue_up{queue=%q} = %v, want 1", q, after.Get("ringer_queue_up", "queue", q))
		}
		for _, s := range []string{"pending", "active", "scheduled", "retry", "archived", "completed"} {
			if !after.Has("ringer_queue_tasks", "queue", q, "state", s) {
				t.Errorf("ringer_queue_tasks{queue=%q,state=%q} missing", q, s)
			}
		}
		if !after.Has("ringer_queue_latency_seconds", "queue", q) {
			t.Errorf("ringer_queue_latency_seconds{queue=%q} missing", q)
		}
		if q == "watch" {
			continue // a live ring's watchdog tick may be running at any moment
		}
		if got := after.Get("ringer_queue_tasks", "queue", q, "state", "pending") + after.Get("ringer_queue_tasks", "queue", q, "state", "active"); got != 0 {
			t.Errorf("queue %s holds %v tasks after every push arrived", q, got)
		}
	}
	if got := after.Get("ringer_queue_tasks", "queue", "notify", "state", "completed"); got != 1 {
		t.Errorf("ringer_queue_tasks{queue=notify,state=completed} = %v, want 1", got)
	}
	if got := after.Get("ringer_queue_tasks", "queue", "ring", "state", "completed"); got < 8 {
		t.Errorf("ringer_queue_tasks{queue=ring,state=completed} = %v, want at least the 8 ring tasks", got)
	}

	// Every series the Grafana dashboard asks for exists.
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	have := after.Families()
	asked := regexp.MustCompile(`\bringer_[a-z_]+\b`).FindAllString(strings.Join(exprs(dash), "\n"), -1)
	if len(asked) == 0 {
		t.Fatal("docs/grafana-dashboard.json queries no ringer_ series")
	}
	for _, name := range asked {
		if !have[name] {
			t.Errorf("docs/grafana-dashboard.json queries %s, which /metrics does not export", name)
		}
	}

}

// exprs is every "expr" string in a Grafana dashboard.
func exprs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if s, ok := c.(string); ok && k == "expr" {
				out = append(out, s)
			} else {
				out = append(out, exprs(c)...)
			}
		}
	case []any:
		for _, c := range x {
			out = append(out, exprs(c)...)
		}
	}
	return out
}

func TestARingTaskFoundPastItsRingIsDroppedNotRetried(t *testing.T) {
	t.Parallel()
	// No worker runs while the ring lasts (a deploy, a crash): its ring task is still pending when the ring
	// ends. The worker that comes back sends no stale ring, sends the missed-call push, and drains.
	e := harness.Start(t, harness.Options{Command: "api"})
	e.Android("bob")
	e.MustCall(201, "POST", "/v1/call/default/stale-ring", e.Token("alice"), ringBody([]string{"bob"}, 1000))
	time.Sleep(2500 * time.Millisecond) // the ring's second and Asynq's whole-second deadline pass with no worker
	e.StartProcess("worker")
	harness.Eventually(t, 20*time.Second, "the missed-call push", func() bool { return len(e.FCM.MessagesTo("bob-android")) > 0 })
	if left := harness.WaitQuiet(asynq.NewInspectorFromRedisClient(e.RDB), 10*time.Second); left != "" {
		t.Errorf("a ring task outlives its ring by 10 s: %s", left)
	}
	if got := e.FCMTypes("bob-android"); !slices.Equal(got, []string{"call.missed"}) {
		t.Errorf("bob-android got %v, want only the missed-call push (the ring was over before any worker ran)", got)
	}
}
