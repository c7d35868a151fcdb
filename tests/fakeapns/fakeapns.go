// Package fakeapns is an Apple Push Notification service for tests and benchmarks: HTTP/2 over TLS on
// 127.0.0.1, provider tokens (ES256 JWT) checked against the .p8 keys it wrote, every delivered push recorded,
// and Apple's real error answers when a test scripts them for a device token.
//
// It is safe for concurrent use and does no per-request logging, so a benchmark can push thousands of
// notifications a second through it.
package fakeapns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/tests/fakepush"
)

// Apple's payload limits: 4 KB for a regular push, 5 KB for VoIP.
const (
	maxPayload     = 4096
	maxVoIPPayload = 5120
)

// providerTokenLifetime is how long APNs accepts a provider token after its iat.
const providerTokenLifetime = time.Hour

// Notification is one push the fake accepted for delivery.
type Notification struct {
	Token string
	// PushType, Topic, CollapseID and APNsID are the apns-push-type, apns-topic, apns-collapse-id and apns-id
	// headers as sent (APNsID is empty when the client let APNs pick one).
	PushType, Topic, CollapseID, APNsID string
	// Priority is apns-priority; 0 when the header was absent (APNs then uses 10).
	Priority int
	// Expiration is apns-expiration; zero when the header was absent.
	Expiration time.Time
	// Payload is the JSON body, parsed.
	Payload map[string]any
	// Raw is the body as sent.
	Raw []byte
	// ID is the apns-id the fake answered.
	ID string
	// At is when the fake accepted it.
	At time.Time
}

// Aps is the payload's aps dictionary (nil when absent).
func (n Notification) Aps() map[string]any {
	aps, _ := n.Payload["aps"].(map[string]any)
	return aps
}

// Data is the payload's top-level string fields beside aps (API.md's push fields).
func (n Notification) Data() map[string]string {
	out := map[string]string{}
	for k, v := range n.Payload {
		if s, ok := v.(string); ok && k != "aps" {
			out[k] = s
		}
	}
	return out
}

// Type is the push's type field (API.md: "call.ring", "call.missed"...).
func (n Notification) Type() string { return n.Data()["type"] }

// Answer is one scripted reply to a push to a token. The zero Answer is success.
type Answer struct {
	// Status is the HTTP status; 0 means 200 and a delivered push.
	Status int
	// Reason is the error body's reason ("BadDeviceToken").
	Reason string
	// Timestamp, with 410, is when the token stopped being valid (sent in milliseconds).
	Timestamp time.Time
	// Timing is Delay, Hang or Drop.
	fakepush.Timing
}

// Apple's real errors, as "Handling notification responses from APNs" lists them.

// Error is any status and reason, for those without a helper below.
func Error(status int, reason string) Answer { return Answer{Status: status, Reason: reason} }

// Unregistered is 410 Unregistered: the token is no longer active for the topic since at.
func Unregistered(at time.Time) Answer {
	return Answer{Status: 410, Reason: "Unregistered", Timestamp: at}
}

// ExpiredToken is 410 ExpiredToken: the token has expired.
func ExpiredToken(at time.Time) Answer {
	return Answer{Status: 410, Reason: "ExpiredToken", Timestamp: at}
}

// BadDeviceToken is 400 BadDeviceToken.
func BadDeviceToken() Answer { return Answer{Status: 400, Reason: "BadDeviceToken"} }

// DeviceTokenNotForTopic is 400 DeviceTokenNotForTopic.
func DeviceTokenNotForTopic() Answer { return Answer{Status: 400, Reason: "DeviceTokenNotForTopic"} }

// PayloadTooLarge is 413 PayloadTooLarge.
func PayloadTooLarge() Answer { return Answer{Status: 413, Reason: "PayloadTooLarge"} }

// TooManyRequests is 429 TooManyRequests: too many pushes to the same device token.
func TooManyRequests() Answer { return Answer{Status: 429, Reason: "TooManyRequests"} }

// InternalServerError is 500 InternalServerError.
func InternalServerError() Answer { return Answer{Status: 500, Reason: "InternalServerError"} }

// ServiceUnavailable is 503 ServiceUnavailable.
func ServiceUnavailable() Answer { return Answer{Status: 503, Reason: "ServiceUnavailable"} }

// InvalidProviderToken is 403 InvalidProviderToken.
func InvalidProviderToken() Answer { return Answer{Status: 403, Reason: "InvalidProviderToken"} }

// ExpiredProviderToken is 403 ExpiredProviderToken.
func ExpiredProviderToken() Answer { return Answer{Status: 403, Reason: "ExpiredProviderToken"} }

// Hang never answers; the client sees its own context end.
func Hang() Answer { return Answer{Timing: fakepush.Timing{Hang: true}} }

// Delay answers success after d.
func Delay(d time.Duration) Answer { return Answer{Timing: fakepush.Timing{Delay: d}} }

