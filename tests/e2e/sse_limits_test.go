package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/tests/harness"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// rawStream is one GET /v1/events read as bytes, to see when and how the server ends it.
type rawStream struct {
	status int
	header http.Header
	body   strings.Builder // written by the reader; read only once done is closed
	done   chan struct{}   // closed when the server ends the stream
	cancel context.CancelFunc
}

// openRaw opens GET /v1/events with token and reads it to its end in the background; a stream that answers
// 200 is returned once it has said it is connected.
func openRaw(t *testing.T, e *harness.Env, token string) *rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open events: %v", err)
	}
	s := &rawStream{status: res.StatusCode, header: res.Header, done: make(chan struct{}), cancel: cancel}
	first := make(chan string, 1)
	go func() {
		defer close(s.done)
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		for n := 0; ; n++ {
			line, err := br.ReadString('\n')
			s.body.WriteString(line)
			if n == 0 {
				first <- line
			}
			if err != nil {
				return
			}
		}
	}()
	if s.status == http.StatusOK {
		select {
		case line := <-first:
			if line != ": connected\n" {
				t.Fatalf("first line %q, want the connected comment", line)
			}
		case <-time.After(eventsWait):
			t.Fatalf("stream not connected within %s", eventsWait)
		}
	}
	return s
}

// endedWithin reports whether the server ended the stream within d, and what it sent.
func (s *rawStream) endedWithin(d time.Duration) (string, bool) {
	select {
	case <-s.done:
		return s.body.String(), true
	case <-time.After(d):
		return "", false
	}
}

func redisClients(t *testing.T, e *harness.Env) int {
	t.Helper()
	return testredis.Clients(t, e.RDB, "connected_clients")
}

