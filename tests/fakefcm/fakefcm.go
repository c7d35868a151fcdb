// Package fakefcm is a Firebase Cloud Messaging HTTP v1 server for tests and benchmarks: it issues OAuth tokens
// to a service account it wrote (JWT-bearer grant, RS256), accepts messages:send as the real
// firebase.google.com/go/v4 client sends them (its tests drive it with that client), records every delivered
// message, and answers with FCM's real errors when a test scripts them for a token. It serves as FCM does, over
// TLS with HTTP/2 (StartWith serves HTTP/1.1 only, over TLS or plain http://), and counts the connections and
// each request's HTTP version.
//
// It is safe for concurrent use and does no per-request logging, so a benchmark can push thousands of
// messages a second through it.
package fakefcm

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/tests/fakepush"
)

// Scopes that let a token send messages (FCM HTTP v1 accepts either).
const (
	ScopeMessaging     = "https://www.googleapis.com/auth/firebase.messaging"
	ScopeCloudPlatform = "https://www.googleapis.com/auth/cloud-platform"
)

// maxBody bounds a request body; FCM's own limit on a message is 4 KB of payload, far below this.
const maxBody = 1 << 20

// Message is one message the fake accepted for delivery.
type Message struct {
	Token string
	// Data is the message's data map (API.md's push fields).
	Data map[string]string
	// Notification is nil for a data-only message.
	Notification *Notification
	// AndroidPriority is android.priority as sent: "high", "normal" or "".
	AndroidPriority string
	// TTL is android.ttl; HasTTL says whether it was sent at all (a TTL of 0 means "now or never").
	TTL    time.Duration
	HasTTL bool
	// CollapseKey is android.collapse_key.
	CollapseKey string
	// Name is the message name the fake answered ("projects/p/messages/N").
	Name string
	// body is the request's body, from which Raw reads the message.
	body []byte
	// Header is the request's headers as sent, Authorization left out.
	Header http.Header
	// At is when the fake accepted it.
	At time.Time
}

// Type is the message's type field (API.md: "call.ring", "call.missed"...).
func (m Message) Type() string { return m.Data["type"] }

// Raw is the "message" object exactly as sent.
func (m Message) Raw() json.RawMessage {
	var req struct {
		Message json.RawMessage `json:"message"`
	}
	_ = json.Unmarshal(m.body, &req) // the fake took the body, so it decodes
	return req.Message
}

// Notification is a message's notification block.
type Notification struct {
	Title, Body string
}

// Answer is one scripted reply to a send for a token. The zero Answer is success.
type Answer struct {
	// Status is the HTTP status; 0 means 200 and a delivered message.
	Status int
	// ErrorStatus is the google.rpc status in the error body ("NOT_FOUND"); empty derives it from Status.
	ErrorStatus string
	// ErrorCode adds an FcmError detail with this errorCode ("UNREGISTERED"); empty adds none.
	ErrorCode string
	// Message is the error body's message.
	Message string
	// FieldViolation adds a google.rpc.BadRequest detail naming this field ("message.token").
	FieldViolation string
	// RetryAfter is sent as the Retry-After header.
	RetryAfter string
	// Timing is Delay, Hang or Drop.
	fakepush.Timing
}

// The real errors FCM answers (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode), as FCM words them.

// Unregistered is 404 UNREGISTERED: the app was uninstalled or the token expired.
func Unregistered() Answer {
	return Answer{Status: 404, ErrorCode: "UNREGISTERED", Message: "Requested entity was not found."}
}

// SenderIDMismatch is 403 SENDER_ID_MISMATCH: the token belongs to another Firebase project.
func SenderIDMismatch() Answer {
	return Answer{Status: 403, ErrorCode: "SENDER_ID_MISMATCH", Message: "SenderId mismatch"}
}

// InvalidToken is 400 INVALID_ARGUMENT about the token, as FCM sends it: only the message says so.
func InvalidToken() Answer {
	return Answer{Status: 400, ErrorCode: "INVALID_ARGUMENT",
		Message: "The registration token is not a valid FCM registration token"}
}

