package fcm

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/fakepush"
)

// newSender starts a fake FCM, serving as FCM does (TLS, HTTP/2), and a Sender pointed at it.
func newSender(t *testing.T) (*Sender, *fakefcm.Server) {
	t.Helper()
	fake := fakefcm.Start(t)
	return senderFor(t, fake), fake
}

// senderFor is a Sender with fresh credentials pointed at fake, trusting its certificate.
func senderFor(t testing.TB, fake *fakefcm.Server) *Sender {
	t.Helper()
	s, err := New(context.Background(), Config{CredentialsFile: fake.WriteCredentials(t.TempDir()), Endpoint: fake.Endpoint,
		RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func data(typ string) map[string]string { return fakepush.CallData(typ, false) }

func TestSendShapesEachKindAsAPIMdSays(t *testing.T) {
	s, fake := newSender(t)
	expires := time.Now().Add(30 * time.Second)

	cases := []struct {
		name         string
		push         providers.Push
		priority     string
		notification *fakefcm.Notification
		ttl          bool
	}{
		{
			name:     "ring is data-only at high priority with the ring's time left as TTL",
			push:     providers.Push{Token: "tok-ring", Kind: providers.KindRing, Data: data("call.ring"), Expires: expires, CollapseID: "r1"},
			priority: "high",
			ttl:      true,
		},
		{
			name:         "alert carries a notification and the data",
			push:         providers.Push{Token: "tok-alert", Kind: providers.KindAlert, Data: data("call.missed"), Title: "Missed call", Body: "Alice called"},
			notification: &fakefcm.Notification{Title: "Missed call", Body: "Alice called"},
		},
		{
			name:     "stop is data-only at high priority",
			push:     providers.Push{Token: "tok-stop", Kind: providers.KindStop, Data: data("call.accepted")},
			priority: "high",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := fakepush.MustSend(t, s, c.push)
			m := fake.Only(t, c.push.Token)
			if res.ID != m.Name {
				t.Errorf("Result.ID = %q, want the message name %q", res.ID, m.Name)
			}
			if len(m.Data) != len(c.push.Data) {
				t.Errorf("data = %v, want %v", m.Data, c.push.Data)
			}
			for k, v := range c.push.Data {
				if m.Data[k] != v {
					t.Errorf("data[%s] = %q, want %q", k, m.Data[k], v)
				}
			}
			if m.AndroidPriority != c.priority {
				t.Errorf("android.priority = %q, want %q", m.AndroidPriority, c.priority)
			}
			if (m.Notification == nil) != (c.notification == nil) ||
				(m.Notification != nil && *m.Notification != *c.notification) {
				t.Errorf("notification = %+v, want %+v", m.Notification, c.notification)
			}
			if c.notification == nil && strings.Contains(string(m.Raw()), `"notification"`) {
				t.Errorf("data-only message has a notification: %s", m.Raw())
			}
			if m.HasTTL != c.ttl {
				t.Errorf("ttl sent = %v, want %v (raw %s)", m.HasTTL, c.ttl, m.Raw())
			}
			if c.ttl {
				// The TTL is what was left of the ring when it was sent: a little under 30 s, never over.
				if m.TTL > 30*time.Second || m.TTL < 20*time.Second {
					t.Errorf("ttl = %v, want just under 30s", m.TTL)
				}
			}
			for h, want := range map[string]string{"Content-Type": "application/json",
				"X-Goog-Api-Format-Version": "2", "X-Firebase-Client": "fire-admin-go/" + sdkVersion} {
				if got := m.Header.Get(h); got != want {
					t.Errorf("header %s = %q, want %q", h, got, want)
				}
			}
			if m.CollapseKey != c.push.CollapseID {
				t.Errorf("collapse_key = %q, want %q", m.CollapseKey, c.push.CollapseID)
			}
		})
	}
}

func TestRingPastItsEndGoesWithZeroTTL(t *testing.T) {
	s, fake := newSender(t)
	fakepush.MustSend(t, s, providers.Push{Token: "late", Kind: providers.KindRing, Data: data("call.ring"), Expires: time.Now().Add(-time.Second)})
	m := fake.MessagesTo("late")[0]
	if !m.HasTTL || m.TTL != 0 {
		t.Fatalf("ttl = %v (sent %v), want 0s: a ring that is over must not linger in FCM", m.TTL, m.HasTTL)
	}
}

// TestVerdictForEveryFCMError drives each of FCM's real error answers through Send and checks the verdict the
// worker gets.
func TestVerdictForEveryFCMError(t *testing.T) {
	s, fake := newSender(t)
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		name       string
		script     []fakefcm.Answer
		verdict    providers.Verdict
		reason     string
		retryAfter time.Duration // exact, or with afterAbout, at least this minus 5 s
		afterAbout bool
		attempts   int
	}{
		{name: "404 UNREGISTERED", script: []fakefcm.Answer{fakefcm.Unregistered()},
			verdict: providers.Unregistered, reason: "UNREGISTERED", attempts: 1},
		{name: "403 SENDER_ID_MISMATCH", script: []fakefcm.Answer{fakefcm.SenderIDMismatch()},
			verdict: providers.Unregistered, reason: "SENDER_ID_MISMATCH", attempts: 1},
		{name: "400 INVALID_ARGUMENT for the token", script: []fakefcm.Answer{fakefcm.InvalidToken()},
			verdict: providers.Unregistered, reason: "INVALID_ARGUMENT: registration token", attempts: 1},
		{name: "400 INVALID_ARGUMENT with a field violation on message.token",
			script:  []fakefcm.Answer{{Status: 400, FieldViolation: "message.token", Message: "Invalid value at 'message.token'"}},
			verdict: providers.Unregistered, reason: "INVALID_ARGUMENT: registration token", attempts: 1},
		{name: "400 INVALID_ARGUMENT for the payload", script: []fakefcm.Answer{fakefcm.InvalidPayload("message.data[0].value")},
			verdict: providers.Rejected, reason: "INVALID_ARGUMENT", attempts: 1},
		{name: "400 message too big", script: []fakefcm.Answer{{Status: 400, ErrorCode: "INVALID_ARGUMENT", Message: "Android message is too big"}},
			verdict: providers.Rejected, reason: "INVALID_ARGUMENT", attempts: 1},
		{name: "429 QUOTA_EXCEEDED with Retry-After seconds", script: []fakefcm.Answer{fakefcm.QuotaExceeded("30")},
			verdict: providers.Retry, reason: "QUOTA_EXCEEDED", retryAfter: 30 * time.Second, attempts: 1},
		{name: "429 QUOTA_EXCEEDED with Retry-After date", script: []fakefcm.Answer{fakefcm.QuotaExceeded(httpDate)},
			verdict: providers.Retry, reason: "QUOTA_EXCEEDED", retryAfter: 90 * time.Second, afterAbout: true, attempts: 1},
		{name: "429 without details", script: []fakefcm.Answer{{Status: 429, Message: "Too many requests"}},
			verdict: providers.Retry, reason: "RESOURCE_EXHAUSTED", attempts: 1},
		{name: "503 UNAVAILABLE with a long Retry-After", script: []fakefcm.Answer{fakefcm.Unavailable("300")},
			verdict: providers.Retry, reason: "UNAVAILABLE", retryAfter: 300 * time.Second, attempts: 1},
		// Send makes one attempt: the worker's backoff, not a retry loop inside Send, governs a 503.
		{name: "503 UNAVAILABLE is the worker's to retry", script: []fakefcm.Answer{fakefcm.Unavailable("")},
			verdict: providers.Retry, reason: "UNAVAILABLE", attempts: 1},
		{name: "503 UNAVAILABLE keeps its Retry-After", script: []fakefcm.Answer{fakefcm.Unavailable("7")},
			verdict: providers.Retry, reason: "UNAVAILABLE", attempts: 1, retryAfter: 7 * time.Second},
		{name: "500 INTERNAL", script: []fakefcm.Answer{fakefcm.Internal()},
			verdict: providers.Retry, reason: "INTERNAL", attempts: 1},
		{name: "502 bad gateway", script: []fakefcm.Answer{{Status: 502, Message: "Bad Gateway"}},
			verdict: providers.Retry, reason: "UNKNOWN", attempts: 1},
		{name: "401 THIRD_PARTY_AUTH_ERROR", script: []fakefcm.Answer{fakefcm.ThirdPartyAuthError()},
			verdict: providers.Retry, reason: "credentials: THIRD_PARTY_AUTH_ERROR", attempts: 1},
		{name: "401 UNAUTHENTICATED", script: []fakefcm.Answer{{Status: 401, Message: "Request had invalid authentication credentials."}},
			verdict: providers.Retry, reason: "credentials: UNAUTHENTICATED", attempts: 1},
		{name: "403 PERMISSION_DENIED", script: []fakefcm.Answer{{Status: 403, Message: "Permission 'cloudmessaging.messages.create' denied"}},
			verdict: providers.Retry, reason: "credentials: PERMISSION_DENIED", attempts: 1},
		{name: "404 without UNREGISTERED is a wrong endpoint", script: []fakefcm.Answer{{Status: 404, Message: "Not Found"}},
			verdict: providers.Retry, reason: "NOT_FOUND: endpoint or project", attempts: 1},
		{name: "dropped connection is the worker's to retry", script: []fakefcm.Answer{fakefcm.Drop()},
			verdict: providers.Retry, reason: "UNAVAILABLE", attempts: 1},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			token := "tok-" + string(rune('a'+i))
			fake.Script(token, c.script...)
			res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: token, Kind: providers.KindRing, Data: data("call.ring")})
			if res.Verdict != c.verdict || res.Reason != c.reason {
				t.Errorf("verdict %v %q, want %v %q (err %v)", res.Verdict, res.Reason, c.verdict, c.reason, res.Err)
			}
			if c.afterAbout {
				if res.RetryAfter > c.retryAfter || res.RetryAfter < c.retryAfter-5*time.Second {
					t.Errorf("RetryAfter = %v, want about %v", res.RetryAfter, c.retryAfter)
				}
			} else if res.RetryAfter != c.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, c.retryAfter)
			}
			if (res.Err == nil) != (c.verdict == providers.Sent) {
				t.Errorf("Err = %v with verdict %v", res.Err, res.Verdict)
			}
			if got := fake.Attempts(token); got != c.attempts {
				t.Errorf("attempts = %d, want %d", got, c.attempts)
			}
			wantDelivered := 0
			if c.verdict == providers.Sent {
				wantDelivered = 1
			}
			if got := len(fake.MessagesTo(token)); got != wantDelivered {
				t.Errorf("delivered %d, want %d: a scripted failure is no delivery", got, wantDelivered)
			}
		})
	}
}

