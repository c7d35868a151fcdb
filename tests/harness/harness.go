// Package harness runs the real ringer binary against a private redis-server and the fake FCM and APNs, and
// drives it as a client would: HTTP requests with real JWTs, and the pushes the fakes received.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/fakepush"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// Topic is the APNs bundle id the harness configures.
const Topic = "com.example.ringer"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/ringer once per test process (with -race when the tests run with it) and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ringer-dev/ringer").Output()
		if err != nil {
			buildErr = fmt.Errorf("find module root: %w", err)
			return
		}
		root := strings.TrimSpace(string(out))
		dir, err := os.MkdirTemp("", "ringer-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ringer")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/ringer")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/ringer: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Env is one running ringer with its Redis and fakes.
type Env struct {
	t      testing.TB
	Redis  *testredis.Server
	RDB    *redis.Client
	FCM    *fakefcm.Server
	APNs   *fakeapns.Server
	URL    string
	Secret string
	// Env is the environment the ringer process was started with (to start more processes alike).
	Env []string

	inspector *asynq.Inspector
	procs     []*Process
	// http checks every request and answer against docs/openapi.yaml (openapi.go).
	http *http.Client
}

// HTTP is the client every request of the harness goes through: each exchange is checked against
// docs/openapi.yaml and a mismatch fails the test. Tests that build their own requests send them with it.
func (e *Env) HTTP() *http.Client { return e.http }

// Process is one running ringer process.
type Process struct {
	Cmd  *exec.Cmd
	Addr string
	logs *LockedBuffer
	done chan struct{}
}

// Logs is everything the process wrote to stderr so far.
func (p *Process) Logs() string { return p.logs.String() }

// Options change what Start runs.
type Options struct {
	// Command is the ringer subcommand: serve (default), api, worker.
	Command string
	// Extra environment, KEY=VALUE.
	Env []string
	// RedisArgs are extra redis-server arguments.
	RedisArgs []string
	// FCM says how the fake FCM serves; the zero value serves as FCM does, TLS and HTTP/2.
	FCM fakefcm.Options
}

// Start runs ringer serve (or opts.Command) against a fresh Redis and fresh fakes.
func Start(t testing.TB, opts ...Options) *Env {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	// At least 32 bytes, as ringer requires of RINGER_API_SECRET.
	e := &Env{t: t, Secret: "test-secret-of-at-least-32-bytes-" + t.Name()}
	e.http = LoadSpec(t).Checked(t, nil)
	e.Redis = testredis.Start(t, o.RedisArgs...)
	e.RDB = e.Redis.Client(t)
	e.FCM = fakefcm.StartWith(t, o.FCM)
	e.APNs = fakeapns.Start(t)
	e.inspector = asynq.NewInspectorFromRedisClient(e.RDB)
	dir := t.TempDir()
	keyPath, keyID, teamID := e.APNs.WriteKey(dir)
	e.Env = []string{
		"RINGER_API_SECRET=" + e.Secret,
		"REDIS_URL=" + e.Redis.URL(),
		"FCM_CREDENTIALS_FILE=" + e.FCM.WriteCredentials(dir),
		"FCM_ENDPOINT=" + e.FCM.Endpoint,
		"APNS_KEY_FILE=" + keyPath, "APNS_KEY_ID=" + keyID, "APNS_TEAM_ID=" + teamID,
		"APNS_TOPIC=" + Topic, "APNS_ENDPOINT=" + e.APNs.URL,
		"SSL_CERT_FILE=" + CAFile(t, dir, e.FCM.WriteCAFile(dir), e.APNs.WriteCAFile(dir)),
		"RINGER_LOG_FORMAT=json",
		"RINGER_SHUTDOWN_TIMEOUT=10s",
		// The suite rings far faster than a person does; the ring rate has tests of its own that set it.
		"RINGER_RING_RATE=0",
	}
	e.Env = append(e.Env, o.Env...)
	cmd := o.Command
	if cmd == "" {
		cmd = "serve"
	}
	p := e.StartProcess(cmd)
	e.URL = "http://" + p.Addr
	return e
}

// CAFile joins the PEM files of several fakes into one in dir and returns its path: SSL_CERT_FILE names one
// file, read once per process, and it must trust every TLS fake the process talks to.
func CAFile(t testing.TB, dir string, pemFiles ...string) string {
	t.Helper()
	var all []byte
	for _, f := range pemFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("harness: CA file: %v", err)
		}
		all = append(all, b...)
	}
	path := filepath.Join(dir, "fakes-ca.pem")
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatalf("harness: CA file: %v", err)
	}
	return path
}

