package faults

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// Process and Redis faults. The ring-specific ones (a worker killed holding a ring push, Redis restarted in
// the middle of a ring) are in crash_test.go; SIGTERM with a push stuck past RINGER_SHUTDOWN_TIMEOUT in
// tests/ops/shutdown_test.go.

// fanOut is one notification to n members with one FCM token each, and what each token got.
type fanOut struct {
	e     *harness.Env
	users []string
}

func newFanOut(t *testing.T, e *harness.Env, prefix string, n int) *fanOut {
	f := &fanOut{e: e, users: harness.UserIDs(prefix, n)}
	registerFCM(t, e, f.users...)
	return f
}

func (f *fanOut) token(u string) string { return u + "-android" }

// notify asks the API to notify every member (alice calling) and fails unless the request is accepted.
func (f *fanOut) notify(t *testing.T, call string) {
	t.Helper()
	f.e.MustCall(201, "POST", "/v1/call/default/"+call, f.e.Token("alice"), notifyBody(f.users...))
}

// reached is how many members have at least one push.
func (f *fanOut) reached() int {
	n := 0
	for _, u := range f.users {
		if len(f.e.FCM.MessagesTo(f.token(u))) > 0 {
			n++
		}
	}
	return n
}

// inFlight is how many sends the provider holds unanswered.
func (f *fanOut) inFlight() int {
	n := 0
	for _, u := range f.users {
		n += f.e.FCM.Attempts(f.token(u)) - len(f.e.FCM.MessagesTo(f.token(u)))
	}
	return n
}

// tally counts the members by how many pushes they got, and checks each push is the notification.
func (f *fanOut) tally(t *testing.T) (missing []string, dups int, most int) {
	t.Helper()
	for _, u := range f.users {
		got := fcmTypes(f.e, f.token(u))
		for _, typ := range got {
			if typ != "call.notification" {
				t.Errorf("%s got a %s", u, typ)
			}
		}
		switch {
		case len(got) == 0:
			missing = append(missing, u)
		case len(got) > 1:
			dups += len(got) - 1
		}
		most = max(most, len(got))
	}
	return missing, dups, most
}

// lastFirstPush is when the last member got its first push.
func (f *fanOut) lastFirstPush() time.Time {
	var last time.Time
	for _, u := range f.users {
		if ms := f.e.FCM.MessagesTo(f.token(u)); len(ms) > 0 && ms[0].At.After(last) {
			last = ms[0].At
		}
	}
	return last
}

