package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// configResult is how one run of the ringer binary ended.
type configResult struct {
	code           int
	stdout, stderr string
}

// configRun runs the ringer binary with exactly env (plus PATH and HOME) and waits for it to exit; a process
// still running after 30 s fails the test: every run here must end on its own.
func configRun(t *testing.T, env []string, args ...string) configResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ringer %v did not exit within 30s; stderr:\n%s", args, stderr.String())
	}
	res := configResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run ringer %v: %v", args, err)
	}
	return res
}

// configBase is an environment ringer serve would accept but for what a test changes: a Redis URL nobody
// listens on is fine, since every failure tested comes before Redis is needed.
func configBase() []string {
	return []string{
		"RINGER_API_SECRET=config-test-secret-of-at-least-32-bytes",
		"REDIS_URL=redis://127.0.0.1:1/0",
		"RINGER_ADDR=127.0.0.1:0",
		"RINGER_LOG_FORMAT=json",
	}
}

// configWith is base with the given KEY=VALUE pairs set (an empty value removes the key).
func configWith(base []string, kv ...string) []string {
	out := append([]string(nil), base...)
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		out = configDeleteKey(out, k)
		if v != "" {
			out = append(out, p)
		}
	}
	return out
}

func configDeleteKey(env []string, key string) []string {
	out := env[:0]
	for _, p := range env {
		if !strings.HasPrefix(p, key+"=") {
			out = append(out, p)
		}
	}
	return out
}

