// Package fcm sends pushes through Firebase Cloud Messaging's HTTP v1 API and maps every answer to a
// providers.Verdict.
//
// The message model is firebase.google.com/go/v4/messaging's Message, but the request is encoded and posted
// here (wire.go), not by the SDK's client: its reflection-driven marshalling and request wrapping were a large
// share of the worker's CPU per push, and its retries escaped the worker's backoff. The SDK's own marshalling
// stays the oracle for the wire shape in the tests.
//
// What a caller must know:
//   - Send makes exactly one attempt: a network error, a 503 or a 429 comes back at once as Retry, with the
//     provider's Retry-After when it sent one, for the worker's backoff to govern. Bound Send with a context
//     deadline (a ring's end); a context that ends returns Retry. Without a deadline, sendBackstop bounds it.
//   - OAuth tokens come from the credentials file's token_uri and are cached until shortly before they expire.
//     A failing token endpoint is asked again at most once a second; in between, Send answers Retry at once.
package fcm

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/httptransport"
	"firebase.google.com/go/v4/messaging"

	"github.com/ringer-dev/ringer/providers"
)

// Scope is the OAuth2 scope FCM HTTP v1 documents for sending messages.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// tokenFailureHold is how long a failed OAuth token fetch is remembered: thousands of sends a second must not
// queue behind the token endpoint one by one while the credentials are broken.
const tokenFailureHold = time.Second

// defaultEndpoint is the FCM HTTP v1 base URL the SDK uses when given none.
const defaultEndpoint = "https://fcm.googleapis.com/v1"

// sendBackstop bounds a send whose context has no deadline.
const sendBackstop = 30 * time.Second

// Config says where FCM is and who we are.
type Config struct {
	// CredentialsFile is a Firebase service-account JSON (FCM_CREDENTIALS_FILE). Its project_id names the
	// project messages go to; its token_uri is where OAuth tokens come from.
	// Empty uses Application Default Credentials (see New).
	CredentialsFile string
	// Endpoint is the FCM HTTP v1 base URL (FCM_ENDPOINT); empty means https://fcm.googleapis.com/v1.
	// Messages go to {Endpoint}/projects/{project_id}/messages:send.
	Endpoint string
	// RootCAs, when set, are the only CAs trusted for the endpoint and the token_uri; nil means the system
	// roots (which honour SSL_CERT_FILE, read once per process).
	RootCAs *x509.CertPool
}

// Sender delivers pushes to FCM tokens. It is safe for concurrent use; make one per process.
type Sender struct {
	projectID string
	// sess is the authenticated client and its OAuth tokens, rebuilt when FCM stops accepting its token.
	sess  atomic.Pointer[session]
	build func(ctx context.Context) (*session, error)
	// bufs holds *payload buffers for request bodies and answers, so a push's JSON is not a fresh allocation.
	bufs sync.Pool

	renewMu   sync.Mutex
	renewedAt time.Time
	// refused is set while FCM answers 401 to our access token, until a push is accepted again.
	refused atomic.Bool
}

// session is one set of credentials with its cached access token, and the client that uses them.
type session struct {
	// rt is the OAuth-authenticated client's transport: a send is one round trip, which http.Client would
	// wrap in redirect bookkeeping FCM never needs.
	rt     http.RoundTripper
	url    string      // {endpoint}/projects/{project}/messages:send
	header http.Header // every send's, cloned for each
	tokens *tokenGate
}