// InvalidPayload is 400 INVALID_ARGUMENT about the payload, naming the offending field.
func InvalidPayload(field string) Answer {
	return Answer{Status: 400, ErrorCode: "INVALID_ARGUMENT", FieldViolation: field,
		Message: fmt.Sprintf("Invalid value at '%s'", field)}
}

// QuotaExceeded is 429 QUOTA_EXCEEDED with a Retry-After header (seconds or an HTTP date; empty for none).
func QuotaExceeded(retryAfter string) Answer {
	return Answer{Status: 429, ErrorCode: "QUOTA_EXCEEDED", RetryAfter: retryAfter,
		Message: "Quota exceeded for quota metric 'Send requests' of service 'fcm.googleapis.com'."}
}

// Unavailable is 503 UNAVAILABLE. The SDK retries a 503 by itself unless Retry-After exceeds two minutes.
func Unavailable(retryAfter string) Answer {
	return Answer{Status: 503, ErrorCode: "UNAVAILABLE", RetryAfter: retryAfter,
		Message: "The service is currently unavailable."}
}

// Internal is 500 INTERNAL.
func Internal() Answer {
	return Answer{Status: 500, ErrorCode: "INTERNAL", Message: "Internal error encountered."}
}

// ThirdPartyAuthError is 401 THIRD_PARTY_AUTH_ERROR: the APNs or web push credentials in the project are bad.
func ThirdPartyAuthError() Answer {
	return Answer{Status: 401, ErrorCode: "THIRD_PARTY_AUTH_ERROR", Message: "Auth error from APNS or Web Push Service"}
}

// Hang never answers; the client sees its own context end.
func Hang() Answer { return Answer{Timing: fakepush.Timing{Hang: true}} }

// Delay answers success after d.
func Delay(d time.Duration) Answer { return Answer{Timing: fakepush.Timing{Delay: d}} }

// Drop closes the connection without answering.
func Drop() Answer { return Answer{Timing: fakepush.Timing{Drop: true}} }

// Server is a running fake FCM. Its fields are fixed once Start returns.
type Server struct {
	// URL is the server's root, https://127.0.0.1:PORT (http:// when Options.Plain).
	URL string
	// Endpoint is what FCM_ENDPOINT (fcm.Config.Endpoint) should be: URL + "/v1".
	Endpoint string
	// TokenURL is the OAuth2 token endpoint written as token_uri into credentials.
	TokenURL string
	// ProjectID is the project every credentials file names and messages must be sent to.
	ProjectID string

	// The Recorder holds the delivered messages and the scripted answers: Script, SetLatency (of token and
	// send answers), Attempts (authenticated sends; a scripted failure counts there and not in Messages),
	// Count, WaitFor and Connections are its.
	*fakepush.Recorder[Message, Answer]

	t          testing.TB
	srv        *httptest.Server
	requestsH1 atomic.Int64
	requestsH2 atomic.Int64

	mu             sync.Mutex
	accounts       map[string]account // by client_email
	accessTokens   map[string]time.Time
	tokenFail      int
	tokenRequests  int
	nextCredential int
}

type account struct {
	keyID string
	key   *rsa.PublicKey
}

// Options say how a fake serves. The zero Options serve as FCM does: TLS, offering HTTP/2 and HTTP/1.1 over
// ALPN, with a bounded number of concurrent streams per connection.
type Options struct {
	// HTTP1 offers only HTTP/1.1 over TLS: an endpoint (an emulator, a proxy) a client must not need HTTP/2 for.
	HTTP1 bool
	// Plain serves plain http://, which is HTTP/1.1 only.
	Plain bool
}

// maxStreams bounds concurrent streams per HTTP/2 connection, as Google's front end does, so that a client
// with more pushes in flight than that opens another connection as it would against FCM.
const maxStreams = 100