func TestServeWithoutSecretExitsNamingIt(t *testing.T) {
	t.Parallel()
	res := configRun(t, configWith(configBase(), "RINGER_API_SECRET="), "serve")
	if res.code == 0 {
		t.Fatalf("ringer serve without RINGER_API_SECRET exited 0; stderr:\n%s", res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "RINGER_API_SECRET") {
		t.Errorf("stderr is not one line naming RINGER_API_SECRET:\n%s", res.stderr)
	}
	for _, cmd := range []string{"api"} {
		res := configRun(t, configWith(configBase(), "RINGER_API_SECRET="), cmd)
		if res.code == 0 || !strings.Contains(res.stderr, "RINGER_API_SECRET") {
			t.Errorf("ringer %s without RINGER_API_SECRET: exit %d, stderr:\n%s", cmd, res.code, res.stderr)
		}
	}
}

func TestServeRefusesMisconfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("AuthKey_ABC123DEFG.p8", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
	write("bad-parse/call.ring.firebase.title.tmpl", "{{.CallerName")
	write("bad-name/call.ring.firebase.titel.tmpl", "{{.CallerName}}")
	write("bad-event/call.started.apn.title.tmpl", "{{.CallerName}}")

	cases := []struct {
		name  string
		env   []string
		names []string // what stderr must name
	}{
		{"REDIS_URL not a URL", []string{"REDIS_URL=localhost:6379"}, []string{"REDIS_URL"}},
		{"REDIS_URL wrong scheme", []string{"REDIS_URL=http://127.0.0.1:6379"}, []string{"REDIS_URL"}},
		{"REDIS_URL bad port", []string{"REDIS_URL=redis://127.0.0.1:notaport"}, []string{"REDIS_URL"}},
		{"APNS_ENVIRONMENT staging", []string{"APNS_ENVIRONMENT=staging"}, []string{"APNS_ENVIRONMENT"}},
		{"APNS_KEY_FILE without key and team ids", []string{"APNS_KEY_FILE=" + keyFile, "APNS_TOPIC=com.example.ringer"},
			[]string{"APNS_KEY_ID", "APNS_TEAM_ID"}},
		{"FCM_CREDENTIALS_FILE missing", []string{"FCM_CREDENTIALS_FILE=" + filepath.Join(dir, "no-such-file.json")},
			[]string{"FCM_CREDENTIALS_FILE"}},
		{"template that does not parse", []string{"RINGER_TEMPLATES_DIR=" + filepath.Join(dir, "bad-parse")},
			[]string{"RINGER_TEMPLATES_DIR", "call.ring.firebase.title.tmpl"}},
		{"template of an unknown part", []string{"RINGER_TEMPLATES_DIR=" + filepath.Join(dir, "bad-name")},
			[]string{"RINGER_TEMPLATES_DIR", "call.ring.firebase.titel.tmpl"}},
		{"template of an unknown event", []string{"RINGER_TEMPLATES_DIR=" + filepath.Join(dir, "bad-event")},
			[]string{"RINGER_TEMPLATES_DIR", "call.started.apn.title.tmpl"}},
		{"RINGER_TEMPLATES_DIR missing", []string{"RINGER_TEMPLATES_DIR=" + filepath.Join(dir, "no-such-dir")},
			[]string{"RINGER_TEMPLATES_DIR"}},
		{"RINGER_RING_RATE and RINGER_NOTIFY_TTL malformed, both named at once", []string{"RINGER_RING_RATE=30/day", "RINGER_NOTIFY_TTL=forever"},
			[]string{"RINGER_RING_RATE", "RINGER_NOTIFY_TTL"}},
		{"RINGER_LOG_FLUSH_INTERVAL negative", []string{"RINGER_LOG_FLUSH_INTERVAL=-100ms"}, []string{"RINGER_LOG_FLUSH_INTERVAL"}},
		{"RINGER_LOG_LEVEL unknown", []string{"RINGER_LOG_LEVEL=verbose"}, []string{"RINGER_LOG_LEVEL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res := configRun(t, configWith(configBase(), c.env...), "serve")
			if res.code == 0 {
				t.Fatalf("exited 0; stderr:\n%s", res.stderr)
			}
			for _, n := range c.names {
				if !strings.Contains(res.stderr, n) {
					t.Errorf("stderr does not name %s:\n%s", n, res.stderr)
				}
			}
		})
	}
}

func TestTokenCommandPrintsATokenTheAPIAccepts(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	env := []string{"RINGER_API_SECRET=" + e.Secret}

	res := configRun(t, env, "token", "--user", "alice")
	if res.code != 0 {
		t.Fatalf("ringer token --user alice: exit %d\n%s", res.code, res.stderr)
	}
	user := strings.TrimSpace(res.stdout)
	if strings.Count(user, ".") != 2 || strings.ContainsAny(user, " \n") {
		t.Fatalf("stdout is not one JWT: %q", res.stdout)
	}
	e.MustCall(201, "POST", "/v1/devices", user, map[string]any{"id": "alice-android", "push_provider": "firebase"})
	r := e.MustCall(200, "GET", "/v1/devices", user, nil)
	if ds, _ := r.Body["devices"].([]any); len(ds) != 1 || ds[0].(map[string]any)["user_id"] != "alice" {
		t.Errorf("the printed token does not act as alice: %s", r.Raw)
	}

	res = configRun(t, env, "token", "--server")
	if res.code != 0 {
		t.Fatalf("ringer token --server: exit %d\n%s", res.code, res.stderr)
	}
	srv := strings.TrimSpace(res.stdout)
	r = e.MustCall(200, "GET", "/v1/devices?user_id=alice", srv, nil)
	if ds, _ := r.Body["devices"].([]any); len(ds) != 1 {
		t.Errorf("server token lists alice's devices: %s", r.Raw)
	}

	res = configRun(t, env, "token", "--user", "dave", "--role", "admin", "--ttl", "1h")
	if res.code != 0 {
		t.Fatalf("ringer token --role admin: exit %d\n%s", res.code, res.stderr)
	}
	e.MustCall(201, "POST", "/v1/call/default/c1", user, map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}})
	// An admin token may end a call it is not a member of.
	e.MustCall(200, "POST", "/v1/call/default/c1/mark_ended", strings.TrimSpace(res.stdout), nil)

	// A token printed for another secret is refused.
	res = configRun(t, []string{"RINGER_API_SECRET=other-secret-of-at-least-32-bytes-long"}, "token", "--user", "alice")
	if res.code != 0 {
		t.Fatalf("ringer token with another secret: exit %d\n%s", res.code, res.stderr)
	}
	contractErr(t, "token of another secret", e.Call("GET", "/v1/devices", strings.TrimSpace(res.stdout), nil), 401, "unauthorized", "")
}