// New reads the credentials and builds the client. It does not contact Google: Check does. Without a
// CredentialsFile it uses Application Default Credentials, as the Firebase SDK does when given no option
// (firebase.NewApp → transport.Creds → credentials.DetectDefault): GOOGLE_APPLICATION_CREDENTIALS, gcloud's
// well-known file, or the metadata server; the project is the credentials' own, else GOOGLE_CLOUD_PROJECT or
// GCLOUD_PROJECT, the SDK's order (getProjectID in firebase.go).
func New(ctx context.Context, cfg Config) (*Sender, error) {
	if cfg.Endpoint != "" {
		// A bare host, the form the SDK once took to merge into Google's URL, would make no URL to post to.
		if u, err := url.Parse(cfg.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("fcm: endpoint %q: want a base URL such as https://fcm.googleapis.com/v1", cfg.Endpoint)
		}
	}
	base := newTransport(cfg.RootCAs)
	opts := &credentials.DetectOptions{
		Scopes: []string{Scope},
		Client: &http.Client{Transport: base, Timeout: 10 * time.Second},
	}
	source := "application default credentials"
	var projectID string
	var detect func() (*auth.Credentials, error)
	if cfg.CredentialsFile != "" {
		source = cfg.CredentialsFile
		raw, err := os.ReadFile(cfg.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("fcm: read credentials: %w", err)
		}
		var sa struct {
			ProjectID string `json:"project_id"`
		}
		if err := json.Unmarshal(raw, &sa); err != nil {
			return nil, fmt.Errorf("fcm: parse credentials %s: %w", cfg.CredentialsFile, err)
		}
		if sa.ProjectID == "" {
			return nil, fmt.Errorf("fcm: credentials %s have no project_id", cfg.CredentialsFile)
		}
		projectID = sa.ProjectID
		// The credentials are built here rather than through option.WithCredentialsFile (deprecated, and it
		// hides both the connection pool and the token source): we need our own pool for >12k sends/s, and the
		// token source for Check and for telling a credentials failure from a network one.
		detect = func() (*auth.Credentials, error) {
			return credentials.NewCredentialsFromJSON(credentials.ServiceAccount, raw, opts)
		}
	} else {
		detect = func() (*auth.Credentials, error) { return credentials.DetectDefault(opts) }
		creds, err := detect()
		if err != nil {
			return nil, fmt.Errorf("fcm: %s: %w", source, err)
		}
		if projectID, err = creds.ProjectID(ctx); err != nil {
			return nil, fmt.Errorf("fcm: %s: project id: %w", source, err)
		}
		projectID = or(projectID, os.Getenv("GOOGLE_CLOUD_PROJECT"), os.Getenv("GCLOUD_PROJECT"))
		if projectID == "" {
			return nil, fmt.Errorf("fcm: %s name no project: set GOOGLE_CLOUD_PROJECT", source)
		}
	}

	endpoint := strings.TrimRight(or(cfg.Endpoint, defaultEndpoint), "/")
	sendURL := endpoint + "/projects/" + url.PathEscape(projectID) + "/messages:send"
	client := "fire-admin-go/" + sdkVersion
	sender := &Sender{projectID: projectID}
	sender.build = func(ctx context.Context) (*session, error) {
		creds, err := detect()
		if err != nil {
			return nil, fmt.Errorf("fcm: load credentials %s: %w", source, err)
		}
		return newSession(creds, sendURL, client, base)
	}
	sess, err := sender.build(ctx)
	if err != nil {
		return nil, err
	}
	sender.sess.Store(sess)
	return sender, nil
}