// Start runs a fake FCM on 127.0.0.1 until the test ends, serving as FCM does: TLS and HTTP/2.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith runs a fake FCM on 127.0.0.1 that serves as o says, until the test ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{
		Recorder:     fakepush.New[Message, Answer]("fakefcm", "messages"),
		ProjectID:    "ringer-test",
		t:            t,
		accounts:     map[string]account{},
		accessTokens: map[string]time.Time{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", s.handleSend)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			s.requestsH2.Add(1)
		} else {
			s.requestsH1.Add(1)
		}
		mux.ServeHTTP(w, r)
	}))
	// Clients that hang up mid-request are part of the tests; their noise is not.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.CountConnections(s.srv.Config)
	switch {
	case o.Plain:
		s.srv.Start()
	case o.HTTP1:
		s.srv.StartTLS() // httptest offers only http/1.1 over ALPN unless EnableHTTP2 is set
	default:
		s.srv.EnableHTTP2 = true
		// Both, as Google's front end: a client that offers only http/1.1 still gets it.
		s.srv.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
		s.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: maxStreams}
		s.srv.StartTLS()
	}
	s.URL = s.srv.URL
	s.Endpoint = s.URL + "/v1"
	s.TokenURL = s.URL + "/token"
	t.Cleanup(func() {
		s.Release() // releases hanging handlers, so Close does not wait for their clients
		s.srv.Close()
	})
	return s
}

// CertPool trusts this server's certificate: pass it as fcm.Config.RootCAs. Every fake FCM and fake APNs
// serves httptest's one certificate, so the pool trusts them all.
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	if c := s.srv.Certificate(); c != nil {
		pool.AddCert(c)
	}
	return pool
}

// WriteCAFile writes the server's certificate as PEM into dir and returns its path, for SSL_CERT_FILE in a
// child process (Go reads SSL_CERT_FILE once per process, at its first TLS handshake). A Plain server has no
// certificate: the file is empty.
func (s *Server) WriteCAFile(dir string) string {
	s.t.Helper()
	path := filepath.Join(dir, "fakefcm-ca.pem")
	var b []byte
	if c := s.srv.Certificate(); c != nil {
		b = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		s.t.Fatalf("fakefcm: write CA: %v", err)
	}
	return path
}

// Client is an HTTP client that trusts the server and speaks what it offers (HTTP/2 when it does).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// RequestsOver is how many requests (token and send, whatever they were answered) arrived over HTTP of this
// major version: 2 for HTTP/2, 1 for HTTP/1.x.
func (s *Server) RequestsOver(protoMajor int) int {
	if protoMajor == 2 {
		return int(s.requestsH2.Load())
	}
	return int(s.requestsH1.Load())
}

// WriteCredentials writes a service-account JSON into dir with a freshly generated RSA key whose token_uri is
// this server, and returns its path (for FCM_CREDENTIALS_FILE).
func (s *Server) WriteCredentials(dir string) string {
	s.t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		s.t.Fatalf("fakefcm: generate key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		s.t.Fatalf("fakefcm: marshal key: %v", err)
	}
	s.mu.Lock()
	s.nextCredential++
	n := s.nextCredential
	s.mu.Unlock()
	email := fmt.Sprintf("ringer-test-%d@%s.iam.gserviceaccount.com", n, s.ProjectID)
	keyID := randomHex(20)
	sa := map[string]string{
		"type":                        "service_account",
		"project_id":                  s.ProjectID,
		"private_key_id":              keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                email,
		"client_id":                   fmt.Sprintf("10000000000000000000%d", n),
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   s.TokenURL,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	}
	b, err := json.MarshalIndent(sa, "", "  ")
	if err != nil {
		s.t.Fatalf("fakefcm: marshal credentials: %v", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("fcm-service-account-%d.json", n))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		s.t.Fatalf("fakefcm: write credentials: %v", err)
	}
	s.mu.Lock()
	s.accounts[email] = account{keyID: keyID, key: &key.PublicKey}
	s.mu.Unlock()
	return path
}

// FailTokenEndpoint makes the OAuth token endpoint answer status (401: bad client, 400: bad grant, 5xx: down)
// until it is called again with 0.
func (s *Server) FailTokenEndpoint(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFail = status
}

// RevokeAccessTokens forgets every access token issued so far: the next send with one gets 401 UNAUTHENTICATED.
func (s *Server) RevokeAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.accessTokens)
}

