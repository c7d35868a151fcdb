// Package fcm sends pushes through Firebase Cloud Messaging's HTTP v1 API with the real
// firebase.google.com/go/v4 messaging client, and maps every answer to a providers.Verdict.
//
// What a caller must know:
//   - The SDK itself retries network errors and 503 UNAVAILABLE up to four times (after 0 s, 1 s, 2 s, 4 s, or
//     the Retry-After it was given when that is longer and under 2 minutes) before Send returns. Bound Send with
//     a context deadline (a ring's end); a context that ends returns Retry.
//   - OAuth tokens come from the credentials file's token_uri and are cached until shortly before they expire.
//     A failing token endpoint is asked again at most once a second; in between, Send answers Retry at once.
package fcm

import (
	"context"
	"crypto/x509"
	"encoding/json"
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
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/ringer-dev/ringer/providers"
)

// Scope is the OAuth2 scope FCM HTTP v1 documents for sending messages.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// tokenFailureHold is how long a failed OAuth token fetch is remembered: thousands of sends a second must not
// queue behind the token endpoint one by one while the credentials are broken.
const tokenFailureHold = time.Second

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
	// sess is the messaging client and its OAuth tokens, rebuilt when FCM stops accepting its token.
	sess  atomic.Pointer[session]
	build func(ctx context.Context) (*session, error)

	renewMu   sync.Mutex
	renewedAt time.Time
	// refused is set while FCM answers 401 to our access token, until a push is accepted again.
	refused atomic.Bool
}

// session is one set of credentials with its cached access token, and the client that uses them.
type session struct {
	client *messaging.Client
	tokens *tokenGate
}

// New reads the credentials and builds the client. It does not contact Google: Check does. Without a
// CredentialsFile it uses Application Default Credentials, as the Firebase SDK does when given no option
// (firebase.NewApp → transport.Creds → credentials.DetectDefault): GOOGLE_APPLICATION_CREDENTIALS, gcloud's
// well-known file, or the metadata server; the project is the credentials' own, else GOOGLE_CLOUD_PROJECT or
// GCLOUD_PROJECT, the SDK's order (getProjectID in firebase.go).
func New(ctx context.Context, cfg Config) (*Sender, error) {
	if cfg.Endpoint != "" {
		// The SDK takes an endpoint without a scheme for a host to merge into Google's URL; ours is a base URL.
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

	endpoint := strings.TrimRight(cfg.Endpoint, "/")
	sender := &Sender{projectID: projectID}
	sender.build = func(ctx context.Context) (*session, error) {
		creds, err := detect()
		if err != nil {
			return nil, fmt.Errorf("fcm: load credentials %s: %w", source, err)
		}
		return newSession(ctx, creds, projectID, endpoint, base)
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

// newSession builds the token cache and the messaging client of creds on the shared pool base.
func newSession(ctx context.Context, creds *auth.Credentials, projectID, endpoint string, base http.RoundTripper) (*session, error) {
	hc, err := httptransport.NewClient(&httptransport.Options{
		Credentials:      creds,
		BaseRoundTripper: sdkRetryGuard{next: base},
		DisableTelemetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("fcm: http client: %w", err)
	}
	// A backstop for a caller that passes a context without a deadline.
	hc.Timeout = 30 * time.Second

	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if endpoint != "" {
		opts = append(opts, option.WithEndpoint(endpoint))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: projectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: firebase app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: messaging client: %w", err)
	}
	return &session{client: client, tokens: &tokenGate{tp: creds, hold: tokenFailureHold}}, nil
}

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
	name, err := sess.client.Send(ctx, msg)
	if err != nil {
		if unauthenticated(err) {
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

func unauthenticated(err error) bool {
	if errorutils.IsUnauthenticated(err) {
		return true
	}
	resp := errorutils.HTTPResponse(err)
	return resp != nil && resp.StatusCode == http.StatusUnauthorized
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
