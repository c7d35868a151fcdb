// Package api is ringer's HTTP face (API.md): routes, JWT authentication, request decoding and validation,
// the error body, Server-Sent Events and the operations endpoints. Handlers are thin: they decode, call one
// method of Calls or Devices, and encode; the rules of the ring live in calls.
package api

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

// Calls is what the handlers need from the call store (calls.Store).
type Calls interface {
	GetOrCreate(ctx context.Context, a calls.Actor, typ, id string, req calls.CreateRequest) (st calls.State, created bool, err error)
	Get(ctx context.Context, a calls.Actor, typ, id string, ring, notify bool) (calls.State, error)
	UpdateMembers(ctx context.Context, a calls.Actor, typ, id string, update []calls.MemberInput, remove []string) (calls.State, error)
	Ring(ctx context.Context, a calls.Actor, typ, id string, memberIDs []string) (calls.State, error)
	Accept(ctx context.Context, a calls.Actor, typ, id string) (calls.State, error)
	Ringing(ctx context.Context, a calls.Actor, typ, id string) (calls.State, error)
	Reject(ctx context.Context, a calls.Actor, typ, id, reason string) (calls.State, error)
	Join(ctx context.Context, a calls.Actor, typ, id string) (calls.State, error)
	Leave(ctx context.Context, a calls.Actor, typ, id string) (calls.State, error)
	MarkEnded(ctx context.Context, a calls.Actor, typ, id string) (calls.State, error)
	Update(ctx context.Context, a calls.Actor, typ, id string, req calls.UpdateRequest) (calls.State, error)
	List(ctx context.Context, a calls.Actor, callingState string) ([]calls.ListItem, error)
}

// Events is what the event stream needs (calls.Hub).
type Events interface {
	// Subscribe streams the events of userID's calls; the channel is closed when ctx ends or the source
	// closes the stream on its own. calls.ErrTooManyStreams refuses a stream past the process' bound.
	Subscribe(ctx context.Context, userID string) (<-chan calls.Event, error)
}

// Replayer is what an event source that keeps each user's recent events also does (calls.Hub): it answers
// the user's events after an event id, for a client that reconnects with Last-Event-ID.
type Replayer interface {
	Replay(ctx context.Context, userID, after string) ([]calls.Event, error)
}

// Defaults of Config's optional durations.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultHeartbeat      = 15 * time.Second
)

// Config is what New needs. Secret, Calls, Devices and Events are required.
type Config struct {
	Secret  []byte
	Calls   Calls
	Devices Devices
	Events  Events
	// ProviderName, when set, says whether a device of push_provider typ may name name in push_provider_name:
	// nil when it may, else why not (400 naming the field). Nil accepts every name.
	ProviderName func(typ, name string) error
	// Ready answers /readyz: nil is ready. A nil Ready is always ready.
	Ready func(ctx context.Context) error
	// Metrics serves /metrics; nil serves Prometheus' default registry.
	Metrics http.Handler
	// Dashboard serves /asynq/ (already behind its own auth); nil turns it off.
	Dashboard http.Handler
	// Demo serves the demo page at exactly GET / and everything under /demo/ (`ringer dev`, RINGER_DEMO=1);
	// nil turns it off, and / is then an unknown route like any other.
	Demo http.Handler
	// Registerer, when set, gets the HTTP request metrics (ringer_http_requests_total, ..._duration_seconds).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// RequestTimeout bounds every request but the event stream; 0 is DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Heartbeat is the interval of the event stream's keep-alive comment; 0 is DefaultHeartbeat.
	Heartbeat time.Duration
}

// server holds the configured handlers' shared state; it is read-only once New returns.
type server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *httpMetrics
	tokens  *verifiedTokens
}

// New returns the HTTP handler of the whole API, operations endpoints included.
func New(cfg Config) (http.Handler, error) {
	switch {
	case len(cfg.Secret) == 0:
		return nil, errors.New("api: empty secret")
	case cfg.Calls == nil:
		return nil, errors.New("api: no calls store")
	case cfg.Devices == nil:
		return nil, errors.New("api: no device registry")
	case cfg.Events == nil:
		return nil, errors.New("api: no event source")
	}
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	s.routes()
	return s.handler(), nil
}

// Ops returns a handler of the operations endpoints alone (/healthz, /readyz, /metrics, /asynq/), answered as
// the API answers them, for a process that serves no API: a worker, the dashboard. Only Ready, Metrics,
// Dashboard, Registerer, Logger and RequestTimeout of cfg are used.
func Ops(cfg Config) (http.Handler, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	s.opsRoutes()
	s.mux.HandleFunc("/", s.notFound)
	return s.handler(), nil
}

// newServer fills cfg's defaults.
func newServer(cfg Config) (*server, error) {
	// Zero (or less) takes the default.
	cfg.RequestTimeout = cmp.Or(max(cfg.RequestTimeout, 0), DefaultRequestTimeout)
	cfg.Heartbeat = cmp.Or(max(cfg.Heartbeat, 0), DefaultHeartbeat)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Metrics == nil {
		cfg.Metrics = promhttp.Handler()
	}
	s := &server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), tokens: newVerifiedTokens(cfg.Secret, verifiedTokensMax)}
	if cfg.Registerer != nil {
		m, err := newHTTPMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	return s, nil
}

