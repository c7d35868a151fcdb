package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/wire"
)

func TestGetOrCreateAnswers201ThenWith200(t *testing.T) {
	e := newEnv(t)
	alice := userToken(t, "alice")
	body := `{"ring":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob","role":"user","custom":{"k":1}}],"custom":{"topic":"standup"}}}`
	w := e.do("POST", "/v1/call/default/abc", alice, body)
	if w.Code != http.StatusCreated {
		t.Fatalf("first: status = %d; %s", w.Code, w.Body)
	}
	var got map[string]any
	decodeInto(t, w, &got)
	if got["created"] != true || got["call"] == nil || got["members"] == nil {
		t.Errorf("first answer %s", w.Body)
	}
	call := got["call"].(map[string]any)
	session := call["session"].(map[string]any)
	for _, k := range []string{"accepted_by", "rejected_by", "missed_by"} {
		if _, ok := session[k].(map[string]any); !ok {
			t.Errorf("session.%s = %v, want an object", k, session[k])
		}
	}
	if _, ok := session["participants"].([]any); !ok {
		t.Errorf("session.participants = %v, want a list", session["participants"])
	}

	w = e.do("POST", "/v1/call/default/abc", alice, body)
	if w.Code != http.StatusOK {
		t.Fatalf("second: status = %d; %s", w.Code, w.Body)
	}
	decodeInto(t, w, &got)
	if got["created"] != false {
		t.Errorf("second answer %s", w.Body)
	}
}

func TestEmptyBodyIsAnEmptyObject(t *testing.T) {
	e := newEnv(t)
	alice := userToken(t, "alice")
	if w := e.do("POST", "/v1/call/default/abc", alice, ""); w.Code != http.StatusCreated {
		t.Fatalf("status = %d; %s", w.Code, w.Body)
	}
	for _, p := range []string{"accept", "join", "leave", "mark_ended", "ring", "reject", "members"} {
		if w := e.do("POST", "/v1/call/default/abc/"+p, alice, ""); w.Code != http.StatusOK {
			t.Errorf("%s: status = %d; %s", p, w.Code, w.Body)
		}
	}
}

