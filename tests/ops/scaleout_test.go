package ops

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/tests/harness"
)

// via is e talking to another api process.
func via(e *harness.Env, p *harness.Process) *harness.Env {
	c := *e
	c.URL = "http://" + p.Addr
	return &c
}

func TestScaleOutTwoAPIsThreeWorkersEveryPushOnceThroughAKilledWorker(t *testing.T) {
	t.Parallel()
	const (
		n       = 120
		latency = time.Second
	)
	// Few slots per worker and a slow provider: the fan-outs take seconds, so the killed worker surely dies
	// holding ring and notify tasks, every one of them inside the provider's latency (the provider records a
	// push only when it answers, so none of them is a push that left before the kill).
	slots := []string{"RINGER_RING_CONCURRENCY=4", "RINGER_NOTIFY_CONCURRENCY=4"}
	api1 := harness.Start(t, harness.Options{Command: "api", Env: slots})
	api2 := via(api1, api1.StartProcess("api"))
	var workers []*harness.Process
	for range 3 {
		workers = append(workers, api1.StartProcess("worker"))
	}
	users := harness.UserIDs("so", n)
	registerAndroid(t, api1, users...)
	watcher := users[0]

	// SSE: the watcher listens on the api process that does not take the request.
	onAPI2 := api2.Events(api2.Token(watcher), "")
	onAPI1 := api1.Events(api1.Token(watcher), "")

	api1.FCM.SetLatency(latency)
	alice := api1.Token("alice")
	// The default ring time (30 s): every ring push must arrive within it, the dead worker's included.
	ring := api1.MustCall(201, "POST", "/v1/call/default/scale-ring", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList(users...)},
	})
	ringID, _ := ring.Body["call"].(map[string]any)["ring_id"].(string)
	api2.MustCall(201, "POST", "/v1/call/default/scale-notify", api2.Token("bob"), map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList(users...)},
	})

	if evs, ok := onAPI2.Until("call.ring", 20*time.Second); !ok {
		t.Errorf("SSE on the other api process got no call.ring for a ring taken by the first: %v", names(evs))
	}
	if evs, ok := onAPI1.Until("call.notification", 20*time.Second); !ok {
		t.Errorf("SSE on the first api process got no call.notification for a notify taken by the second: %v", names(evs))
	}

	// Kill a worker half way through the provider's latency of the first pushes.
	harness.Eventually(t, 30*time.Second, "the first push attempts", func() bool {
		for _, u := range users {
			if api1.FCM.Attempts(u+"-android") > 0 {
				return true
			}
		}
		return false
	})
	time.Sleep(latency / 2) // not waiting for a result: placing the kill inside the provider's latency
	killed := workers[0]
	killed.Kill()
	killedAt := time.Now()
	t.Logf("killed worker pid %d with %d pushes recorded", killed.Cmd.Process.Pid, api1.FCM.Count())
	api1.FCM.SetLatency(0)

	// Every member's ring arrives while the ring lasts: a ring push the dead worker held rides the ring's
	// watchdog. Then the caller cancels through the other api process: one missed-call push each.
	has := func(u, typ string) bool { return slices.Contains(api1.FCMTypes(u+"-android"), typ) }
	harness.Eventually(t, 45*time.Second, "every member's ring", func() bool {
		for _, u := range users {
			if !has(u, "call.ring") {
				return false
			}
		}
		return true
	})
	api2.MustCall(200, "POST", "/v1/call/default/scale-ring/reject", api2.Token("alice"), map[string]any{"reason": "cancel"})

	// A notification the dead worker held comes back with Asynq's recoverer, a minute or two after the kill.
	harness.Eventually(t, 200*time.Second, "every member's notification and missed-call push", func() bool {
		for _, u := range users {
			if !has(u, "call.notification") || !has(u, "call.missed") {
				return false
			}
		}
		return true
	})
	t.Logf("every push arrived %s after the kill", time.Since(killedAt).Round(time.Second))
	// Then the queues drain, so no late duplicate can still come: the tasks the dead worker leased come back
	// through Asynq's recoverer (lease 30 s, then up to a minute and a half), and must then end at once.
	if left := harness.WaitQuiet(asynq.NewInspectorFromRedisClient(api1.RDB), 150*time.Second); left != "" {
		t.Errorf("queues not drained %s after the kill: %s", time.Since(killedAt).Round(time.Second), left)
	} else {
		t.Logf("queues drained %s after the kill", time.Since(killedAt).Round(time.Second))
	}
	// Nothing failed for good: a task the dead worker held is done, not archived after its retries.
	in := asynq.NewInspectorFromRedisClient(api1.RDB)
	for _, q := range []string{"ring", "watch", "notify"} {
		archived, err := in.ListArchivedTasks(q, asynq.PageSize(5))
		if err != nil {
			continue // a queue that never archived anything
		}
		for _, ti := range archived {
			t.Errorf("queue %s archived task %s after %d retries, last error %q", q, ti.ID, ti.Retried, ti.LastErr)
		}
	}
	var bad []string
	for _, u := range users {
		msgs := api1.FCM.MessagesTo(u + "-android")
		count := map[string]int{}
		for _, m := range msgs {
			count[m.Data["type"]]++
			if m.Data["type"] != "call.notification" && m.Data["ring_id"] != ringID {
				bad = append(bad, fmt.Sprintf("%s: %s with ring_id %q, want %q", u, m.Data["type"], m.Data["ring_id"], ringID))
			}
		}
		got := api1.FCMTypes(u + "-android")
		if len(msgs) != 3 || count["call.ring"] != 1 || count["call.notification"] != 1 || count["call.missed"] != 1 ||
			slices.Index(got, "call.ring") > slices.Index(got, "call.missed") {
			bad = append(bad, fmt.Sprintf("%s got %v", u, got))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d members did not get exactly one ring, then one missed-call push, and one notification:\n%s",
			len(bad), n, strings.Join(bad, "\n"))
	}

	// The survivors' push log lines carry the call, ring, member, a token suffix, provider, verdict and
	// latency, and never a whole token.
	for _, w := range workers[1:] {
		checkPushLogs(t, w.Logs(), users[1]+"-android", users[n-1]+"-android")
	}
}

func names(evs []harness.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Name
	}
	return out
}

// checkPushLogs checks every JSON log line about a push: it names the call, the ring (for ring pushes), the
// member, the provider, a token suffix, the verdict and the latency, and never a whole token.
func checkPushLogs(t *testing.T, logs string, tokens ...string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		msg, _ := rec["msg"].(string)
		if !strings.HasPrefix(msg, "push ") {
			continue
		}
		n++
		for _, k := range []string{"cid", "member", "provider", "token", "verdict", "ms"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("push log line lacks %q: %s", k, line)
			}
		}
		if typ, _ := rec["type"].(string); strings.HasPrefix(typ, "call.") && typ != "call.notification" {
			if id, _ := rec["ring_id"].(string); id == "" {
				t.Errorf("push log line of a ring or its stop lacks ring_id: %s", line)
			}
		}
		for _, tok := range tokens {
			if strings.Contains(line, tok) {
				t.Errorf("push log line shows a whole device token: %s", line)
			}
		}
	}
	if n == 0 {
		t.Error("no push log line (msg \"push ...\") in the JSON logs")
	}
}