// Drop resets the stream without answering.
func Drop() Answer { return Answer{Timing: fakepush.Timing{Drop: true}} }

// Server is a running fake APNs. Its fields are fixed once Start returns.
type Server struct {
	// URL is https://127.0.0.1:PORT: what APNS_ENDPOINT (apns.Config.Endpoint) should be.
	URL string
	// TeamID is the team every key WriteKey makes belongs to.
	TeamID string

	// The Recorder holds the delivered pushes and the scripted answers: Script, SetLatency, Attempts (a
	// scripted or authentication failure counts there and not in Notifications), Count, WaitFor and
	// Connections are its.
	*fakepush.Recorder[Notification, Answer]

	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	keys     map[string]*ecdsa.PublicKey // by key id
	verified map[string]time.Time        // bearer → its iat, so each token's signature is checked once
	nextID   uint64
}

// Start runs a fake APNs on 127.0.0.1 until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		Recorder: fakepush.New[Notification, Answer]("fakeapns", "pushes"),
		TeamID:   randomID(),
		t:        t,
		keys:     map[string]*ecdsa.PublicKey{},
		verified: map[string]time.Time{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/3/device/{token}", s.handleDevice)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { apnsError(w, "", Error(404, "BadPath")) })
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			// Go's TLS server lets a client that offers only http/1.1 fall back to it; APNs does not.
			panic(http.ErrAbortHandler)
		}
		mux.ServeHTTP(w, r)
	}))
	// HTTP/2 only, as APNs: httptest offers just "h2" over ALPN when EnableHTTP2 is set.
	s.srv.EnableHTTP2 = true
	s.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1000} // what APNs grants an authenticated connection
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.CountConnections(s.srv.Config)
	s.srv.StartTLS()
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.Release() // releases hanging handlers, so Close does not wait for their clients
		s.srv.Close()
	})
	return s
}

// CertPool trusts this server's certificate: pass it as apns.Config.RootCAs.
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	return pool
}

// WriteCAFile writes the server's certificate as PEM into dir and returns its path, for SSL_CERT_FILE in a
// child process (Go reads SSL_CERT_FILE once per process, at its first TLS handshake).
func (s *Server) WriteCAFile(dir string) string {
	s.t.Helper()
	path := filepath.Join(dir, "fakeapns-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		s.t.Fatalf("fakeapns: write CA: %v", err)
	}
	return path
}

// WriteKey generates an ES256 auth key, writes it into dir as AuthKey_<keyID>.p8 the way Apple hands it out,
// and trusts it from now on. It returns APNS_KEY_FILE, APNS_KEY_ID and APNS_TEAM_ID.
func (s *Server) WriteKey(dir string) (path, keyID, teamID string) {
	s.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatalf("fakeapns: generate key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		s.t.Fatalf("fakeapns: marshal key: %v", err)
	}
	keyID = randomID()
	path = filepath.Join(dir, "AuthKey_"+keyID+".p8")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		s.t.Fatalf("fakeapns: write key: %v", err)
	}
	s.mu.Lock()
	s.keys[keyID] = &key.PublicKey
	s.mu.Unlock()
	return path, keyID, s.TeamID
}

// Notifications is every delivered push, in the order accepted.
func (s *Server) Notifications() []Notification { return s.All() }

// NotificationsTo is every push delivered to token, in order.
func (s *Server) NotificationsTo(token string) []Notification { return s.To(token) }

var (
	uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	hexPattern  = regexp.MustCompile(`^[0-9a-fA-F]+$`)
)

// handleDevice is POST /3/device/{token}. Checks run in the order Apple's answers suggest: method, token,
// provider token, headers, payload; a scripted answer comes after them, so a malformed request is never
// hidden behind a script.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	s.Attempt(tok)
	latency := s.Latency()

	id := r.Header.Get("apns-id")
	if id != "" && !uuidPattern.MatchString(id) {
		apnsError(w, "", Error(400, "BadMessageId"))
		return
	}
	if id == "" {
		id = s.newID()
	}
	if bad := s.check(r, tok); bad.Status != 0 {
		apnsError(w, id, bad)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxVoIPPayload+1))
	if err != nil {
		return // the client went away
	}
	pushType := r.Header.Get("apns-push-type")
	if pushType == "" {
		pushType = "alert" // APNs' default
	}
	n := Notification{
		Token: tok, PushType: pushType, Topic: r.Header.Get("apns-topic"), CollapseID: r.Header.Get("apns-collapse-id"),
		APNsID: r.Header.Get("apns-id"), Raw: body, ID: id,
	}
	n.Priority, _ = strconv.Atoi(r.Header.Get("apns-priority")) // check validated it
	if e := r.Header.Get("apns-expiration"); e != "" {
		secs, _ := strconv.ParseInt(e, 10, 64)
		n.Expiration = time.Unix(secs, 0)
	}
	limit := maxPayload
	if pushType == "voip" {
		limit = maxVoIPPayload
	}
	switch {
	case len(body) == 0:
		apnsError(w, id, Error(400, "PayloadEmpty"))
		return
	case len(body) > limit:
		apnsError(w, id, PayloadTooLarge())
		return
	case json.Unmarshal(body, &n.Payload) != nil || n.Payload == nil:
		// Apple documents no reason for a body that is not a JSON dictionary; this one is the fake's own.
		apnsError(w, id, Error(400, "BadPayload"))
		return
	}

	scripted := s.Next(tok)
	if !s.Hold(r.Context(), latency, scripted.Timing) {
		return
	}
	if scripted.Status != 0 && scripted.Status != http.StatusOK {
		apnsError(w, id, scripted)
		return
	}

	n.At = time.Now()
	s.Record(tok, func(int) Notification { return n })
	w.Header().Set("apns-id", id)
	w.WriteHeader(http.StatusOK)
}