func TestTransitionsAnswerTheCall(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	bob := userToken(t, "bob")
	for _, p := range []string{"accept", "reject", "join", "leave", "mark_ended", "ring", "members"} {
		w := e.do("POST", "/v1/call/default/abc/"+p, bob, `{}`)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status = %d; %s", p, w.Code, w.Body)
		}
		var got callResponse
		decodeInto(t, w, &got)
		if got.Call.CID != "default:abc" || len(got.Members) != 2 || got.Members[0].Custom == nil {
			t.Errorf("%s answered %s", p, w.Body)
		}
	}
	w := e.do("GET", "/v1/call/default/abc", bob, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"cid":"default:abc"`) {
		t.Errorf("get: %d %s", w.Code, w.Body)
	}
}

func TestMembersAndRingReachCallsAsDecoded(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	alice := userToken(t, "alice")
	e.do("POST", "/v1/call/default/abc/members", alice, `{"update_members":[{"user_id":"carol","role":"admin","custom":{"x":"y"}}],"remove_members":["bob"]}`)
	method, _, args := e.calls.lastCall()
	update := args[2].([]calls.MemberInput)
	remove := args[3].([]string)
	if method != "UpdateMembers" || len(update) != 1 || update[0].UserID != "carol" || update[0].Role != "admin" || update[0].Custom["x"] != "y" ||
		len(remove) != 1 || remove[0] != "bob" {
		t.Errorf("%s%v", method, args)
	}
	e.do("POST", "/v1/call/default/abc/ring", alice, `{"members_ids":["bob"]}`)
	if method, _, args := e.calls.lastCall(); method != "Ring" || len(args[2].([]string)) != 1 {
		t.Errorf("%s%v", method, args)
	}
}

func TestListCalls(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	w := e.do("GET", "/v1/calls?calling_state=ringing", userToken(t, "alice"), "")
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d; %s", w.Code, w.Body)
	}
	var got struct {
		Calls []map[string]any `json:"calls"`
	}
	decodeInto(t, w, &got)
	if len(got.Calls) != 1 || got.Calls[0]["created_by_me"] != true || got.Calls[0]["calling_state"] == nil {
		t.Errorf("answer %s", w.Body)
	}
	if _, _, args := e.calls.lastCall(); args[0] != "ringing" {
		t.Errorf("filter %v, want ringing", args)
	}
	// No calls is an empty list, not null.
	e2 := newEnv(t)
	if w := e2.do("GET", "/v1/calls", userToken(t, "alice"), ""); strings.TrimSpace(w.Body.String()) != `{"calls":[]}` {
		t.Errorf("empty list answered %s", w.Body)
	}
}

func TestDevices(t *testing.T) {
	e := newEnv(t)
	alice := userToken(t, "alice")
	if w := e.do("GET", "/v1/devices", alice, ""); strings.TrimSpace(w.Body.String()) != `{"devices":[]}` {
		t.Errorf("empty list answered %d %s", w.Code, w.Body)
	}
	w := e.do("POST", "/v1/devices", alice, `{"id":"fcm-token:1","push_provider":"firebase","push_provider_name":"prod"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	var d devices.Device
	decodeInto(t, w, &d)
	if d.ID != "fcm-token:1" || d.UserID != "alice" || d.PushProvider != "firebase" || d.PushProviderName != "prod" || d.CreatedAt.IsZero() {
		t.Errorf("answered %+v", d)
	}
	// The same token again, from another user: 200, and it moves.
	if w := e.do("POST", "/v1/devices", userToken(t, "bob"), `{"id":"fcm-token:1","push_provider":"firebase"}`); w.Code != http.StatusOK {
		t.Fatalf("register again: %d %s", w.Code, w.Body)
	}
	w = e.do("GET", "/v1/devices", userToken(t, "bob"), "")
	var list struct {
		Devices []devices.Device `json:"devices"`
	}
	decodeInto(t, w, &list)
	if len(list.Devices) != 1 || list.Devices[0].UserID != "bob" {
		t.Errorf("bob's devices: %s", w.Body)
	}
	wantError(t, e.do("DELETE", "/v1/devices?id=fcm-token:1", alice, ""), 404, wire.CodeNotFound, "")
	w = e.do("DELETE", "/v1/devices?id=fcm-token%3A1", userToken(t, "bob"), "")
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{}` {
		t.Errorf("delete: %d %s", w.Code, w.Body)
	}
}

func TestOperationsEndpoints(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("dashboard " + r.URL.Path)) })
	e := newEnv(t, func(c *Config) { c.Dashboard = dash })

	if w := e.do("GET", "/healthz", "", ""); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	if w := e.do("GET", "/readyz", "", ""); w.Code != 200 {
		t.Errorf("readyz %d", w.Code)
	}
	// The answer names the part at fault, never its address; the log has the whole reason.
	e.ready = &NotReady{Part: "redis unreachable", Err: errors.New("dial tcp 10.1.2.3:6379: connection refused")}
	b := wantError(t, e.do("GET", "/readyz", "", ""), http.StatusServiceUnavailable, wire.CodeNotReady, "")
	if b.Message != "redis unreachable" {
		t.Errorf("readyz message %q, want the part alone", b.Message)
	}
	if !strings.Contains(e.logs.String(), "10.1.2.3:6379") {
		t.Errorf("the log does not have the whole reason: %s", e.logs.String())
	}
	e.ready = errors.New("dial tcp 10.1.2.3:6379: connection refused")
	if b := wantError(t, e.do("GET", "/readyz", "", ""), http.StatusServiceUnavailable, wire.CodeNotReady, ""); strings.Contains(b.Message, "10.1.2.3") {
		t.Errorf("readyz message %q shows an internal address", b.Message)
	}
	e.ready = nil
	if w := e.do("GET", "/healthz", "", ""); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	if w := e.do("GET", "/metrics", "", ""); w.Code != 200 || w.Body.String() != "# metrics\n" {
		t.Errorf("metrics %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/asynq/queues", "", ""); w.Body.String() != "dashboard /asynq/queues" {
		t.Errorf("dashboard %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/asynq", "", ""); w.Code != http.StatusMovedPermanently {
		t.Errorf("/asynq %d", w.Code)
	}

	off := newEnv(t)
	wantError(t, off.do("GET", "/asynq/", "", ""), 404, wire.CodeNotFound, "")
}

func TestReadyzTimesOut(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.RequestTimeout = 20 * time.Millisecond
		c.Ready = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	})
	wantError(t, e.do("GET", "/readyz", "", ""), http.StatusServiceUnavailable, wire.CodeNotReady, "")
}

func TestUnknownRoutesAndMethodsAnswerTheErrorBody(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.do("GET", "/v2/nothing", "", ""), 404, wire.CodeNotFound, "")
	w := e.do("PUT", "/v1/call/default/abc", userToken(t, "alice"), "")
	wantError(t, w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "")
	if allow := w.Header().Values("Allow"); strings.Join(allow, ",") != "GET,POST,PATCH" {
		t.Errorf("Allow = %v", allow)
	}
	wantError(t, e.do("GET", "/v1/call/default/abc/accept", "", ""), http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "")
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	for _, c := range []Config{
		{Calls: newMemCalls(), Devices: newMemDevices(), Events: newMemCalls()},
		{Secret: testSecret, Devices: newMemDevices(), Events: newMemCalls()},
		{Secret: testSecret, Calls: newMemCalls(), Events: newMemCalls()},
		{Secret: testSecret, Calls: newMemCalls(), Devices: newMemDevices()},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

func TestRequestMetricsAreCountedByRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.Registerer = reg })
	e.do("GET", "/v1/calls", userToken(t, "alice"), "")
	e.do("BREW", "/v1/calls", userToken(t, "alice"), "")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, mf := range mfs {
		if mf.GetName() != "ringer_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l []string
			for _, p := range m.GetLabel() {
				l = append(l, p.GetName()+"="+p.GetValue())
			}
			labels = append(labels, strings.Join(l, ","))
		}
	}
	got := strings.Join(labels, " ")
	if !strings.Contains(got, "method=GET,route=GET /v1/calls,status=200") || !strings.Contains(got, "method=other") {
		t.Errorf("metrics labels: %s", got)
	}
}

func TestRequestLogHasNoSecrets(t *testing.T) {
	e := newEnv(t)
	tok := userToken(t, "alice")
	e.do("GET", "/v1/calls?user_id=alice", tok, "")
	logs := e.logs.String()
	if !strings.Contains(logs, "status=200") || !strings.Contains(logs, "path=/v1/calls") || !strings.Contains(logs, "ms=") {
		t.Errorf("request log lacks fields:\n%s", logs)
	}
	if strings.Contains(logs, tok) || strings.Contains(logs, "user_id=alice") {
		t.Errorf("request log has the token or query:\n%s", logs)
	}
}

// sse reads one Server-Sent Events stream.
type sse struct {
	t *testing.T
	r *bufio.Reader
}

// next returns the next frame: its lines up to the blank line that ends it.
func (s *sse) next() []string {
	s.t.Helper()
	var lines []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read stream after %q: %v", lines, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return lines
		}
		lines = append(lines, line)
	}
}

func openEvents(t *testing.T, e *env, target, tok string) (*sse, *http.Response, context.CancelFunc) {
	t.Helper()
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+target, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return &sse{t: t, r: bufio.NewReader(resp.Body)}, resp, cancel
}

func TestEventsArriveFramed(t *testing.T) {
	e := newEnv(t)
	s, resp, cancel := openEvents(t, e, "/v1/events", userToken(t, "bob"))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if f := s.next(); len(f) != 1 || !strings.HasPrefix(f[0], ":") {
		t.Fatalf("first frame %q, want a comment", f)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.calls.publish("bob", calls.Event{Type: queue.EventRing, CallCID: "default:abc",
		Call: calls.Call{CID: "default:abc", Custom: map[string]any{"note": "line1\nline2"}}, User: calls.UserRef{ID: "alice"}, CreatedAt: at})
	f := s.next()
	if len(f) != 2 || f[0] != "event: call.ring" || !strings.HasPrefix(f[1], "data: {") {
		t.Fatalf("frame %q", f)
	}
	if !strings.Contains(f[1], `"type":"call.ring"`) || !strings.Contains(f[1], `"call_cid":"default:abc"`) ||
		!strings.Contains(f[1], `"user":{"id":"alice"}`) || !strings.Contains(f[1], `"created_at":"2026-01-02T03:04:05Z"`) {
		t.Errorf("data %s", f[1])
	}
	e.calls.publish("bob", calls.Event{Type: queue.EventEnded, CallCID: "default:abc"})
	if f := s.next(); f[0] != "event: call.ended" {
		t.Errorf("frame %q", f)
	}

	// The client going away ends the subscription.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for e.calls.subscribers("bob") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("subscription outlived its client")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEventsHeartbeat(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Heartbeat = 10 * time.Millisecond; c.RequestTimeout = 5 * time.Millisecond })
	s, _, _ := openEvents(t, e, "/v1/events?user_id=bob", serverToken(t))
	s.next() // connected
	for range 3 {
		if f := s.next(); len(f) != 1 || f[0] != ": heartbeat" {
			t.Fatalf("frame %q, want a heartbeat comment", f)
		}
	}
	// The stream outlived the request timeout, and the server token subscribed for bob.
	if _, a, _ := e.calls.lastCall(); a.UserID != "bob" {
		t.Errorf("subscribed %q", a.UserID)
	}
}

func TestEventsEndWhenTheStoreClosesTheSubscription(t *testing.T) {
	e := newEnv(t)
	closed := make(chan calls.Event)
	close(closed)
	e.calls.err = nil
	h, err := New(Config{Secret: testSecret, Calls: e.calls, Events: closingCalls{e.calls, closed}, Devices: e.devices})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/events", nil)
	r.Header.Set("Authorization", "Bearer "+userToken(t, "bob"))
	h.ServeHTTP(w, r) // returns: the stream ended
	if w.Code != 200 || w.Body.String() != ": connected\n\n" {
		t.Errorf("%d %q", w.Code, w.Body)
	}
}

type closingCalls struct {
	*memCalls
	ch chan calls.Event
}

func (c closingCalls) Subscribe(context.Context, string) (<-chan calls.Event, error) {
	return c.ch, nil
}

func TestEventsSubscribeFailureIsTheErrorBody(t *testing.T) {
	e := newEnv(t)
	e.calls.err = errors.New("dial tcp: connection refused")
	wantError(t, e.do("GET", "/v1/events", userToken(t, "bob"), ""), 500, wire.CodeInternal, "")
}
