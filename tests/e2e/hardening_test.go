package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/tests/harness"
)

// The hardening tests of issue 12 that one request shows: sizes counted before decoding, strict keys,
// device token shapes and counts, the dashboard's origin check, the HTTP server's timeouts.

// hardeningCustom is a custom object of about n bytes as sent, with many small keys: the shape that costs
// the most to decode.
func hardeningCustom(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; b.Len() < n-32; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	b.WriteString("}")
	return b.String()
}

func TestCustomOver5KiBAsSentIsRefusedBeforeDecoding(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/c0", alice, map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}})

	// 1,000 escaped letters are 6,000 bytes as sent and 1 KiB decoded: what was sent is what counts.
	escaped := `{"blob":"` + strings.Repeat(`\u0041`, 1000) + `"}`
	for _, c := range []struct{ path, body, field string }{
		{"/v1/call/default/c1", `{"data":{"custom":` + escaped + `}}`, "data.custom"},
		{"/v1/call/default/c1", `{"data":{"members":[{"user_id":"alice","custom":` + escaped + `}]}}`, "data.members[0].custom"},
		{"/v1/call/default/c0/members", `{"update_members":[{"user_id":"bob","custom":` + escaped + `}]}`, "update_members[0].custom"},
	} {
		r := e.Call("POST", c.path, alice, c.body)
		contractErr(t, c.field+" of 6,000 bytes as sent", r, 400, "limit_exceeded", c.field)
	}
	// Nothing was stored by the refusals.
	e.MustCall(404, "GET", "/v1/call/default/c1", alice, nil)

	// Nearly 8 MiB of custom: the answer names the size as sent, which the server knows without decoding.
	big := `{"data":{"members":[{"user_id":"alice"}],"custom":` + hardeningCustom(8<<20-1024) + `}}`
	r := e.Call("POST", "/v1/call/default/c2", alice, big)
	contractErr(t, "8 MiB custom", r, 400, "limit_exceeded", "data.custom")
	if msg, _ := r.Body["message"].(string); !strings.Contains(msg, "as sent") {
		t.Errorf("8 MiB custom: message %q does not say the size as sent was measured", msg)
	}
	// Up to 5 KiB as sent is stored.
	e.MustCall(201, "POST", "/v1/call/default/c3", alice, `{"data":{"custom":`+hardeningCustom(5*1024)+`}}`)
}

func TestKeysMatchFieldNamesExactlyAndOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Device("bob", "bob-android-strict-keys", "firebase", false)
	alice := e.Token("alice")
	for _, c := range []struct{ what, path, body, code, field string }{
		{"upper-case RING and Data", "/v1/call/default/k1", `{"RING":true,"Data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`, "unknown_field", "RING"},
		{"ring given twice", "/v1/call/default/k1", `{"ring":false,"ring":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`, "invalid_json", "ring"},
		{"member user_id given twice", "/v1/call/default/k1", `{"ring":true,"data":{"members":[{"user_id":"alice"},{"user_id":"carol","user_id":"bob"}]}}`, "invalid_json", "data.members[1].user_id"},
		{"custom key given twice", "/v1/call/default/k1", `{"data":{"members":[{"user_id":"alice"}],"custom":{"video":false,"video":true}}}`, "invalid_json", "data.custom.video"},
		{"member key case", "/v1/call/default/k1", `{"data":{"members":[{"User_Id":"bob"}]}}`, "unknown_field", "data.members[0].User_Id"},
		{"device key case", "/v1/devices", `{"ID":"bob-android-strict-keys-2","push_provider":"firebase"}`, "unknown_field", "ID"},
	} {
		contractErr(t, c.what, e.Call("POST", c.path, alice, c.body), 400, c.code, c.field)
	}
	e.Quiet()
	if n := len(e.FCM.MessagesTo("bob-android-strict-keys")); n != 0 {
		t.Errorf("bob got %d pushes from refused bodies", n)
	}
	e.MustCall(404, "GET", "/v1/call/default/k1", alice, nil)
	// The exact names ring, as an escaped key spelling them does.
	e.MustCall(201, "POST", "/v1/call/default/k2", alice, `{"r\u0069ng":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`)
	e.WaitFCM("bob-android-strict-keys", 1)
}

func TestDeviceTokensMustHaveTheirProvidersShape(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	hex64 := harness.APNsToken("shape")
	for _, c := range []struct{ what, id, provider string }{
		{"apn token that is not hex", "alice-iphone-not-hex-alice-iphone-not-hex-alice-iphone-not-hex-x", "apn"},
		{"apn token of an odd length", hex64 + "a", "apn"},
		{"apn token too short", hex64[:32], "apn"},
		{"apn token too long", strings.Repeat(hex64, 4), "apn"},
		{"fcm token with a space", "alice android phone", "firebase"},
		{"fcm token with braces", "fcm-{alice}-token", "firebase"},
		{"fcm token of 3 characters", "abc", "firebase"},
	} {
		r := e.Call("POST", "/v1/devices", alice, map[string]any{"id": c.id, "push_provider": c.provider})
		contractErr(t, c.what, r, 400, "invalid_field", "id")
	}
	if ds := devicesList(t, e, "alice"); len(ds) != 0 {
		t.Errorf("refused tokens were stored: %v", ds)
	}
	devicesRegister(t, e, "alice", hex64, "apn", true, 201)
	devicesRegister(t, e, "alice", strings.ToUpper(hex64[:40])+hex64[:40], "apn", false, 201)
	devicesRegister(t, e, "alice", "cR4x_z-Q:APA91b"+strings.Repeat("x", 140), "firebase", false, 201)
}