func TestTokenCommandNeedsExactlyUserOrServer(t *testing.T) {
	t.Parallel()
	env := []string{"RINGER_API_SECRET=token-test-secret-of-at-least-32-bytes"}
	for _, args := range [][]string{
		{"token"},
		{"token", "--name", "Alice"},
		{"token", "--user", "alice", "--server"},
	} {
		res := configRun(t, env, args...)
		if res.code == 0 || strings.TrimSpace(res.stdout) != "" {
			t.Errorf("ringer %v: exit %d, stdout %q", args, res.code, res.stdout)
		}
		if !strings.Contains(res.stderr, "--user") || !strings.Contains(res.stderr, "--server") {
			t.Errorf("ringer %v: stderr does not say --user or --server:\n%s", args, res.stderr)
		}
	}
	res := configRun(t, nil, "token", "--user", "alice")
	if res.code == 0 || !strings.Contains(res.stderr, "RINGER_API_SECRET") {
		t.Errorf("ringer token without a secret: exit %d, stderr:\n%s", res.code, res.stderr)
	}
}

func TestTemplatesDirOverridesTheNotificationTitle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "call.notification.firebase.title.tmpl"),
		[]byte("Override: {{.CallerName}} is in {{.Custom.topic}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_TEMPLATES_DIR=" + dir}})
	e.Android("bob")
	e.MustCall(201, "POST", "/v1/call/default/huddle", e.Token("alice"), map[string]any{
		"notify": true, "data": map[string]any{"members": contractMembers("alice", "bob"), "custom": map[string]any{"topic": "standup"}},
	})
	m := e.WaitFCM("bob-android", 1)[0]
	if m.Data["type"] != "call.notification" || m.Notification == nil {
		t.Fatalf("notify push: type %q notification %+v", m.Data["type"], m.Notification)
	}
	if m.Notification.Title != "Override: Alice is in standup" {
		t.Errorf("title %q, want the override", m.Notification.Title)
	}
	if m.Notification.Body == "" {
		t.Errorf("body is empty: the default body should stay")
	}
}

// configGet is a GET of an operations endpoint (no token).
// waitReady waits for /readyz to answer 200 again, once what failed it has recovered.
func waitReady(t *testing.T, e *harness.Env) {
	t.Helper()
	e.Eventually(10*time.Second, "/readyz to recover", func() bool {
		st, _, _ := configGet(t, e, "/readyz")
		return st == 200
	})
}

func configGet(t *testing.T, e *harness.Env, path string) (int, string, []byte) {
	t.Helper()
	res, err := e.HTTP().Get(e.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

func TestHealthzAndReadyzWithEverythingUp(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	if st, _, b := configGet(t, e, "/healthz"); st != 200 {
		t.Errorf("/healthz: %d %s", st, b)
	}
	if st, _, b := configGet(t, e, "/readyz"); st != 200 {
		t.Errorf("/readyz: %d %s", st, b)
	}
	if e.FCM.TokenRequests() == 0 {
		t.Errorf("/readyz did not check the FCM credentials")
	}
}

func TestReadyzIs503WhenFCMCredentialsFail(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.FCM.FailTokenEndpoint(401)
	st, _, b := configGet(t, e, "/readyz")
	r := harness.Resp{Status: st, Raw: b}
	_ = json.Unmarshal(b, &r.Body)
	contractErr(t, "/readyz with FCM's token endpoint refusing", r, 503, "not_ready", "fcm")
	// /healthz says the process is up all the same.
	if st, _, b := configGet(t, e, "/healthz"); st != 200 {
		t.Errorf("/healthz: %d %s", st, b)
	}
	e.FCM.FailTokenEndpoint(0)
	waitReady(t, e)
}

func TestMetricsCountPushes(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	e.MustCall(201, "POST", "/v1/call/default/m1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	e.WaitFCM("bob-android", 1)
	st, ct, b := configGet(t, e, "/metrics")
	if st != 200 || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics: %d %q", st, ct)
	}
	var found bool
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "ringer_pushes_total{") && strings.Contains(line, `provider="firebase"`) &&
			strings.Contains(line, `type="call.ring"`) && strings.Contains(line, `outcome="sent"`) && strings.HasSuffix(line, " 1") {
			found = true
		}
	}
	if !found {
		t.Errorf("/metrics has no ringer_pushes_total of 1 sent firebase ring:\n%s", configGrep(string(b), "ringer_pushes_total"))
	}
}

func configGrep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