func TestVerdictOfErrorsThatAreNotFCMAnswers(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		verdict providers.Verdict
		reason  string
	}{
		{"nil is sent", nil, providers.Sent, ""},
		{"deadline", context.DeadlineExceeded, providers.Retry, "DEADLINE_EXCEEDED"},
		{"cancel", context.Canceled, providers.Retry, "CANCELLED"},
		{"push we cannot shape", &pushError{msg: "no token"}, providers.Rejected, "INVALID_PUSH"},
		{"oauth token endpoint unreachable", &tokenError{err: errString("dial tcp: connection refused")}, providers.Retry, "credentials: oauth token"},
		{"oauth token timed out", &tokenError{err: context.DeadlineExceeded}, providers.Retry, "credentials: oauth token: DEADLINE_EXCEEDED"},
		{"message we could not encode", errString("encode message: json: unsupported value"), providers.Rejected, "INVALID_PUSH"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := verdict(c.err)
			if res.Verdict != c.verdict || res.Reason != c.reason {
				t.Errorf("verdict(%v) = %v %q, want %v %q", c.err, res.Verdict, res.Reason, c.verdict, c.reason)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestSendThatHangsEndsWithTheContextAsRetry(t *testing.T) {
	s, fake := newSender(t)
	fake.Script("slow", fakefcm.Hang())
	// The token first, on a loaded machine a TLS handshake and an RSA signature: the short deadline is the send's.
	if err := s.Check(fakepush.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	res := s.Send(fakepush.Context(t, 200*time.Millisecond), providers.Push{Token: "slow", Kind: providers.KindRing, Data: data("call.ring")})
	if res.Verdict != providers.Retry || res.Reason != "DEADLINE_EXCEEDED" {
		t.Fatalf("Send = %v %q (%v), want retry DEADLINE_EXCEEDED", res.Verdict, res.Reason, res.Err)
	}
	if n := len(fake.MessagesTo("slow")); n != 0 {
		t.Fatalf("hung send recorded %d messages", n)
	}
}

func TestUnreachableFCMIsRetry(t *testing.T) {
	t.Parallel()
	s, fake := newSender(t)
	fake.Script("gone", fakefcm.Drop(), fakefcm.Drop(), fakefcm.Drop(), fakefcm.Drop(), fakefcm.Drop())
	res := s.Send(fakepush.Context(t, 30*time.Second), providers.Push{Token: "gone", Kind: providers.KindStop, Data: data("call.ended")})
	if res.Verdict != providers.Retry || res.Err == nil {
		t.Fatalf("Send = %v %q (%v), want retry", res.Verdict, res.Reason, res.Err)
	}
	if got := fake.Attempts("gone"); got != 1 {
		t.Errorf("attempts = %d, want 1: the worker, not Send, retries", got)
	}
}

func TestFailingTokenEndpointIsRetryNamingCredentials(t *testing.T) {
	s, fake := newSender(t)
	fake.FailTokenEndpoint(http.StatusUnauthorized)
	push := providers.Push{Token: "t1", Kind: providers.KindRing, Data: data("call.ring")}

	res := s.Send(fakepush.Context(t, 10*time.Second), push)
	if res.Verdict != providers.Retry || !strings.HasPrefix(res.Reason, "credentials") {
		t.Fatalf("Send = %v %q, want retry naming credentials", res.Verdict, res.Reason)
	}
	if !strings.Contains(res.Reason, "401") {
		t.Errorf("Reason %q does not say what the token endpoint answered", res.Reason)
	}
	if err := s.Check(fakepush.Context(t, 10*time.Second)); err == nil {
		t.Errorf("Check passed with a failing token endpoint")
	}
	asked := fake.TokenRequests()
	for range 50 {
		s.Send(fakepush.Context(t, 10*time.Second), push)
	}
	if got := fake.TokenRequests(); got != asked {
		t.Errorf("token endpoint asked %d more times within the hold; a broken endpoint must not be hammered", got-asked)
	}
	if got := fake.Attempts("t1"); got != 0 {
		t.Errorf("%d sends reached FCM without a token", got)
	}

	// Once the endpoint recovers and the hold has passed, sends go through again.
	fake.FailTokenEndpoint(0)
	s.sess.Load().tokens.hold = 0
	fakepush.MustSend(t, s, push) // after recovery
}

func TestRevokedAccessTokenIsRetryNamingCredentials(t *testing.T) {
	s, fake := newSender(t)
	push := providers.Push{Token: "t1", Kind: providers.KindRing, Data: data("call.ring")}
	fakepush.MustSend(t, s, push)
	fake.RevokeAccessTokens()
	res := s.Send(fakepush.Context(t, 10*time.Second), push)
	if res.Verdict != providers.Retry || res.Reason != "credentials: UNAUTHENTICATED" {
		t.Fatalf("Send = %v %q, want retry credentials: UNAUTHENTICATED", res.Verdict, res.Reason)
	}
	if err := s.Check(fakepush.Context(t, 10*time.Second)); err == nil {
		t.Fatal("Check passed while FCM refuses our access token")
	}
	// The refused token is dropped: the next push fetches a new one and goes through.
	asked := fake.TokenRequests()
	fakepush.MustSend(t, s, push) // with a new token
	if fake.TokenRequests() != asked+1 {
		t.Errorf("token endpoint asked %d times after the refusal, want 1", fake.TokenRequests()-asked)
	}
	if err := s.Check(fakepush.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("Check after a push was accepted again: %v", err)
	}
}

func TestCheckFetchesATokenOnceAndReusesIt(t *testing.T) {
	s, fake := newSender(t)
	for range 3 {
		if err := s.Check(fakepush.Context(t, 10*time.Second)); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	if got := fake.TokenRequests(); got != 1 {
		t.Fatalf("token endpoint asked %d times, want 1 (the token is cached until it expires)", got)
	}
	if s.ProjectID() != fake.ProjectID {
		t.Errorf("ProjectID = %q, want %q", s.ProjectID(), fake.ProjectID)
	}
}

func TestNewRefusesBadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := map[string]string{
		"missing file":        dir + "/nope.json",
		"not json":            write("bad.json", "{"),
		"no project":          write("noproject.json", `{"type":"service_account"}`),
		"not service account": write("user.json", `{"type":"authorized_user","project_id":"p","client_id":"c","client_secret":"s","refresh_token":"r"}`),
	}
	for name, path := range cases {
		if _, err := New(context.Background(), Config{CredentialsFile: path}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Errorf("New without a file succeeded")
	}
	fake := fakefcm.Start(t)
	if _, err := New(context.Background(), Config{CredentialsFile: fake.WriteCredentials(dir), Endpoint: "fcm.googleapis.com"}); err == nil {
		t.Errorf("New with an endpoint that is not a URL succeeded")
	}
}

// TestSendsReuseConnections proves the pool keeps connections for the next burst: 1,024 sends from 32
// goroutines over HTTP/1.1 open about 32 connections, not hundreds.
func TestSendsReuseConnections(t *testing.T) {
	fake := fakefcm.StartWith(t, fakefcm.Options{Plain: true})
	s := senderFor(t, fake)
	const workers, each = 32, 32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{
					Token: "tok-" + string(rune('A'+w)), Kind: providers.KindRing, Data: map[string]string{"i": string(rune('a' + i%26))}})
				if res.Verdict != providers.Sent {
					t.Errorf("Send = %+v", res)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := fake.Count(); got != workers*each {
		t.Fatalf("delivered %d, want %d", got, workers*each)
	}
	if got := fake.TokenRequests(); got != 1 {
		t.Errorf("%d OAuth token requests for one burst, want 1: the token is shared and cached", got)
	}
	// A burst can dial a few more than it has goroutines (a dial finishing after a connection freed up), and
	// the token fetch has its own; a pool that keeps two idle connections per host opens hundreds.
	if got := fake.Connections(); got > 2*workers {
		t.Errorf("%d connections for %d sends from %d goroutines: connections are not reused", got, workers*each, workers)
	}
}

func TestMessageJSONMatchesTheHTTPv1Shape(t *testing.T) {
	m, err := message(providers.Push{Token: "t", Kind: providers.KindRing, Data: map[string]string{"type": "call.ring"},
		Expires: time.Unix(1030, 500_000_000), CollapseID: "c"}, time.Unix(1000, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"data":{"type":"call.ring"},"android":{"ttl":"30.500000000s","collapse_key":"c","priority":"high"},"token":"t"}`
	if string(b) != want {
		t.Errorf("message JSON\n got %s\nwant %s", b, want)
	}
}

// BenchmarkSend measures Send against the fake over loopback HTTP/2 with many goroutines, as the worker
// calls it.
func BenchmarkSend(b *testing.B) {
	s := senderFor(b, fakefcm.Start(b))
	push := providers.Push{Token: "bench", Kind: providers.KindRing, Data: data("call.ring"), Expires: time.Now().Add(time.Hour)}
	fakepush.BenchSend(b, s, push)
}