func TestAUserKeepsAtMost50DevicesAndTheOldestIsDropped(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	tok := func(i int) string { return fmt.Sprintf("bob-android-%03d", i) }
	for i := range 51 {
		e.Device("bob", tok(i), "firebase", false)
	}
	ds := devicesList(t, e, "bob")
	if len(ds) != 50 {
		t.Fatalf("bob has %d devices after 51 registrations, want 50", len(ds))
	}
	if ds[tok(0)] != nil || ds[tok(50)] == nil || ds[tok(1)] == nil {
		t.Errorf("the oldest registration was not the one dropped: has 0: %v, 1: %v, 50: %v", ds[tok(0)] != nil, ds[tok(1)] != nil, ds[tok(50)] != nil)
	}
	// A ring reaches the 50 kept and not the dropped one.
	e.MustCall(201, "POST", "/v1/call/default/fifty", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	e.WaitFCM(tok(50), 1)
	for i := 1; i <= 50; i++ {
		if n := len(e.FCM.MessagesTo(tok(i))); n != 1 {
			t.Errorf("%s got %d ring pushes, want 1", tok(i), n)
		}
	}
	if n := len(e.FCM.MessagesTo(tok(0))); n != 0 {
		t.Errorf("the dropped %s got %d pushes", tok(0), n)
	}
	// The dropped token is free: another user registers it as new.
	devicesRegister(t, e, "carol", tok(0), "firebase", false, 201)
}

// hardeningClosed reads conn until the server closes it and reports whether it did within d; whatever the
// server answered on the way is returned.
func hardeningClosed(t *testing.T, conn net.Conn, d time.Duration) (closed bool, got string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b) // EOF or a reset: the server let go of the connection
}

func TestSlowBodiesAndIdleConnectionsAreCutOffWhileStreamsLast(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_HTTP_READ_TIMEOUT=1s", "RINGER_HTTP_IDLE_TIMEOUT=1s"}})
	addr := strings.TrimPrefix(e.URL, "http://")
	// A stream opened first must outlast both timeouts.
	events := e.Events(e.Token("bob"), "")
	defer events.Close()

	// A body that stops coming after a few bytes.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /v1/call/default/slow HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ri", addr, e.Token("alice"))
	stalled := time.Now()
	if closed, got := hardeningClosed(t, slow, 15*time.Second); !closed {
		t.Errorf("a connection whose body stalled was still open after 15 s (read timeout 1 s); it got %q", got)
	} else {
		t.Logf("stalled body: connection closed %v after the last byte, having answered %q", time.Since(stalled).Round(time.Millisecond), strings.SplitN(got, "\r\n", 2)[0])
	}

	// A keep-alive connection with nothing more to say.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	br := bufio.NewReader(idle)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("healthz over a raw connection: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Close {
		t.Fatalf("healthz: %d, close %v: want 200 on a connection kept alive", res.StatusCode, res.Close)
	}
	if err := idle.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	idleSince := time.Now()
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("an idle keep-alive connection was still open after 15 s (idle timeout 1 s)")
	} else {
		t.Logf("idle keep-alive connection closed after %v", time.Since(idleSince).Round(time.Millisecond))
	}

	// The stream opened before both cut-offs still carries events.
	e.MustCall(201, "POST", "/v1/call/default/after", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	if seen, ok := events.Until("call.ring", 15*time.Second); !ok {
		t.Errorf("the event stream did not outlive the timeouts: it got %v", seen)
	}
}

func TestShortSecretsAndUnsafeHTTPTimeoutsAreRefusedAtStart(t *testing.T) {
	t.Parallel()
	short := "short-secret-of-31-bytes-xxxxxx" // one byte too few
	if len(short) != 31 {
		t.Fatalf("the short secret is %d bytes", len(short))
	}
	for _, cmd := range []string{"serve", "api"} {
		res := configRun(t, configWith(configBase(), "RINGER_API_SECRET="+short), cmd)
		if res.code == 0 || !strings.Contains(res.stderr, "RINGER_API_SECRET") || !strings.Contains(res.stderr, "32") {
			t.Errorf("ringer %s with a 31-byte secret: exit %d, stderr:\n%s", cmd, res.code, res.stderr)
		}
		if strings.Contains(res.stderr, short) {
			t.Errorf("ringer %s printed the secret:\n%s", cmd, res.stderr)
		}
	}
	res := configRun(t, []string{"RINGER_API_SECRET=" + short}, "token", "--user", "alice")
	if res.code == 0 || strings.TrimSpace(res.stdout) != "" || !strings.Contains(res.stderr, "RINGER_API_SECRET") {
		t.Errorf("ringer token with a 31-byte secret: exit %d, stdout %q, stderr:\n%s", res.code, res.stdout, res.stderr)
	}
	for _, bad := range []string{"RINGER_HTTP_WRITE_TIMEOUT=5s", "RINGER_HTTP_READ_TIMEOUT=0s", "RINGER_HTTP_IDLE_TIMEOUT=soon"} {
		name, _, _ := strings.Cut(bad, "=")
		res := configRun(t, configWith(configBase(), bad), "serve")
		if res.code == 0 || !strings.Contains(res.stderr, name) {
			t.Errorf("ringer serve with %s: exit %d, stderr:\n%s", bad, res.code, res.stderr)
		}
	}
}