// TestKilledWorkerDuringA5000MemberNotifyLosesNothing kills (SIGKILL) one of two workers in the middle of a
// 5,000-member notification, the provider answering each push in 200 ms. The other worker finishes: every
// member gets the push. The tasks the dead worker held come back only after Asynq's lease (30 s) and its
// recoverer (every minute), so this takes one to two minutes. Pushes the provider took but the dead worker
// never recorded are sent again: the duplicates, bounded by what was in flight or not yet written to the
// ledger when it died.
func TestKilledWorkerDuringA5000MemberNotifyLosesNothing(t *testing.T) {
	t.Parallel()
	const members = 5000
	// Four tasks of 100 members each per worker, 32 pushes of a task at once: 128 pushes in flight a worker.
	// At Debug, each notification push that went out is a line of its own (a task's Info line comes only at
	// its end, which the doomed worker may not reach).
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_NOTIFY_CONCURRENCY=4", "RINGER_LOG_LEVEL=debug"}})
	f := newFanOut(t, e, "k", members)
	e.FCM.SetLatency(200 * time.Millisecond)
	start := time.Now()
	f.notify(t, "all-hands")
	t.Logf("5,000-member notification accepted in %s", time.Since(start).Round(time.Millisecond))
	doomed := e.StartProcess("worker")
	e.StartProcess("worker")

	harness.Eventually(t, 120*time.Second, "a fifth of the fan-out", func() bool { return e.FCM.Count() >= members/5 })
	inFlight, sentBefore := f.inFlight(), e.FCM.Count()
	doomed.Kill()
	killedAt := time.Now()
	sentByDoomed := strings.Count(doomed.Logs(), `"msg":"push sent"`)
	t.Logf("killed a worker with %d of %d members reached, %d pushes in flight at the provider; it had sent %d",
		sentBefore, members, inFlight, sentByDoomed)
	if sentByDoomed == 0 {
		t.Fatalf("the killed worker had sent nothing: it died outside the fan-out")
	}
	e.FCM.SetLatency(0)

	harness.Eventually(t, 240*time.Second, "every member's notification", func() bool { return f.reached() == members })
	done := f.lastFirstPush()
	e.QuietWithin(60 * time.Second)
	missing, dups, most := f.tally(t)
	t.Logf("every member reached %s after the kill; %d duplicate pushes (%d were in flight at the kill)",
		done.Sub(killedAt).Round(100*time.Millisecond), dups, inFlight)
	if len(missing) > 0 {
		t.Errorf("%d members got no push: %v", len(missing), missing[:min(len(missing), 10)])
	}
	if most > 2 {
		t.Errorf("a member got %d pushes: more than the one resent after the kill", most)
	}
	// What the dead worker sent but never recorded comes again. Per task (4 at once), that is at most the 32
	// sends under way, whether the provider still held them (inFlight counts those) or had answered and the
	// worker not yet seen the answer (a loaded machine makes these many: the niced notify child waits for a
	// core), and the 32 answered but waiting for the task's next ledger write. Nothing else may repeat.
	const unrecorded = 4 * (32 + 32)
	if dups > unrecorded {
		t.Errorf("%d duplicate pushes, more than the %d sent but unrecorded a dead worker can leave (%d were held at the provider)",
			dups, unrecorded, inFlight)
	}
}

// TestSIGTERMDuringAFanOutFinishesOrHandsBackEveryPushAndExitsIn30s sends SIGTERM to one of two workers in
// the middle of a 1,000-member notification, with the default RINGER_SHUTDOWN_TIMEOUT (30 s) and some pushes
// the provider never answers. The worker stops taking tasks, lets its running pushes finish (a hung one ends
// at the 15 s send timeout and goes back to the queue) and exits within 30 s; the other worker delivers the
// rest: every member exactly one push.
func TestSIGTERMDuringAFanOutFinishesOrHandsBackEveryPushAndExitsIn30s(t *testing.T) {
	t.Parallel()
	const members = 1000
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_NOTIFY_CONCURRENCY=4"}})
	f := newFanOut(t, e, "s", members)
	for i := 7; i < members/2; i += 100 { // the provider never answers 5 of the members
		e.FCM.Script(f.token(f.users[i]), fakefcm.Hang())
	}
	e.FCM.SetLatency(200 * time.Millisecond)
	stopping := e.StartProcess("worker", "RINGER_SHUTDOWN_TIMEOUT=30s")
	e.StartProcess("worker")
	f.notify(t, "town-hall")

	harness.Eventually(t, 120*time.Second, "a fifth of the fan-out", func() bool { return e.FCM.Count() >= members/5 })
	inFlight := f.inFlight()
	start := time.Now()
	exited := stopping.Stop(35 * time.Second)
	took := time.Since(start)
	t.Logf("SIGTERM with %d of %d members reached and %d pushes in flight: the worker exited in %s",
		e.FCM.Count(), members, inFlight, took.Round(time.Millisecond))
	if !exited || took > 30*time.Second {
		t.Fatalf("the worker took %s to exit after SIGTERM (exited: %v), want within 30 s", took.Round(time.Millisecond), exited)
	}
	if code := stopping.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	for _, want := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(stopping.Logs(), want) {
			t.Errorf("the stopped worker's log lacks %s", want)
		}
	}
	e.FCM.SetLatency(0)
	harness.Eventually(t, 120*time.Second, "every member's notification", func() bool { return f.reached() == members })
	e.QuietWithin(60 * time.Second)
	missing, dups, _ := f.tally(t)
	if len(missing) > 0 || dups > 0 {
		t.Errorf("after SIGTERM: %d members without a push (%v), %d duplicate pushes; want every member exactly one",
			len(missing), missing[:min(len(missing), 10)], dups)
	}
}