func TestTwoHundredEventStreamsOfOneUserShareOneRedisSubscription(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_SSE_PER_USER=1000"}})
	bob := e.Token("bob")
	first := e.Events(bob, "")
	before := redisClients(t, e)
	streams := []*harness.Events{first}
	for range 199 {
		streams = append(streams, e.Events(bob, ""))
	}
	after := redisClients(t, e)
	subs := e.RDB.PubSubNumSub(e.Context(), calls.EventChannel("bob")).Val()[calls.EventChannel("bob")]
	t.Logf("200 streams of bob: %d Redis subscribers of his channel; connected_clients %d with one stream, %d with 200", subs, before, after)
	if subs != 1 {
		t.Errorf("bob's channel has %d Redis subscribers for 200 streams, want 1", subs)
	}
	// The worker's pools may grow a little meanwhile; a connection per stream would be 199 more.
	if after-before > 20 {
		t.Errorf("connected_clients went from %d to %d opening 199 more streams", before, after)
	}
	if open := harness.Scrape(t, e.URL).Get("ringer_sse_streams"); open != 200 {
		t.Errorf("ringer_sse_streams = %v, want 200", open)
	}

	e.MustCall(201, "POST", "/v1/call/default/shared", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	for i, s := range streams {
		if _, ok := s.Until("call.ring", eventsWait); !ok {
			t.Fatalf("stream %d of 200 got no call.ring", i)
		}
	}
}

func TestTheSixthEventStreamOfAUserClosesTheOldest(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	bob := e.Token("bob")
	oldest := openRaw(t, e, bob)
	var rest []*harness.Events
	for range 4 {
		rest = append(rest, e.Events(bob, ""))
	}
	if _, ended := oldest.endedWithin(200 * time.Millisecond); ended {
		t.Fatal("the first stream ended while bob had five")
	}
	rest = append(rest, e.Events(bob, ""))
	if _, ended := oldest.endedWithin(eventsWait); !ended {
		t.Fatalf("bob's oldest stream still open after his sixth opened")
	}
	e.MustCall(201, "POST", "/v1/call/default/six", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	for i, s := range rest {
		if _, ok := s.Until("call.ring", eventsWait); !ok {
			t.Errorf("stream %d of bob's five newest got no call.ring", i+2)
		}
	}
	e.Eventually(eventsWait, "ringer_sse_streams is 5", func() bool {
		return harness.Scrape(t, e.URL).Get("ringer_sse_streams") == 5
	})
	if n := harness.Scrape(t, e.URL).Get("ringer_sse_streams_closed_total", "reason", "replaced"); n != 1 {
		t.Errorf("ringer_sse_streams_closed_total{reason=replaced} = %v, want 1", n)
	}
}

func TestEventStreamsPastTheProcessBoundAre503WithRetryAfter(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_SSE_MAX=3"}})
	var held []*rawStream
	for _, u := range []string{"alice", "bob", "carol"} {
		held = append(held, openRaw(t, e, e.Token(u)))
	}
	refused := openRaw(t, e, e.Token("dave"))
	body, ended := refused.endedWithin(eventsWait)
	if refused.status != http.StatusServiceUnavailable || !ended {
		t.Fatalf("fourth stream: status %d, ended %v, want 503", refused.status, ended)
	}
	if ra, err := strconv.Atoi(refused.header.Get("Retry-After")); err != nil || ra <= 0 {
		t.Errorf("Retry-After %q, want seconds", refused.header.Get("Retry-After"))
	}
	var eb struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Status  int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Status != 503 || eb.Code != "unavailable" ||
		!strings.Contains(eb.Message, "RINGER_SSE_MAX") {
		t.Errorf("error body %q (%v), want status 503, code unavailable, naming RINGER_SSE_MAX", body, err)
	}
	if n := harness.Scrape(t, e.URL).Get("ringer_sse_streams_refused_total"); n != 1 {
		t.Errorf("ringer_sse_streams_refused_total = %v, want 1", n)
	}

	// Room again once one ends.
	held[0].cancel()
	e.Eventually(eventsWait, "a stream is taken once another ended", func() bool {
		s := openRaw(t, e, e.Token("dave"))
		s.cancel()
		return s.status == 200
	})
}

func TestAnEventStreamEndsWhenItsTokenExpires(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	tok, err := api.MintToken([]byte(e.Secret), api.TokenClaims{UserID: "bob"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		t.Fatal(err)
	}
	exp := claims.ExpiresAt.Time
	s := openRaw(t, e, tok)
	body, ended := s.endedWithin(time.Until(exp) + 5*time.Second)
	if !ended {
		t.Fatalf("the stream outlived its token's exp %s by 5s", exp.Format(time.RFC3339))
	}
	t.Logf("the stream ended %s after its token's exp", time.Since(exp))
	// exp has a resolution of a second; the server's clock is this machine's.
	if early := time.Until(exp); early > 100*time.Millisecond {
		t.Errorf("the stream ended %s before its token's exp", early)
	}
	if !strings.HasSuffix(body, ": token expired\n\n") {
		t.Errorf("the stream did not say why it ended: %q", body)
	}
}

func TestAUserTokenWithoutExpIs401AndAServerTokenWithoutExpIsAccepted(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	secret := []byte(e.Secret)
	user := authSign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"user_id": "alice"})
	r := e.Call("GET", "/v1/calls", user, nil)
	contractErr(t, "user token without exp", r, 401, "unauthorized", "exp")
	server := authSign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"server": true})
	e.MustCall(200, "GET", "/v1/calls?user_id=alice", server, nil)
}

func TestTokenCommandRefusesAUserTokenWithoutTTL(t *testing.T) {
	t.Parallel()
	env := []string{"RINGER_API_SECRET=a-secret-of-at-least-32-bytes-for-tokens"}
	res := configRun(t, env, "token", "--user", "alice", "--ttl", "0")
	if res.code == 0 || strings.TrimSpace(res.stdout) != "" || !strings.Contains(res.stderr, "ttl") {
		t.Errorf("ringer token --user alice --ttl 0: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = configRun(t, env, "token", "--user", "alice")
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(strings.TrimSpace(res.stdout), &claims); err != nil || claims.ExpiresAt == nil {
		t.Errorf("ringer token --user alice printed %q without exp (%v)", res.stdout, err)
	}
	res = configRun(t, env, "token", "--server", "--ttl", "0")
	if res.code != 0 {
		t.Errorf("ringer token --server --ttl 0: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestEventStreamLimitsAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{"RINGER_SSE_PER_USER=0", "RINGER_SSE_MAX=lots"} {
		res := configRun(t, append(configBase(), kv), "serve")
		name, _, _ := strings.Cut(kv, "=")
		if res.code == 0 || !strings.Contains(res.stderr, name) {
			t.Errorf("ringer serve with %s: exit %d, stderr %s", kv, res.code, harness.Tail(res.stderr, 5))
		}
	}
}