func TestTokenHelpAndFlagErrorsNeverPrintTheSecret(t *testing.T) {
	t.Parallel()
	secret := "the-secret-that-must-not-be-printed-0123456789"
	env := []string{"RINGER_API_SECRET=" + secret}
	for _, args := range [][]string{
		{"token", "--help"},
		{"token", "-h"},
		{"token", "--no-such-flag"},
		{"token", "--ttl", "soon", "--user", "alice"},
		{"token", "--user"},
	} {
		res := configRun(t, env, args...)
		if strings.Contains(res.stdout+res.stderr, secret) {
			t.Errorf("ringer %v printed the secret:\n%s%s", args, res.stdout, res.stderr)
		}
		if !strings.Contains(res.stderr, "-secret") {
			t.Errorf("ringer %v did not print the usage:\n%s", args, res.stderr)
		}
	}
	// The secret still comes from the environment when --secret is not given.
	if res := configRun(t, env, "token", "--user", "alice"); res.code != 0 || strings.Count(strings.TrimSpace(res.stdout), ".") != 2 {
		t.Errorf("ringer token --user alice: exit %d, stdout %q, stderr:\n%s", res.code, res.stdout, res.stderr)
	}
}

func TestDashboardRefusesCrossOriginRequestsThatChangeState(t *testing.T) {
	t.Parallel()
	const user, password = "ops", "dashboard-password-for-origin-test"
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_DASHBOARD_USER=" + user, "RINGER_DASHBOARD_PASSWORD=" + password}})
	// A ring makes the ring queue exist, so pausing it means something.
	e.MustCall(201, "POST", "/v1/call/default/dash", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	paused := func() bool {
		info, err := in.GetQueueInfo("ring")
		if err != nil {
			t.Fatalf("ring queue: %v", err)
		}
		return info.Paused
	}
	pause := func(header, value string) int {
		req, err := http.NewRequest("POST", e.URL+"/asynq/api/queues/ring:pause", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, password)
		if header != "" {
			req.Header.Set(header, value)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct{ header, value string }{
		{"Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		if status := pause(c.header, c.value); status != http.StatusForbidden {
			t.Errorf("pause with %s: %s: %d, want 403", c.header, c.value, status)
		}
		if paused() {
			t.Fatalf("a cross-origin request (%s: %s) paused the ring queue", c.header, c.value)
		}
	}
	// Reading stays open to the logged-in operator whatever the origin, and the dashboard's own page may act.
	req, _ := http.NewRequest("GET", e.URL+"/asynq/api/queues", nil)
	req.SetBasicAuth(user, password)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("GET /asynq/api/queues from another origin: %v %v, want 200", res, err)
	} else {
		res.Body.Close()
	}
	if status := pause("Sec-Fetch-Site", "same-origin"); status >= 300 || !paused() {
		t.Errorf("a same-origin pause: %d, paused %v; want it to work", status, paused())
	}
}

func TestRedisClientLogsStayJSONAndReadyzShowsNoAddress(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	p := e.StartProcess("api")
	base := "http://" + p.Addr
	e.Redis.Stop()
	var body string
	e.Eventually(30*time.Second, "/readyz to fail with Redis stopped", func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body = string(b)
		return res.StatusCode == 503
	})
	var rb struct{ Code, Message string }
	if err := json.Unmarshal([]byte(body), &rb); err != nil || rb.Code != "not_ready" || rb.Message != "redis unreachable" {
		t.Errorf("/readyz with Redis down: %s, want not_ready \"redis unreachable\"", body)
	}
	_, port, _ := net.SplitHostPort(e.Redis.Addr)
	if strings.Contains(body, port) || strings.Contains(body, "127.0.0.1") {
		t.Errorf("/readyz shows an internal address: %s", body)
	}
	// Requests while Redis is down make go-redis log its dial failures; they arrive as JSON records.
	e.Eventually(30*time.Second, "a go-redis log record", func() bool {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
		}
		return strings.Contains(p.Logs(), `"msg":"redis client"`)
	})
	logs := p.Logs()
	if !strings.Contains(logs, port) {
		t.Errorf("the log does not have the address /readyz leaves out")
	}
	for i, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line %d is not JSON: %q", i+1, line)
		}
	}
}
