package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/wire"
)

// memCalls is an in-memory Calls for handler tests: it keeps calls by cid, records what each method was
// asked, and can be told to fail. It knows none of the rules of the ring (those are calls' tests).
type memCalls struct {
	mu    sync.Mutex
	calls map[string]calls.State
	// err, when set, is what every method but Subscribe returns.
	err error
	// panicWith, when set, makes every method panic with it.
	panicWith any
	// last records the latest method called, its actor and its arguments.
	last struct {
		method string
		actor  calls.Actor
		args   []any
	}
	subs map[string][]chan calls.Event
}

func newMemCalls() *memCalls {
	return &memCalls{calls: map[string]calls.State{}, subs: map[string][]chan calls.Event{}}
}

func (m *memCalls) record(method string, a calls.Actor, args ...any) error {
	if m.panicWith != nil {
		panic(m.panicWith)
	}
	m.last.method, m.last.actor, m.last.args = method, a, args
	return m.err
}

func (m *memCalls) lastCall() (string, calls.Actor, []any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last.method, m.last.actor, m.last.args
}

func (m *memCalls) put(typ, id, creator string, members ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := calls.State{Call: calls.Call{CID: typ + ":" + id, Type: typ, ID: id, CreatedBy: calls.UserRef{ID: creator}}}
	for _, u := range members {
		st.Members = append(st.Members, calls.Member{UserID: u, Role: "user"})
	}
	m.calls[st.Call.CID] = st
}

func (m *memCalls) GetOrCreate(_ context.Context, a calls.Actor, typ, id string, req calls.CreateRequest) (calls.State, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("GetOrCreate", a, typ, id, req); err != nil {
		return calls.State{}, false, err
	}
	cid := typ + ":" + id
	if st, ok := m.calls[cid]; ok {
		return st, false, nil
	}
	if a.UserID == "" {
		// As calls.Store: the backend naming nobody only gets a call that exists.
		return calls.State{}, false, &calls.FieldError{Field: "data.created_by_id", Message: "is required with a server token to create a call"}
	}
	st := calls.State{Call: calls.Call{CID: cid, Type: typ, ID: id, CreatedBy: calls.UserRef{ID: a.UserID}, Custom: req.Custom, Ringing: req.Ring}}
	if !slices.ContainsFunc(req.Members, func(mi calls.MemberInput) bool { return mi.UserID == a.UserID }) {
		st.Members = append(st.Members, calls.Member{UserID: a.UserID, Role: "admin"})
	}
	for _, mi := range req.Members {
		st.Members = append(st.Members, calls.Member{UserID: mi.UserID, Role: mi.Role, Custom: mi.Custom})
	}
	m.calls[cid] = st
	return st, true, nil
}

func (m *memCalls) get(method string, a calls.Actor, typ, id string, args ...any) (calls.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record(method, a, append([]any{typ, id}, args...)...); err != nil {
		return calls.State{}, err
	}
	st, ok := m.calls[typ+":"+id]
	if !ok {
		return calls.State{}, calls.ErrNotFound
	}
	return st, nil
}

func (m *memCalls) Get(_ context.Context, a calls.Actor, typ, id string, ring, notify bool) (calls.State, error) {
	return m.get("Get", a, typ, id, ring, notify)
}

func (m *memCalls) UpdateMembers(_ context.Context, a calls.Actor, typ, id string, update []calls.MemberInput, remove []string) (calls.State, error) {
	return m.get("UpdateMembers", a, typ, id, update, remove)
}

func (m *memCalls) Ring(_ context.Context, a calls.Actor, typ, id string, memberIDs []string) (calls.State, error) {
	return m.get("Ring", a, typ, id, memberIDs)
}

func (m *memCalls) Accept(_ context.Context, a calls.Actor, typ, id string) (calls.State, error) {
	return m.get("Accept", a, typ, id)
}

func (m *memCalls) Ringing(_ context.Context, a calls.Actor, typ, id string) (calls.State, error) {
	return m.get("Ringing", a, typ, id)
}

func (m *memCalls) Reject(_ context.Context, a calls.Actor, typ, id, reason string) (calls.State, error) {
	return m.get("Reject", a, typ, id, reason)
}

func (m *memCalls) Join(_ context.Context, a calls.Actor, typ, id string) (calls.State, error) {
	return m.get("Join", a, typ, id)
}

func (m *memCalls) Leave(_ context.Context, a calls.Actor, typ, id string) (calls.State, error) {
	return m.get("Leave", a, typ, id)
}

func (m *memCalls) MarkEnded(_ context.Context, a calls.Actor, typ, id string) (calls.State, error) {
	return m.get("MarkEnded", a, typ, id)
}

func (m *memCalls) Update(_ context.Context, a calls.Actor, typ, id string, req calls.UpdateRequest) (calls.State, error) {
	return m.get("Update", a, typ, id, req)
}

