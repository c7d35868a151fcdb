package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// A worker serving both queues runs its notify server in a child process ten nice levels down, so a
// notification backlog cannot take the CPU that rings need (BENCHMARKS.md, "Ring under load"). The parent
// supervises it: restarts it when it dies, serves its metrics, and the child stops when the parent dies.
func TestWorkerRunsNotificationsInANicedChildItSupervises(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	w := e.StartProcess("worker")
	parent := w.Cmd.Process.Pid
	child := waitChild(t, e, parent, 0)

	if got := threadNiceness(t, parent); !allAre(got, "0") {
		t.Errorf("the worker's own threads run at niceness %v, want 0: rings keep the CPU", got)
	}
	// The child lowers itself as it starts (it re-executes itself lowered), so wait for that.
	var got []string
	lowered := harness.Poll(15*time.Second, 20*time.Millisecond, func() bool {
		got = threadNiceness(t, child)
		return allAre(got, "10") && len(got) > 1 // past the exec: the runtime's threads too
	})
	if !lowered {
		t.Errorf("the notify child's threads run at niceness %v, want 10 each", got)
	}

	notify := func(cid, user string) {
		e.Device(user, user+"-android", "firebase", false)
		e.MustCall(201, "POST", "/v1/call/default/"+cid, e.Token("alice"), map[string]any{
			"notify": true, "data": map[string]any{"members": harness.MemberList("alice", user)},
		})
		e.WaitFCM(user+"-android", 1)
	}
	notify("nc-1", "bob")
	// The child's Info lines wait in its log buffer for up to RINGER_LOG_FLUSH_INTERVAL.
	e.Eventually(10*time.Second, "the child's notification log on the worker's stderr, marked as the child's", func() bool {
		for _, line := range strings.Split(w.Logs(), "\n") {
			if strings.Contains(line, `"process":"notify-child"`) && strings.Contains(line, `"msg":"notification batch pushed"`) {
				return true
			}
		}
		return false
	})
	// The parent's /metrics carries the child's series, labelled.
	workerURL := "http://" + w.Addr
	e.Eventually(10*time.Second, "the child's notification push on the worker's /metrics", func() bool {
		return regexp.MustCompile(`ringer_pushes_total\{[^}]*type="call.notification"[^}]*worker_process="notify"[^}]*\} 1`).
			MatchString(body(t, workerURL+"/metrics"))
	})

	// A dead child is restarted, and the worker is not ready while it is down.
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := waitChild(t, e, parent, child)
	e.Eventually(15*time.Second, "the worker ready again with its new child", func() bool {
		res, err := http.Get(workerURL + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	notify("nc-2", "carol")
	if !strings.Contains(w.Logs(), `"msg":"notify worker process exited; restarting it"`) {
		t.Errorf("the child's death was not logged")
	}
	// The parent tells its child, the restarted one too, when it runs ring tasks, and the child's notification
	// pushes give way to them. The news of a ring task that began and ended before the parent could write it is
	// never written (Supervisor.RingWork keeps only the newest state), so a short ring may pass unheard: rings
	// follow one another, a new call every half second (within the caller's ring rate), until one is heard.
	e.Device("dave", "dave-android", "firebase", false)
	gaveWay := regexp.MustCompile(`ringer_notify_gave_way_total\{worker_process="notify"\} ([0-9]+)`)
	heard := false
	for i := 0; i < 20 && !heard; i++ {
		e.MustCall(201, "POST", fmt.Sprintf("/v1/call/default/nc-ring-%d", i), e.Token("alice"), map[string]any{
			"ring": true, "data": map[string]any{"members": harness.MemberList("alice", "dave")},
		})
		e.Eventually(10*time.Second, "the ring push to dave", func() bool { return len(e.FCM.To("dave-android")) > i })
		heard = harness.Poll(500*time.Millisecond, 20*time.Millisecond, func() bool {
			m := gaveWay.FindStringSubmatch(body(t, workerURL+"/metrics"))
			return m != nil && m[1] != "0"
		})
	}
	if !heard {
		t.Error("the child never gave way to the parent's rings on the worker's /metrics")
	}

	// Killing the parent alone (no process group) leaves no unsupervised child behind.
	if err := syscall.Kill(parent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.Eventually(30*time.Second, "the orphaned child to stop", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", second))
		if err != nil {
			return true
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", second))
		return strings.Contains(string(stat), ") Z ") // exited, waiting for init to reap it
	})
}

func TestInlineNotifyProcessKeepsNotificationsInTheWorker(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	w := e.StartProcess("worker", "RINGER_NOTIFY_PROCESS=inline")
	e.Device("bob", "inl-bob-android", "firebase", false)
	e.MustCall(201, "POST", "/v1/call/default/inl", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList("alice", "bob")},
	})
	e.WaitFCM("inl-bob-android", 1)
	if kids := harness.Children(w.Cmd.Process.Pid); len(kids) != 0 {
		t.Errorf("RINGER_NOTIFY_PROCESS=inline started child processes %v", kids)
	}
}

func TestMalformedNotifyProcessSettingsStopTheStart(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{"RINGER_NOTIFY_PROCESS=fork", "RINGER_NOTIFY_NICE=20", "RINGER_NOTIFY_NICE=-1"} {
		cmd := exec.Command(harness.Binary(t), "worker")
		cmd.Env = append(os.Environ(), "REDIS_URL=redis://127.0.0.1:1", kv)
		out, err := cmd.CombinedOutput()
		name, _, _ := strings.Cut(kv, "=")
		if err == nil || !strings.Contains(string(out), name) {
			t.Errorf("worker with %s: err=%v, output %s", kv, err, out)
		}
	}
}

// waitChild waits for the notify child of parent other than not, and returns its pid.
func waitChild(t *testing.T, e *harness.Env, parent, not int) int {
	t.Helper()
	var pid int
	e.Eventually(15*time.Second, "the worker's notify child process", func() bool {
		for _, c := range harness.Children(parent) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
			if c != not && strings.Contains(string(cmdline), "notify-child") {
				pid = c
				return true
			}
		}
		return false
	})
	return pid
}

// threadNiceness lists the niceness of each of pid's threads (/proc/<pid>/task/<tid>/stat, field 19).
func threadNiceness(t *testing.T, pid int) []string {
	t.Helper()
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	var out []string
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces, start past the last ')': state is field 3.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 16 {
			out = append(out, fields[16])
		}
	}
	return out
}

func allAre(vs []string, want string) bool {
	for _, v := range vs {
		if v != want {
			return false
		}
	}
	return len(vs) > 0
}

func body(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