// TestRedisDownForTenSecondsLosesNoAcceptedRequest stops Redis (append-only file on) for 10 s in the middle
// of a notification. While it is gone the API answers 503 with the error body and /readyz fails; when it is
// back the API and the worker carry on by themselves, and every member of the notification accepted before
// the outage, and of one accepted after, gets its push. Pushes the provider took while the worker could not
// record them are sent again: the duplicates, bounded by what was in flight.
func TestRedisDownForTenSecondsLosesNoAcceptedRequest(t *testing.T) {
	t.Parallel()
	const members = 300
	e := harness.Start(t, harness.Options{Command: "api", RedisArgs: []string{"--appendonly", "yes"},
		Env: []string{"RINGER_NOTIFY_CONCURRENCY=2"}})
	e.StartProcess("worker")
	f := newFanOut(t, e, "r", members)
	after := newFanOut(t, e, "ra", 20)
	e.FCM.SetLatency(time.Second)
	f.notify(t, "before-outage")
	harness.Eventually(t, 60*time.Second, "the first pushes", func() bool { return e.FCM.Count() >= 40 })

	inFlight := f.inFlight()
	e.Redis.Stop()
	stoppedAt := time.Now()
	t.Logf("Redis stopped with %d of %d members reached, %d pushes in flight", e.FCM.Count(), members, inFlight)
	var answers, slowest time.Duration
	n := 0
	// A probe takes up to a few seconds with Redis gone (the API's Redis client retries, /readyz waits 2 s):
	// probe for 6 s, then leave Redis down until 10 s have passed.
	for time.Since(stoppedAt) < 6*time.Second {
		t0 := time.Now()
		r := e.Call("POST", fmt.Sprintf("/v1/call/default/during-%d", n), e.Token("alice"), notifyBody("ra0000"))
		d := time.Since(t0)
		answers += d
		slowest = max(slowest, d)
		n++
		if r.Status != 503 || r.Body["code"] != "unavailable" || r.Body["status"] != float64(503) || r.Body["message"] == "" {
			t.Errorf("POST with Redis down: %d %s, want 503 with the error body", r.Status, r.Raw)
		}
		if code, body := status(t, e.URL+"/readyz"); code != 503 || !strings.Contains(strings.ToLower(body), "redis") {
			t.Errorf("/readyz with Redis down: %d %s", code, body)
		}
		time.Sleep(250 * time.Millisecond) // pacing the probes through the outage, not waiting for a result
	}
	t.Logf("with Redis down: %d requests answered 503, in %s on average, %s at most",
		n, (answers / time.Duration(max(n, 1))).Round(time.Millisecond), slowest.Round(time.Millisecond))

	time.Sleep(10*time.Second - time.Since(stoppedAt)) // the outage lasts 10 s: pacing the fault, not waiting for a result
	e.Redis.Restart(t)
	restartedAt := time.Now()
	outage := restartedAt.Sub(stoppedAt)
	e.FCM.SetLatency(0)
	var apiBack time.Duration
	harness.Eventually(t, 60*time.Second, "the API to accept a request again", func() bool {
		r := e.Call("POST", "/v1/call/default/after-outage", e.Token("alice"), notifyBody(after.users...))
		apiBack = time.Since(restartedAt)
		return r.Status == 201
	})
	harness.Eventually(t, 10*time.Second, "/readyz to pass", func() bool { code, _ := status(t, e.URL+"/readyz"); return code == 200 })
	var firstPush time.Duration
	harness.Eventually(t, 60*time.Second, "the worker to push again", func() bool {
		for _, m := range e.FCM.Messages() {
			if m.At.After(restartedAt) {
				firstPush = m.At.Sub(restartedAt)
				return true
			}
		}
		return false
	})
	harness.Eventually(t, 180*time.Second, "every member's notification", func() bool { return f.reached() == members && after.reached() == len(after.users) })
	everyone := f.lastFirstPush().Sub(restartedAt)
	e.QuietWithin(120 * time.Second)
	missing, dups, most := f.tally(t)
	missingAfter, dupsAfter, _ := after.tally(t)
	t.Logf("Redis down %s; after it returned: API accepting in %s, worker pushing in %s, every accepted push out in %s; %d duplicate pushes (%d in flight at the outage)",
		outage.Round(100*time.Millisecond), apiBack.Round(time.Millisecond), firstPush.Round(time.Millisecond), everyone.Round(100*time.Millisecond), dups, inFlight)
	if len(missing)+len(missingAfter) > 0 {
		t.Errorf("members of accepted notifications without a push: %v %v", missing[:min(len(missing), 10)], missingAfter)
	}
	if most > 2 || dups > max(inFlight, 64) || dupsAfter > 0 {
		t.Errorf("%d duplicates (a member got %d), %d after the outage; want at most one each for the %d pushes in flight",
			dups, most, dupsAfter, max(inFlight, 64))
	}
}