// handler wraps the routes. Outermost first: the log sees the status recover wrote, and recover guards
// everything inside.
func (s *server) handler() http.Handler { return s.logRequests(s.recoverPanics(s.mux)) }

// opsRoutes are the operations endpoints, no JWT.
func (s *server) opsRoutes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.timeout(s.readyz))
	m.Handle("GET /metrics", s.cfg.Metrics)
	if s.cfg.Dashboard != nil {
		m.Handle("/asynq/", s.cfg.Dashboard)
		m.Handle("/asynq", http.RedirectHandler("/asynq/", http.StatusMovedPermanently))
	}
}

func (s *server) routes() {
	m := s.mux
	s.opsRoutes()
	if s.cfg.Demo != nil {
		m.Handle("GET /{$}", s.cfg.Demo)
		m.Handle("/demo/", s.cfg.Demo)
	}

	// Devices.
	m.HandleFunc("POST /v1/devices", s.authed(s.registerDevice))
	m.HandleFunc("GET /v1/devices", s.authed(s.listDevices))
	m.HandleFunc("DELETE /v1/devices", s.authed(s.deleteDevice))
	m.HandleFunc("POST /v1/push_preferences", s.authed(s.setPreferences))
	m.HandleFunc("GET /v1/push_preferences", s.authed(s.getPreferences))

	// Calls.
	m.HandleFunc("POST /v1/call/{type}/{id}", s.authed(s.getOrCreateCall))
	m.HandleFunc("GET /v1/call/{type}/{id}", s.authed(s.getCall))
	m.HandleFunc("PATCH /v1/call/{type}/{id}", s.authed(s.updateCall))
	m.HandleFunc("POST /v1/call/{type}/{id}/members", s.authed(s.updateMembers))
	m.HandleFunc("POST /v1/call/{type}/{id}/ring", s.authed(s.ring))
	m.HandleFunc("POST /v1/call/{type}/{id}/accept", s.authed(s.transition("accept", Calls.Accept)))
	m.HandleFunc("POST /v1/call/{type}/{id}/ringing", s.authed(s.transition("ringing", Calls.Ringing)))
	m.HandleFunc("POST /v1/call/{type}/{id}/reject", s.authed(s.reject))
	m.HandleFunc("POST /v1/call/{type}/{id}/join", s.authed(s.transition("join", Calls.Join)))
	m.HandleFunc("POST /v1/call/{type}/{id}/leave", s.authed(s.transition("leave", Calls.Leave)))
	m.HandleFunc("POST /v1/call/{type}/{id}/mark_ended", s.authed(s.markEnded))
	m.HandleFunc("GET /v1/calls", s.authed(s.listCalls))

	// The event stream lives as long as its client: no request timeout.
	m.HandleFunc("GET /v1/events", s.authedStream(s.events))
	m.HandleFunc("GET /v1/openapi.yaml", s.openAPI)

	m.HandleFunc("/", s.notFound)
}

// notFound answers every path no route claims, in the error body. A path that some route serves under
// another method is 405 with Allow, as ServeMux itself would answer were "/" not registered.
func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch} {
		if method == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, method)
		}
	}
	if len(allow) > 0 {
		for _, m := range allow {
			w.Header().Add("Allow", m)
		}
		writeError(w, r, s.log, &apiError{Status: http.StatusMethodNotAllowed, Code: wire.CodeMethodNotAllowed,
			Message: r.Method + " is not allowed on " + r.URL.Path + "."})
		return
	}
	writeError(w, r, s.log, &apiError{Status: http.StatusNotFound, Code: wire.CodeNotFound, Message: "No route for " + r.URL.Path + "."})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// NotReady is an error of Config.Ready that names the part that is not ready in words anyone who asks may
// read ("redis unreachable"). Err holds the details (addresses, provider answers), which go to the log only.
type NotReady struct {
	Part string
	Err  error
}

func (e *NotReady) Error() string { return e.Part + ": " + e.Err.Error() }
func (e *NotReady) Unwrap() error { return e.Err }

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			// /readyz has no auth, so its answer names only the part at fault; the operator finds the
			// whole reason in the log.
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			msg := "not ready"
			var nr *NotReady
			if errors.As(err, &nr) {
				msg = nr.Part
			}
			writeJSON(w, http.StatusServiceUnavailable, wire.ErrorBody{Code: wire.CodeNotReady, Message: msg, Status: http.StatusServiceUnavailable})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// authedHandler is a handler that runs once the bearer is known.
type authedHandler func(w http.ResponseWriter, r *http.Request, tok TokenClaims) error

// authed checks the token, bounds the request in time and maps a returned error to its answer.
func (s *server) authed(h authedHandler) http.HandlerFunc {
	return s.timeout(s.authedStream(h))
}

// authedStream is authed without the time bound, for the event stream.
func (s *server) authedStream(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, err := bearer(r)
		var tok TokenClaims
		if err == nil {
			tok, err = s.tokens.check(raw, time.Now())
		}
		if err == nil {
			err = h(w, r, tok)
		}
		if err != nil {
			writeError(w, r, s.log, err)
		}
	}
}

// timeout bounds a request: the calls and devices stores give up when the context does, and the caller
// gets 503 rather than a hung connection.
func (s *server) timeout(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}
