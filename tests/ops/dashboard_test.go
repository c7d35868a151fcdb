package ops

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
	"github.com/ringer-dev/ringer/tests/testredis"
)

const (
	dashUser     = "ops"
	dashPassword = "dashboard-pw-7f3a"
)

// dashQueue is one queue as the dashboard's API lists it (asynqmon's queueStateSnapshot).
type dashQueue struct {
	Queue     string `json:"queue"`
	Size      int    `json:"size"`
	Active    int    `json:"active"`
	Pending   int    `json:"pending"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Completed int    `json:"completed"`
	Processed int    `json:"processed"`
}

func dashQueues(t *testing.T, base string) map[string]dashQueue {
	t.Helper()
	status, body := get(t, base+"/asynq/api/queues", dashUser, dashPassword)
	if status != 200 {
		t.Fatalf("GET /asynq/api/queues with the login: %d %s", status, body)
	}
	var v struct {
		Queues []dashQueue `json:"queues"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("dashboard queues: %v: %s", err, body)
	}
	out := map[string]dashQueue{}
	for _, q := range v.Queues {
		out[q.Queue] = q
	}
	return out
}

// checkLogin asserts that every path answers 401 (with a Basic challenge) without the login or with a wrong
// one, and 200 with it.
func checkLogin(t *testing.T, base string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if status, _ := get(t, base+p, "", ""); status != 401 {
			t.Errorf("GET %s without a login: %d, want 401", p, status)
		}
		if status, _ := get(t, base+p, dashUser, "wrong"); status != 401 {
			t.Errorf("GET %s with a wrong password: %d, want 401", p, status)
		}
		if status, body := get(t, base+p, dashUser, dashPassword); status != 200 {
			t.Errorf("GET %s with the login: %d, want 200: %.200s", p, status, body)
		}
	}
}

func TestDashboardNeedsItsLoginAndListsTheQueuesDuringAFanOut(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{
		"RINGER_DASHBOARD_USER=" + dashUser, "RINGER_DASHBOARD_PASSWORD=" + dashPassword,
		// Few slots and a slow provider keep the fan-out in the queues long enough to be seen there.
		"RINGER_RING_CONCURRENCY=8", "RINGER_NOTIFY_CONCURRENCY=8",
	}})
	checkLogin(t, e.URL, "/asynq/", "/asynq/api/queues")
	res, err := http.Get(e.URL + "/asynq/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
		t.Errorf("401 without a login carries WWW-Authenticate %q, want a Basic challenge", got)
	}

	const n = 300
	users := harness.UserIDs("fan", n)
	registerAndroid(t, e, users...)
	e.FCM.SetLatency(150 * time.Millisecond)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/fanout-ring", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList(users...),
			"settings_override": map[string]any{"ring": map[string]any{"auto_cancel_timeout_ms": 120000, "incoming_call_timeout_ms": 120000}}},
	})
	e.MustCall(201, "POST", "/v1/call/default/fanout-notify", alice, map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList(users...)},
	})

	// While it runs, both queues are listed with work in them.
	seen := map[string]bool{}
	harness.Eventually(t, 60*time.Second, "the dashboard to list ring and notify with tasks waiting or running", func() bool {
		for name, q := range dashQueues(t, e.URL) {
			if q.Pending+q.Active > 0 && q.Size >= q.Pending+q.Active {
				seen[name] = true
			}
		}
		return seen["ring"] && seen["notify"]
	})

	// Once it is over, the counts add up: every member's ring, and every batch of members' notifications, is
	// a completed task.
	harness.Eventually(t, 90*time.Second, "every push to arrive", func() bool { return e.FCM.Count() >= 2*n })
	// While the ring lasts its watchdog ticks, and a snapshot may catch one at work: end it first.
	e.MustCall(200, "POST", "/v1/call/default/fanout-ring/mark_ended", alice, nil)
	harness.Eventually(t, 90*time.Second, "every stop push to arrive", func() bool { return e.FCM.Count() >= 3*n })
	e.Quiet()
	// The ring's last watchdog tick may still be on its way (it was scheduled before the end, and finds the
	// ring over): read the dashboard until the ring queue is idle.
	var qs map[string]dashQueue
	harness.Eventually(t, 10*time.Second, "the dashboard to show the ring queue idle", func() bool {
		qs = dashQueues(t, e.URL)
		q := qs["ring"]
		return q.Pending+q.Active+q.Retry == 0
	})
	batches := (n + queue.NotifyBatch - 1) / queue.NotifyBatch // one notify task serves NotifyBatch members
	if q := qs["notify"]; q.Completed != batches || q.Pending+q.Active+q.Retry != 0 {
		t.Errorf("dashboard notify queue after the fan-out: %+v, want %d completed and nothing waiting", q, batches)
	}
	if q := qs["ring"]; q.Completed < n || q.Pending+q.Active+q.Retry != 0 {
		t.Errorf("dashboard ring queue after the fan-out: %+v, want at least %d completed and nothing waiting", q, n)
	}

	// The payloads the dashboard shows carry no secret: not the API secret, no key, no device token.
	for _, path := range []string{"/asynq/api/queues/ring/completed_tasks?page=1&page_size=50", "/asynq/api/queues/notify/completed_tasks?page=1&page_size=50", "/asynq/api/queues/ring/scheduled_tasks?page=1&page_size=50"} {
		status, body := get(t, e.URL+path, dashUser, dashPassword)
		if status != 200 {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		page := string(body)
		if path != "/asynq/api/queues/ring/scheduled_tasks?page=1&page_size=50" && !strings.Contains(page, `"payload"`) {
			t.Fatalf("GET %s lists no task payloads: %.300s", path, page)
		}
		for _, secret := range []string{e.Secret, "PRIVATE KEY", "private_key", "-android", dashPassword} {
			if strings.Contains(page, secret) {
				t.Errorf("dashboard %s shows %q in a task payload", path, secret)
			}
		}
	}
}