// StartProcess runs one more ringer process (api, worker, serve) on the same Redis and fakes.
func (e *Env) StartProcess(command string, extraEnv ...string) *Process {
	e.t.Helper()
	cmd := exec.Command(Binary(e.t), command)
	cmd.Env = append(append(append(os.Environ(), e.Env...), "RINGER_ADDR=127.0.0.1:0"), extraEnv...)
	// Its own process group: Kill takes a worker's notify child process with it, as a crash of its machine
	// or container would.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	p := &Process{Cmd: cmd, logs: &LockedBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start ringer %s: %v", command, err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		listening := false
		for sc.Scan() {
			line := sc.Bytes()
			p.logs.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			// The first "listening" is the process's own; a worker's notify child logs its own later.
			if !listening && json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				listening = true
				addr <- rec.Addr
			}
		}
	}()
	e.procs = append(e.procs, p)
	e.t.Cleanup(func() {
		if e.t.Failed() && p.Cmd.ProcessState == nil {
			// A goroutine dump shows where a stuck ringer is stuck.
			_ = p.Cmd.Process.Signal(sigquit)
			select {
			case <-p.done:
			case <-time.After(3 * time.Second):
			}
		}
		p.Kill()
		if e.t.Failed() {
			f, err := os.CreateTemp("", "ringer-"+strings.ReplaceAll(e.t.Name(), "/", "_")+"-*.log")
			if err == nil {
				f.WriteString(p.Logs())
				f.Close()
				e.t.Logf("ringer %s logs in full: %s", command, f.Name())
			}
			e.t.Logf("ringer %s logs:\n%s", command, Tail(p.Logs(), 60))
		}
	})
	select {
	case p.Addr = <-addr:
	case <-p.done:
		e.t.Fatalf("ringer %s exited at start:\n%s", command, p.Logs())
	case <-time.After(30 * time.Second):
		e.t.Fatalf("ringer %s did not start listening:\n%s", command, p.Logs())
	}
	return p
}

// Children lists the processes pid started that are still running or not yet reaped (Linux's
// /proc/<pid>/task/*/children): a worker's notify child.
func Children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Kill stops the process and its children at once (SIGKILL to its process group) and waits for it.
func (p *Process) Kill() {
	if p.Cmd.ProcessState == nil {
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		_ = p.Cmd.Wait()
	}
}

// Stop sends SIGTERM and waits up to d for the process to exit; it reports whether it exited in time.
func (p *Process) Stop(d time.Duration) bool {
	_ = p.Cmd.Process.Signal(sigterm)
	select {
	case <-p.done:
		_ = p.Cmd.Wait()
		return true
	case <-time.After(d):
		return false
	}
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LockedBuffer is a bytes.Buffer safe for a process writing its logs while a test reads them.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Token is a user token for user.
func (e *Env) Token(user string) string {
	return e.TokenWith(api.TokenClaims{UserID: user, Name: strings.ToUpper(user[:1]) + user[1:]})
}

// TokenWith is a token with the given claims, valid for an hour.
func (e *Env) TokenWith(c api.TokenClaims) string {
	tok, err := api.MintToken([]byte(e.Secret), c, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// ServerToken is a backend token.
func (e *Env) ServerToken() string { return e.TokenWith(api.TokenClaims{Server: true}) }

// Resp is an API answer.
type Resp struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
}

// Call sends a request; body is JSON-encoded unless it is a string or []byte, sent as is.
func (e *Env) Call(method, path, token string, body any) Resp {
	e.t.Helper()
	return Do(e.t, e.http, method, e.URL+path, Bearer(token), body)
}

// Bearer is the Authorization header that carries token; none for no token.
func Bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// Do sends a request through client with exactly the given Authorization header (none when empty), failing
// t if it cannot. body is JSON-encoded unless it is a string, []byte or io.Reader, sent as is; a reader whose
// length is unknown (not a *bytes.Reader or *strings.Reader) goes chunked.
func Do(t testing.TB, client *http.Client, method, url, authorization string, body any) Resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := Resp{Status: res.StatusCode, Raw: raw, Header: res.Header}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// Items is the objects of the answer's list field (calls, devices), by the key id reads from each; it fails
// t when the answer has no such list.
func (r Resp) Items(t testing.TB, field string, id func(item map[string]any) string) map[string]map[string]any {
	t.Helper()
	items, ok := r.Body[field].([]any)
	if !ok {
		t.Fatalf("answer has no %s list: %s", field, r.Raw)
	}
	out := map[string]map[string]any{}
	for _, it := range items {
		m := it.(map[string]any)
		out[id(m)] = m
	}
	return out
}

// MustCall is Call that fails the test unless the status is want.
func (e *Env) MustCall(want int, method, path, token string, body any) Resp {
	e.t.Helper()
	r := e.Call(method, path, token, body)
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Raw)
	}
	return r
}

// Device registers a device token for user through the API.
func (e *Env) Device(user, token, provider string, voip bool) {
	e.t.Helper()
	r := e.Call("POST", "/v1/devices", e.Token(user), map[string]any{"id": token, "push_provider": provider, "voip_token": voip})
	if r.Status != 201 && r.Status != 200 {
		e.t.Fatalf("register %s for %s: %d %s", token, user, r.Status, r.Raw)
	}
}

// Android registers for each user an Android phone: FCM token "<user>-android".
func (e *Env) Android(users ...string) {
	e.t.Helper()
	for _, u := range users {
		e.Device(u, u+"-android", "firebase", false)
	}
}