// check refuses what APNs refuses before looking at the payload; the zero Answer lets the request through.
func (s *Server) check(r *http.Request, tok string) Answer {
	if r.Method != http.MethodPost {
		return Error(405, "MethodNotAllowed")
	}
	if tok == "" {
		return Error(400, "MissingDeviceToken")
	}
	if bad := s.checkProviderToken(r.Header.Get("authorization")); bad.Status != 0 {
		return bad
	}
	if !hexPattern.MatchString(tok) || strings.Trim(tok, "0") == "" {
		// An all-zero token is well formed but no device's: APNs refuses it, and readiness probes use it.
		return BadDeviceToken()
	}
	for _, h := range []string{"apns-topic", "apns-push-type", "apns-priority", "apns-expiration", "apns-collapse-id", "apns-id"} {
		if len(r.Header.Values(h)) > 1 {
			return Error(400, "DuplicateHeaders")
		}
	}
	topic := r.Header.Get("apns-topic")
	if topic == "" {
		return Error(400, "MissingTopic") // required with token auth
	}
	pushType := r.Header.Get("apns-push-type")
	switch pushType {
	case "", "alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk", "widgets":
	default:
		return Error(400, "InvalidPushType")
	}
	if (pushType == "voip") != strings.HasSuffix(topic, ".voip") {
		// A VoIP push goes to the app's ".voip" topic and nothing else does; real APNs then finds the token
		// does not belong to the topic.
		return DeviceTokenNotForTopic()
	}
	switch p := r.Header.Get("apns-priority"); p {
	case "", "1", "5", "10":
		if pushType == "background" && p == "10" {
			return Error(400, "BadPriority") // Apple: background pushes must use priority 5
		}
	default:
		return Error(400, "BadPriority")
	}
	if e := r.Header.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			return Error(400, "BadExpirationDate")
		}
	}
	if len(r.Header.Get("apns-collapse-id")) > 64 {
		return Error(400, "BadCollapseId")
	}
	return Answer{}
}

// checkProviderToken verifies "bearer <JWT>": ES256, signed by a key WriteKey made (kid), iss our team, iat
// within the last hour.
func (s *Server) checkProviderToken(header string) Answer {
	bearer, ok := strings.CutPrefix(header, "bearer ")
	if !ok || bearer == "" {
		return Error(403, "MissingProviderToken")
	}
	s.mu.Lock()
	iat, seen := s.verified[bearer]
	s.mu.Unlock()
	if !seen {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(bearer, claims, func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			s.mu.Lock()
			key := s.keys[kid]
			s.mu.Unlock()
			if key == nil {
				return nil, fmt.Errorf("unknown key id %q", kid)
			}
			return key, nil
		}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(s.TeamID))
		if err != nil {
			return InvalidProviderToken()
		}
		at, err := claims.GetIssuedAt()
		if err != nil || at == nil {
			return InvalidProviderToken()
		}
		iat = at.Time
		s.mu.Lock()
		s.verified[bearer] = iat
		s.mu.Unlock()
	}
	if time.Since(iat) > providerTokenLifetime {
		return ExpiredProviderToken()
	}
	return Answer{}
}

// apnsError writes APNs' error answer: {"reason":"BadDeviceToken"}, and for 410 {"reason":..,"timestamp":ms}.
func apnsError(w http.ResponseWriter, id string, a Answer) {
	body := map[string]any{"reason": a.Reason}
	if a.Status == 410 {
		at := a.Timestamp
		if at.IsZero() {
			at = time.Now()
		}
		body["timestamp"] = at.UnixMilli()
	}
	b, _ := json.Marshal(body) // a map of a string and an int always encodes
	if id != "" {
		w.Header().Set("apns-id", id)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(a.Status)
	_, _ = w.Write(b)
}

func (s *Server) newID() string {
	s.mu.Lock()
	s.nextID++
	n := s.nextID
	s.mu.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012X", n)
}

// randomID is a ten-character id in the form Apple gives key and team ids.
func randomID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return strings.ToUpper(hex.EncodeToString(b))
}