func TestDashboardIsOffWithoutALoginAndServedAloneByRingerDashboard(t *testing.T) {
	t.Parallel()
	e := harness.Start(t) // no RINGER_DASHBOARD_USER
	if status, _ := get(t, e.URL+"/asynq/", dashUser, dashPassword); status != 404 {
		t.Errorf("/asynq/ with no dashboard login configured: %d, want 404 (dashboard off)", status)
	}

	p := e.StartProcess("dashboard", "RINGER_DASHBOARD_USER="+dashUser, "RINGER_DASHBOARD_PASSWORD="+dashPassword)
	base := "http://" + p.Addr
	checkLogin(t, base, "/asynq/", "/asynq/api/queues")
	if status, _ := get(t, base+"/healthz", "", ""); status != 200 {
		t.Errorf("ringer dashboard /healthz: %d, want 200", status)
	}
	if status, _ := get(t, base+"/v1/calls", "", ""); status != 404 {
		t.Errorf("ringer dashboard serves the API: /v1/calls answered %d, want 404", status)
	}
}

func TestRingerDevPrintsTheDashboardLoginThatOpensIt(t *testing.T) {
	t.Parallel()
	r := testredis.Start(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	cmd := exec.Command(harness.Binary(t), "dev", "--addr", addr)
	cmd.Env = append(os.Environ(), "REDIS_URL="+r.URL(), "RINGER_DASHBOARD_USER=", "RINGER_DASHBOARD_PASSWORD=", "RINGER_API_SECRET=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	login := regexp.MustCompile(`/asynq/\s+\(login (\S+) / (\S+)\)`)
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := login.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1:]
			}
		}
		close(found)
	}()
	var user, password string
	select {
	case m, ok := <-found:
		if !ok {
			t.Fatal("ringer dev exited without printing the dashboard login")
		}
		user, password = m[0], m[1]
	case <-time.After(60 * time.Second):
		t.Fatal("ringer dev printed no dashboard login")
	}
	base := "http://" + addr
	if status, _ := get(t, base+"/asynq/api/queues", "", ""); status != 401 {
		t.Errorf("ringer dev dashboard without the login: %d, want 401", status)
	}
	if status, body := get(t, base+"/asynq/api/queues", user, password); status != 200 {
		t.Errorf("ringer dev dashboard with the printed login %s: %d %.200s", user, status, body)
	}
}