// TokenRequests is how many requests reached the OAuth token endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// Messages is every delivered message, in the order accepted. Scripted failures are not messages.
func (s *Server) Messages() []Message { return s.All() }

// MessagesTo is every message delivered to token, in order.
func (s *Server) MessagesTo(token string) []Message { return s.To(token) }

// handleToken is Google's OAuth2 token endpoint for the JWT-bearer grant (RFC 7523).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenRequests++
	fail := s.tokenFail
	s.mu.Unlock()
	if !s.Wait(r.Context(), s.Latency()) {
		return
	}
	if fail != 0 {
		code := "invalid_client" // Google's answer to a deleted service account or key
		if fail >= 500 {
			code = "internal_failure"
		}
		oauthError(w, fail, code, "token endpoint told to fail")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, 400, "invalid_request", err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, 400, "unsupported_grant_type", "Invalid grant_type: "+g)
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		iss, _ := claims["iss"].(string)
		s.mu.Lock()
		acct, ok := s.accounts[iss]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("unknown service account %q", iss)
		}
		if kid, _ := t.Header["kid"].(string); kid != "" && kid != acct.keyID {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return acct.key, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(s.TokenURL), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(time.Minute))
	if err != nil {
		oauthError(w, 400, "invalid_grant", "Invalid JWT Signature: "+err.Error())
		return
	}
	scope, _ := claims["scope"].(string)
	if !hasScope(scope, ScopeMessaging) && !hasScope(scope, ScopeCloudPlatform) {
		oauthError(w, 400, "invalid_scope", "scope does not allow sending FCM messages: "+scope)
		return
	}
	tok := "ya29.fake-" + randomHex(24)
	s.mu.Lock()
	s.accessTokens[tok] = time.Now().Add(time.Hour)
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

func hasScope(scopes, want string) bool {
	for _, s := range strings.Fields(scopes) {
		if s == want {
			return true
		}
	}
	return false
}

// sendRequest is the HTTP v1 body. Unknown fields are refused as FCM refuses them, so a typo in what the
// client sends fails the test instead of being silently ignored.
type sendRequest struct {
	ValidateOnly bool         `json:"validate_only"`
	Message      *wireMessage `json:"message"`
}

type wireMessage struct {
	Name         string            `json:"name"`
	Token        string            `json:"token"`
	Topic        string            `json:"topic"`
	Condition    string            `json:"condition"`
	Data         map[string]string `json:"data"`
	Notification *struct {
		Title string `json:"title"`
		Body  string `json:"body"`
		Image string `json:"image"`
	} `json:"notification"`
	Android *struct {
		CollapseKey           string            `json:"collapse_key"`
		Priority              string            `json:"priority"`
		TTL                   string            `json:"ttl"`
		RestrictedPackageName string            `json:"restricted_package_name"`
		Data                  map[string]string `json:"data"`
		Notification          json.RawMessage   `json:"notification"`
		FCMOptions            json.RawMessage   `json:"fcm_options"`
		DirectBootOK          bool              `json:"direct_boot_ok"`
	} `json:"android"`
	Webpush    json.RawMessage `json:"webpush"`
	APNS       json.RawMessage `json:"apns"`
	FCMOptions json.RawMessage `json:"fcm_options"`
}