func (m *memCalls) List(_ context.Context, a calls.Actor, callingState string) ([]calls.ListItem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("List", a, callingState); err != nil {
		return nil, err
	}
	var out []calls.ListItem
	for _, st := range m.calls {
		out = append(out, calls.ListItem{Call: st.Call, Members: st.Members, CallingState: wire.StateIdle, CreatedByMe: st.Call.CreatedBy.ID == a.UserID})
	}
	return out, nil
}

// Subscribe hands out a channel that publish feeds and that closes when ctx ends, as the real store's does.
func (m *memCalls) Subscribe(ctx context.Context, userID string) (<-chan calls.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("Subscribe", calls.Actor{UserID: userID}); err != nil {
		return nil, err
	}
	ch := make(chan calls.Event, 16)
	m.subs[userID] = append(m.subs[userID], ch)
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.subs[userID] = slices.DeleteFunc(m.subs[userID], func(c chan calls.Event) bool { return c == ch })
		close(ch)
	}()
	return ch, nil
}

func (m *memCalls) publish(userID string, ev calls.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.subs[userID] {
		ch <- ev
	}
}

func (m *memCalls) subscribers(userID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs[userID])
}

// memDevices is an in-memory Devices: token -> device.
type memDevices struct {
	mu      sync.Mutex
	byToken map[string]devices.Device
	prefs   map[string]devices.Preferences
	err     error
}

func newMemDevices() *memDevices { return &memDevices{byToken: map[string]devices.Device{}} }

func (d *memDevices) Register(_ context.Context, dev devices.Device) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return false, d.err
	}
	_, had := d.byToken[dev.ID]
	dev.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d.byToken[dev.ID] = dev
	return !had, nil
}

func (d *memDevices) Get(_ context.Context, userID, token string) (devices.Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev, ok := d.byToken[token]
	if !ok || dev.UserID != userID {
		return devices.Device{}, devices.ErrNotFound
	}
	return dev, nil
}

func (d *memDevices) List(_ context.Context, userID string) ([]devices.Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	var out []devices.Device
	for _, dev := range d.byToken {
		if dev.UserID == userID {
			out = append(out, dev)
		}
	}
	return out, nil
}

func (d *memDevices) Delete(_ context.Context, userID, token string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev, ok := d.byToken[token]
	if !ok || dev.UserID != userID {
		return devices.ErrNotFound
	}
	delete(d.byToken, token)
	return nil
}

func (d *memDevices) SetPreferences(_ context.Context, p devices.Preferences) (devices.Preferences, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.prefs == nil {
		d.prefs = map[string]devices.Preferences{}
	}
	d.prefs[p.UserID] = p
	return p, nil
}

func (d *memDevices) GetPreferences(_ context.Context, userID string) (devices.Preferences, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.prefs[userID]; ok {
		return p, nil
	}
	return devices.Preferences{CallLevel: devices.CallLevelAll, UserID: userID}, nil
}

var testSecret = []byte("test secret, not a real one")

// env is one API under test with its fakes.
type env struct {
	t       testing.TB
	calls   *memCalls
	devices *memDevices
	h       http.Handler
	ready   error
	logs    *strings.Builder
}

func newEnv(t testing.TB, opts ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, calls: newMemCalls(), devices: newMemDevices(), logs: &strings.Builder{}}
	var logMu sync.Mutex
	cfg := Config{
		Secret:  testSecret,
		Calls:   e.calls,
		Devices: e.devices,
		Events:  e.calls,
		Ready:   func(context.Context) error { return e.ready },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "# metrics\n") }),
		Logger:  slog.New(slog.NewTextHandler(lockedWriter{&logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.h = h
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func mint(t testing.TB, c TokenClaims, ttl time.Duration) string {
	t.Helper()
	tok, err := MintToken(testSecret, c, ttl)
	if err != nil {
		t.Fatalf("MintToken: %v", err)
	}
	return tok
}

func userToken(t testing.TB, user string) string {
	return mint(t, TokenClaims{UserID: user, Name: strings.ToUpper(user), Role: RoleUser, Teams: []string{"blue"}}, time.Hour)
}

func serverToken(t testing.TB) string { return mint(t, TokenClaims{Server: true}, 0) }

// do sends one request with a bearer token (none when tok is "") and a JSON body (none when body is "").
func (e *env) do(method, target, tok, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// wantError checks an answer is the error body with status and code, and that its message starts with
// field (a JSON path, "" to skip).
func wantError(t testing.TB, w *httptest.ResponseRecorder, status int, code, field string) wire.ErrorBody {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var b wire.ErrorBody
	dec := json.NewDecoder(strings.NewReader(w.Body.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	if b.Status != status || b.Code != code {
		t.Errorf("body = %+v, want status %d code %q", b, status, code)
	}
	if b.Message == "" {
		t.Errorf("body %+v has no message", b)
	}
	if field != "" && !strings.HasPrefix(b.Message, field+": ") {
		t.Errorf("message %q does not name field %q", b.Message, field)
	}
	return b
}

func decodeInto(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", w.Body, err)
	}
}