// TestTwoWorkersNeverSendTheSameRingPushTwice rings 100 members, one FCM token each, through two workers on
// one Redis while the provider takes 2.5 s a push: longer than a ring lease (2 s) and the watchdog's rescue
// delay (1.5 s), so only the lease, renewed while the push is in flight, keeps the other worker from sending
// it again. The same ring is also asked for twice more. Then the caller cancels: every device gets exactly
// one call.ring and one call.missed.
func TestTwoWorkersNeverSendTheSameRingPushTwice(t *testing.T) {
	t.Parallel()
	const n = 100
	e := harness.Start(t, harness.Options{Command: "api"})
	callees := harness.UserIDs("tw", n)
	registerFCM(t, e, callees...)
	a, b := e.StartProcess("worker"), e.StartProcess("worker")
	e.FCM.SetLatency(2500 * time.Millisecond)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/two-workers", alice, ringBody(60_000, callees...))
	// Asking again changes nothing for members still rung.
	e.MustCall(200, "POST", "/v1/call/default/two-workers", alice, ringBody(60_000, callees...))
	e.MustCall(200, "POST", "/v1/call/default/two-workers/ring", alice, map[string]any{"members_ids": callees})

	harness.Eventually(t, 60*time.Second, "every ring push", func() bool {
		for _, u := range callees {
			if len(e.FCM.MessagesTo(u+"-android")) == 0 {
				return false
			}
		}
		return true
	})
	e.FCM.SetLatency(0)
	e.MustCall(200, "POST", "/v1/call/default/two-workers/reject", alice, map[string]any{"reason": "cancel"})
	harness.Eventually(t, 60*time.Second, "every missed-call push", func() bool {
		for _, u := range callees {
			if len(e.FCM.MessagesTo(u+"-android")) < 2 {
				return false
			}
		}
		return true
	})
	e.QuietWithin(30 * time.Second)
	var bad []string
	for _, u := range callees {
		if got := fcmTypes(e, u+"-android"); !same(got, "call.ring", "call.missed") {
			bad = append(bad, fmt.Sprintf("%s: %v", u, got))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d devices did not get exactly one ring then one missed-call push:\n%s", len(bad), n, strings.Join(bad, "\n"))
	}
	var rescues []float64
	for _, w := range []*harness.Process{a, b} {
		rescues = append(rescues, harness.Scrape(t, "http://"+w.Addr).Get("ringer_ring_rescues_total"))
		if !slices.ContainsFunc(logRecords(w), func(r map[string]any) bool {
			return str(r, "msg") == "push sent" && str(r, "type") == "call.ring"
		}) {
			t.Errorf("worker %s sent no ring push: the two workers did not share the ring", w.Addr)
		}
	}
	t.Logf("watchdog rescues on the two workers: %v", rescues)
}
