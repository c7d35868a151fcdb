// Package web is the demo page of `ringer dev` (and of `ringer serve` with RINGER_DEMO=1): a newcomer opens it
// in two windows, plays one demo user in each, and sees a ring happen, both in the call cards (the callee's
// with a ringtone) and the list of calls (ringer.js follows GET /v1/calls and GET /v1/events as Stream's
// useCalls does), and in a device panel, the user's "phone", that shows every push the user's browser
// "device" receives.
//
// The browser device is an FCM device (push_provider "firebase", token "web-<random>"). The worker hands its
// pushes to the FCM log provider, as it would hand them to FCM, and the log provider passes them to a Hub that
// streams them to the page. So the device panel works only where FCM is not configured (the log provider is in
// use) and the worker runs in the same process as the page: `ringer dev`, or `ringer serve` without
// FCM_CREDENTIALS_FILE.
//
// The page gets its user token from GET /demo/token, which signs a token for any demo user without asking
// who is there. That is what a demo is for, and why Handler is mounted only by `ringer dev` or RINGER_DEMO=1.
package web

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/wire"
)

// static is the page: plain HTML, CSS and ES modules, served as they are (no build step).
//
//go:embed index.html style.css app.js ringer.js
var static embed.FS

// DefaultUsers are the demo users `ringer dev` prints tokens for.
var DefaultUsers = []string{"alice", "bob"}

// Defaults of Config's optional fields.
const (
	DefaultTokenTTL  = 24 * time.Hour
	DefaultHeartbeat = 15 * time.Second
)

// Config is what Handler needs. Secret is required.
type Config struct {
	// Secret signs the demo users' tokens: the API's RINGER_API_SECRET.
	Secret []byte
	// Users are who the page may play; nil is DefaultUsers.
	Users []string
	// Pushes streams the browser devices' pushes to the page; nil turns the device panel off, and
	// PushesOff then says why (the page shows it).
	Pushes    *Hub
	PushesOff string
	// TokenTTL is the life of a minted token; 0 is DefaultTokenTTL.
	TokenTTL time.Duration
	// Heartbeat is the interval of the push stream's keep-alive comment; 0 is DefaultHeartbeat.
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// pageConfig is GET /demo/config: what the page needs to know before it picks a user.
type pageConfig struct {
	Users        []string `json:"users"`
	Pushes       bool     `json:"pushes"`
	PushesOff    string   `json:"pushes_off,omitempty"`
	PushProvider string   `json:"push_provider"`
	TokenPrefix  string   `json:"device_token_prefix"`
}

type tokenAnswer struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	Token  string `json:"token"`
}

type handler struct {
	cfg Config
	mux *http.ServeMux
}

// Handler serves the page at GET / and its parts under /demo/:
//
//	GET /                      the page
//	GET /demo/{file}           app.js, ringer.js, style.css
//	GET /demo/config           {"users", "pushes", "pushes_off", "push_provider", "device_token_prefix"}
//	GET /demo/token?user=ID    {"user_id", "name", "token"}: a user token for a demo user
//	GET /demo/pushes?token=T   Server-Sent Events, one "push" event (id: seq) per push to browser device T
func Handler(cfg Config) (http.Handler, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("web: empty secret")
	}
	if cfg.Users == nil {
		cfg.Users = DefaultUsers
	}
	for _, u := range cfg.Users {
		if _, err := api.MintToken(cfg.Secret, api.TokenClaims{UserID: u}, time.Minute); err != nil {
			return nil, fmt.Errorf("web: demo user %q: %w", u, err)
		}
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Pushes == nil && cfg.PushesOff == "" {
		cfg.PushesOff = "This process delivers no pushes to the page."
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.file("index.html", "text/html; charset=utf-8"))
	h.mux.HandleFunc("GET /demo/app.js", h.file("app.js", "text/javascript; charset=utf-8"))
	h.mux.HandleFunc("GET /demo/ringer.js", h.file("ringer.js", "text/javascript; charset=utf-8"))
	h.mux.HandleFunc("GET /demo/style.css", h.file("style.css", "text/css; charset=utf-8"))
	h.mux.HandleFunc("GET /demo/config", h.config)
	h.mux.HandleFunc("GET /demo/token", h.token)
	h.mux.HandleFunc("GET /demo/pushes", h.pushes)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "No route for "+r.URL.Path+".")
	})
	return h.mux, nil
}

func (h *handler) file(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := static.ReadFile(name)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", "The page is missing "+name+".")
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", contentType)
		hd.Set("Cache-Control", "no-cache")
		hd.Set("X-Content-Type-Options", "nosniff")
		if name == "index.html" {
			hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		}
		w.Write(b)
	}
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	off := ""
	if h.cfg.Pushes == nil {
		off = h.cfg.PushesOff
	}
	writeJSON(w, http.StatusOK, pageConfig{
		Users: h.cfg.Users, Pushes: h.cfg.Pushes != nil, PushesOff: off,
		PushProvider: providers.Firebase, TokenPrefix: DeviceTokenPrefix,
	})
}

// token mints a user token for a demo user: the page plays that user.
func (h *handler) token(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if !slices.Contains(h.cfg.Users, user) {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidField,
			fmt.Sprintf("user: must be one of the demo users %s, not %q.", strings.Join(h.cfg.Users, ", "), user))
		return
	}
	name := DisplayName(user)
	tok, err := api.MintToken(h.cfg.Secret, api.TokenClaims{UserID: user, Name: name, Role: api.RoleUser}, h.cfg.TokenTTL)
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "demo token not minted", "user", user, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "The token could not be made.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenAnswer{UserID: user, Name: name, Token: tok})
}

// DisplayName is a demo user's name as pushes show it: "alice" is "Alice".
func DisplayName(user string) string {
	if user == "" {
		return ""
	}
	return strings.ToUpper(user[:1]) + user[1:]
}

// deviceToken is what a browser device's token looks like: the prefix and a random part.
var deviceToken = regexp.MustCompile(`^` + DeviceTokenPrefix + `[A-Za-z0-9_-]{8,64}$`)

// pushes streams the pushes of one browser device as Server-Sent Events:
//
//	id: 7
//	event: push
//	data: {"seq":7,"provider":"firebase","kind":"ring","type":"call.ring","data":{...},"received_at":"..."}
//
// A reconnecting EventSource sends Last-Event-ID and gets the pushes it missed that the hub still holds.
func (h *handler) pushes(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if !deviceToken.MatchString(token) {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidField, "token: must be a browser device token like "+DeviceTokenPrefix+"<8 to 64 letters or digits>.")
		return
	}
	if h.cfg.Pushes == nil {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, h.cfg.PushesOff)
		return
	}
	var after uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.ParseUint(v, 10, 64)
	}
	backlog, ch, cancel := h.cfg.Pushes.Subscribe(token, after)
	defer cancel()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout, if any
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": connected\n\n"); err != nil {
		return
	}
	for _, ev := range backlog {
		if writePush(w, ev) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(h.cfg.Heartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			_, err = io.WriteString(w, ": heartbeat\n\n")
		case ev := <-ch:
			err = writePush(w, ev)
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

func writePush(w io.Writer, ev PushEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: push\ndata: %s\n\n", ev.Seq, data)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, wire.ErrorBody{Code: code, Message: message, Status: status})
}