var ttlPattern = regexp.MustCompile(`^\d+(\.\d{1,9})?s$`)

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.accessTokens[auth]
	s.mu.Unlock()
	latency := s.Latency()
	if !ok || !known || time.Now().After(exp) {
		fcmError(w, Answer{Status: 401, Message: "Request had invalid authentication credentials. Expected OAuth 2 " +
			"access token, login cookie or other valid authentication credential."})
		return
	}
	if p := r.PathValue("project"); p != s.ProjectID {
		fcmError(w, Answer{Status: 403, Message: fmt.Sprintf("Permission 'cloudmessaging.messages.create' denied "+
			"on resource '//cloudresourcemanager.googleapis.com/projects/%s' (or it may not exist).", p)})
		return
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return // the client went away
	}
	// One strict decode of the whole body: the fake shares the cores with ringer in the bench, where decoding
	// the message a second time, to keep it as sent, cost it more than the rest of a push. Raw reads it back
	// from the body when a test asks.
	var req sendRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fcmError(w, Answer{Status: 400, FieldViolation: "message", Message: "Invalid JSON payload received. " + err.Error()})
		return
	}
	m := req.Message
	if m == nil {
		fcmError(w, InvalidPayload("message"))
		return
	}

	s.Attempt(m.Token)
	scripted := s.Next(m.Token)
	if !s.Hold(r.Context(), latency, scripted.Timing) {
		return
	}
	if scripted.Status != 0 && scripted.Status != http.StatusOK {
		fcmError(w, scripted)
		return
	}

	if bad := validate(m); bad != (Answer{}) {
		fcmError(w, bad)
		return
	}
	if req.ValidateOnly {
		writeJSON(w, 200, map[string]string{"name": fmt.Sprintf("projects/%s/messages/fake_message_id", s.ProjectID)})
		return
	}

	r.Header.Del("Authorization") // the handler owns r.Header, and the fake's allocations count in BenchmarkSend
	msg := Message{Token: m.Token, Data: m.Data, body: body, Header: r.Header, At: time.Now()}
	if m.Notification != nil {
		msg.Notification = &Notification{Title: m.Notification.Title, Body: m.Notification.Body}
	}
	if a := m.Android; a != nil {
		msg.AndroidPriority, msg.CollapseKey = a.Priority, a.CollapseKey
		if a.TTL != "" {
			msg.TTL, _ = time.ParseDuration(a.TTL) // validate checked its form
			msg.HasTTL = true
		}
	}
	msg = s.Record(m.Token, func(seq int) Message {
		msg.Name = "projects/" + s.ProjectID + "/messages/" + strconv.Itoa(seq)
		return msg
	})
	writeJSON(w, 200, sendAnswer{Name: msg.Name})
}

// sendAnswer is FCM's answer to a message it took: a struct, which encoding/json writes faster than a map.
type sendAnswer struct {
	Name string `json:"name"`
}

// validate refuses what FCM refuses, with FCM's words; the zero Answer means the message is fine.
func validate(m *wireMessage) Answer {
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return Answer{Status: 400, ErrorCode: "INVALID_ARGUMENT", Message: "Recipient of the message is not set."}
	}
	if a := m.Android; a != nil {
		switch a.Priority {
		case "", "normal", "high":
		default:
			return Answer{Status: 400, FieldViolation: "message.android.priority",
				Message: fmt.Sprintf("Invalid value at 'message.android.priority' (TYPE_ENUM), %q", a.Priority)}
		}
		if a.TTL != "" {
			d, err := time.ParseDuration(a.TTL)
			if !ttlPattern.MatchString(a.TTL) || err != nil || d > 28*24*time.Hour {
				return Answer{Status: 400, FieldViolation: "message.android.ttl",
					Message: fmt.Sprintf("Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), %q", a.TTL)}
			}
		}
	}
	return Answer{}
}

// fcmError writes FCM's error JSON:
// {"error":{"code":404,"message":"...","status":"NOT_FOUND","details":[{"@type":"...FcmError","errorCode":"UNREGISTERED"}]}}
func fcmError(w http.ResponseWriter, a Answer) {
	status := a.ErrorStatus
	if status == "" {
		status = rpcStatus(a.Status)
	}
	details := []map[string]any{}
	if a.ErrorCode != "" {
		details = append(details, map[string]any{
			"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": a.ErrorCode})
	}
	if a.FieldViolation != "" {
		details = append(details, map[string]any{
			"@type":           "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []map[string]string{{"field": a.FieldViolation, "description": a.Message}},
		})
	}
	e := map[string]any{"code": a.Status, "message": a.Message, "status": status}
	if len(details) > 0 {
		e["details"] = details
	}
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	writeJSON(w, a.Status, map[string]any{"error": e})
}

// rpcStatus is the google.rpc code Google's front end pairs with an HTTP status.
func rpcStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 500:
		return "INTERNAL"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