// AndroidAndVoIP registers for user an Android phone (FCM token "<name>-android") and a VoIP token
// (APNsToken("<name>-voip")), and returns the VoIP token: the two devices a ring push goes to.
func (e *Env) AndroidAndVoIP(user, name string) (voip string) {
	e.t.Helper()
	voip = APNsToken(name + "-voip")
	e.Device(user, name+"-android", "firebase", false)
	e.Device(user, voip, "apn", true)
	return voip
}

// Quiet waits until no ring, stop or notification task is pending, running or waiting for a retry: every
// push the API's answers caused has been attempted. Scheduled ring timeouts do not count. It fails the test,
// naming what is left, after 30 s.
func (e *Env) Quiet() { e.QuietWithin(30 * time.Second) }

// QuietWithin is Quiet with a deadline of the test's choosing.
func (e *Env) QuietWithin(d time.Duration) {
	e.t.Helper()
	QuietWithin(e.t, e.inspector, d)
}

// QuietWithin is Env.Quiet on the Redis in reads (for a Redis the harness did not start).
func QuietWithin(t testing.TB, in *asynq.Inspector, d time.Duration) {
	t.Helper()
	if left := WaitQuiet(in, d); left != "" {
		t.Fatalf("queues not drained after %s: %s", d, left)
	}
}

// WaitQuiet is QuietWithin without failing: it returns what is left in the queues after d, or "".
func WaitQuiet(in *asynq.Inspector, d time.Duration) string {
	var left string
	Poll(d, 20*time.Millisecond, func() bool {
		left = queuesLeft(in)
		return left == ""
	})
	return left
}

// queuesLeft says what the ring, watch and notify queues (every shard of them) hold that is pending, active or to retry; "" when
// nothing.
func queuesLeft(in *asynq.Inspector) string {
	left := ""
	// GetQueueInfo fails for a queue that never had a task, so ask only about those that exist.
	qs, err := in.Queues()
	if err != nil {
		left = err.Error()
	}
	for _, q := range qs {
		if b := queue.Base(q); b != queue.QueueRing && b != queue.QueueWatch && b != queue.QueueNotify {
			continue
		}
		info, err := in.GetQueueInfo(q)
		if err != nil {
			left += fmt.Sprintf("%s: %v; ", q, err)
		} else if info.Pending+info.Active+info.Retry > 0 {
			left += fmt.Sprintf("%s: %d pending, %d active, %d retry %s; ", q, info.Pending, info.Active, info.Retry, retrySample(in, q))
		}
	}
	return left
}

// retrySample names a few tasks waiting for a retry, with their last error.
func retrySample(in *asynq.Inspector, q string) string {
	ts, err := in.ListRetryTasks(q, asynq.PageSize(3))
	if err != nil || len(ts) == 0 {
		return ""
	}
	var out []string
	for _, ti := range ts {
		out = append(out, fmt.Sprintf("%s (retried %d, last error %q)", ti.ID, ti.Retried, ti.LastErr))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// Eventually polls cond until it holds, failing the test after d.
func (e *Env) Eventually(d time.Duration, what string, cond func() bool) {
	e.t.Helper()
	Eventually(e.t, d, what, cond)
}

// WaitFCM waits until token has exactly n FCM messages and the queues are quiet, and returns them.
func (e *Env) WaitFCM(token string, n int) []fakefcm.Message {
	e.t.Helper()
	return waitPushes(e, "FCM", token, n, e.FCM.To)
}

// WaitAPNs waits until token has exactly n APNs pushes and the queues are quiet, and returns them.
func (e *Env) WaitAPNs(token string, n int) []fakeapns.Notification {
	e.t.Helper()
	return waitPushes(e, "APNs", token, n, e.APNs.To)
}

// waitPushes is WaitFCM and WaitAPNs: to is the fake's record of the pushes to a token.
func waitPushes[P fakepush.Typed](e *Env, provider, token string, n int, to func(token string) []P) []P {
	e.t.Helper()
	e.Eventually(30*time.Second, fmt.Sprintf("%d %s pushes to %s", n, provider, token), func() bool { return len(to(token)) >= n })
	e.Quiet()
	got := to(token)
	if len(got) != n {
		e.t.Fatalf("%s %s got %d pushes, want %d: %s", provider, token, len(got), n, strings.Join(fakepush.Types(got), ","))
	}
	return got
}

// FCMTypes lists the push types token got over FCM, in order.
func (e *Env) FCMTypes(token string) []string { return fakepush.Types(e.FCM.To(token)) }

// APNsTypes lists the push types token got over APNs, in order.
func (e *Env) APNsTypes(token string) []string { return fakepush.Types(e.APNs.To(token)) }

// Context is a context that ends with the test.
func (e *Env) Context() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	return ctx
}

// APNsToken is a well-formed APNs device token (64 hex digits) named after name, so tests can read which
// device is which while APNs (and the fake) accept only hex tokens.
func APNsToken(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// UserIDs is n user ids with the prefix, numbered so that they sort (prefix0000, prefix0001, ...).
func UserIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

// MemberList is the members list of a get-or-create body: one {"user_id": id} per id.
func MemberList(ids ...string) []map[string]any {
	out := make([]map[string]any, len(ids))
	for i, u := range ids {
		out[i] = map[string]any{"user_id": u}
	}
	return out
}