func or(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// newSession builds the token cache and the authenticated client of creds on the shared pool base.
func newSession(creds *auth.Credentials, url, client string, base http.RoundTripper) (*session, error) {
	hc, err := httptransport.NewClient(&httptransport.Options{
		Credentials:      creds,
		BaseRoundTripper: base,
		DisableTelemetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("fcm: http client: %w", err)
	}
	header := http.Header{
		"Content-Type": {"application/json"},
		// Version 2 is the error format with details: FcmError codes and field violations.
		"X-Goog-Api-Format-Version": {"2"},
		"X-Firebase-Client":         {client},
	}
	return &session{rt: hc.Transport, url: url, header: header, tokens: &tokenGate{tp: creds, hold: tokenFailureHold}}, nil
}

// sdkVersion is the firebase.google.com/go/v4 in go.mod, which X-Firebase-Client names as the SDK did. A constant,
// not firebase.Version, so the binary need not link the SDK's app package and every service it imports;
// TestSDKVersionIsTheOneBuiltIn keeps the two in step.
const sdkVersion = "4.19.0"

// ProjectID is the Firebase project messages go to.
func (s *Sender) ProjectID() string { return s.projectID }

// Check proves the credentials work by getting an OAuth token from the token endpoint. A token still valid
// from an earlier fetch counts, unless FCM has since refused it and no push has been accepted after.
func (s *Sender) Check(ctx context.Context) error {
	if s.refused.Load() {
		return fmt.Errorf("fcm: project %s refuses our access token (401) and no push has been accepted since", s.projectID)
	}
	if _, err := s.sess.Load().tokens.Token(ctx); err != nil {
		return fmt.Errorf("fcm: oauth token for project %s: %w", s.projectID, err)
	}
	return nil
}

// Send delivers one push and says what its answer means.
func (s *Sender) Send(ctx context.Context, p providers.Push) providers.Result {
	msg, err := message(p, time.Now())
	if err != nil {
		return verdict(err)
	}
	sess := s.sess.Load()
	// Getting the token first lets a credentials failure answer at once, named as such.
	if _, err := sess.tokens.Token(ctx); err != nil {
		return verdict(&tokenError{err: err})
	}
	name, err := s.post(ctx, sess, msg)
	if err != nil {
		if ae := (*answerError)(nil); errors.As(err, &ae) && ae.unauthenticated() {
			s.refused.Store(true)
			s.renew(ctx, sess)
		}
		return verdict(err)
	}
	s.refused.Store(false)
	return providers.Result{Verdict: providers.Sent, ID: name}
}

// renew replaces a session whose access token FCM refused, so the next push fetches a new token instead of
// using the refused one until it expires (an hour). At most once per tokenFailureHold.
func (s *Sender) renew(ctx context.Context, refused *session) {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	if s.sess.Load() != refused || time.Since(s.renewedAt) < tokenFailureHold {
		return
	}
	s.renewedAt = time.Now()
	if next, err := s.build(context.WithoutCancel(ctx)); err == nil {
		s.sess.Store(next)
	}
}

func message(p providers.Push, now time.Time) (*messaging.Message, error) {
	if p.Token == "" {
		return nil, &pushError{msg: "push has no token"}
	}
	android := &messaging.AndroidConfig{CollapseKey: p.CollapseID}
	if !p.Expires.IsZero() {
		// Truncated so the push never outlives the ring, and the wire shows milliseconds, not nanoseconds.
		ttl := max(p.Expires.Sub(now).Truncate(time.Millisecond), 0)
		android.TTL = &ttl
	}
	m := &messaging.Message{Token: p.Token, Data: p.Data, Android: android}
	switch p.Kind {
	case providers.KindRing, providers.KindStop:
		// Data-only at high priority: the app wakes and shows (or stops) its own call screen at once.
		android.Priority = "high"
	case providers.KindAlert:
		m.Notification = &messaging.Notification{Title: p.Title, Body: p.Body}
	default:
		return nil, &pushError{msg: fmt.Sprintf("unknown push kind %d", p.Kind)}
	}
	return m, nil
}

// pushError is a push this package cannot shape: a caller's bug, not FCM's answer.
type pushError struct{ msg string }

func (e *pushError) Error() string { return "fcm: " + e.msg }

// tokenError is a failure to get an OAuth token from the credentials' token_uri.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "fcm: oauth token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// tokenGate remembers a failed token fetch for tokenFailureHold, so a broken token endpoint is asked about
// once a second rather than once per push. Successful tokens are cached by the provider beneath.
type tokenGate struct {
	tp   auth.TokenProvider
	hold time.Duration

	mu       sync.Mutex
	failedAt time.Time
	failure  error
}

func (g *tokenGate) Token(ctx context.Context) (*auth.Token, error) {
	g.mu.Lock()
	if g.failure != nil && time.Since(g.failedAt) < g.hold {
		err := g.failure
		g.mu.Unlock()
		return nil, err
	}
	g.mu.Unlock()

	tok, err := g.tp.Token(ctx)
	switch {
	case err == nil:
		g.mu.Lock()
		g.failure = nil
		g.mu.Unlock()
	case ctx.Err() == nil:
		// Only the endpoint's own failures are held: a caller whose context ended says nothing about it.
		g.mu.Lock()
		g.failure, g.failedAt = err, time.Now()
		g.mu.Unlock()
	}
	return tok, err
}
