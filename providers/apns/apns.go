// Package apns sends pushes to Apple Push Notification service over HTTP/2 with token (.p8, ES256) auth through
// the real github.com/sideshow/apns2 client, and maps every answer to a providers.Verdict.
//
// What a caller must know:
//   - One Sender holds one HTTP/2 client: every push is a stream on a few long-lived connections. Make one per
//     process and share it.
//   - TLS trusts Config.RootCAs when set (tests pass the fake's pool), else the system roots; Go reads those,
//     including SSL_CERT_FILE, once per process, so a test that sets SSL_CERT_FILE after any TLS handshake in
//     the same process must pass RootCAs instead.
//   - A VoIP token takes only rings: any other kind to a VoIP token is Rejected without being sent, because a
//     VoIP push that does not show a call gets the app killed by iOS (and APNs would prune nothing useful).
package apns

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/ringer-dev/ringer/providers"
)

// Config says where APNs is and who we are.
type Config struct {
	// KeyFile is the .p8 auth key (APNS_KEY_FILE); KeyID and TeamID name it (APNS_KEY_ID, APNS_TEAM_ID).
	KeyFile, KeyID, TeamID string
	// Topic is the app's bundle id (APNS_TOPIC); VoIP pushes go to Topic + ".voip".
	Topic string
	// Environment is "production" (the default) or "development" (the sandbox).
	Environment string
	// Endpoint, when set, replaces the host Environment picks, e.g. https://127.0.0.1:PORT (APNS_ENDPOINT).
	Endpoint string
	// RootCAs, when set, are the only CAs trusted for the endpoint; nil means the system roots.
	RootCAs *x509.CertPool
}

// Sender delivers pushes to APNs tokens. It is safe for concurrent use.
type Sender struct {
	client *apns2.Client
	topic  string
	token  *token.Token // shared with client; read-only here

	checkMu   sync.Mutex
	checkedAt time.Time
	checkErr  error
}

// probeToken is well formed and belongs to no device: APNs answers a push to it 400 BadDeviceToken when it
// accepts the provider token, 403 when it does not, and delivers nothing either way.
var probeToken = strings.Repeat("0", 64)

// checkEvery bounds how often Check asks APNs; readiness probes come every few seconds.
const checkEvery = 30 * time.Second

// New loads the key and builds the client. It does not contact Apple: there is nothing cheap to ask.
func New(cfg Config) (*Sender, error) {
	switch {
	case cfg.KeyFile == "":
		return nil, errors.New("apns: no key file")
	case cfg.KeyID == "" || cfg.TeamID == "":
		return nil, errors.New("apns: key id and team id are required with a key file")
	case cfg.Topic == "":
		return nil, errors.New("apns: no topic (the app's bundle id)")
	}
	host, err := host(cfg)
	if err != nil {
		return nil, err
	}
	key, err := token.AuthKeyFromFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("apns: load key %s: %w", cfg.KeyFile, err)
	}
	tok := &token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
	// apns2 ignores a signing failure and sends an empty bearer; find out now instead.
	if _, err := tok.Generate(); err != nil {
		return nil, fmt.Errorf("apns: sign provider token with key %s: %w", cfg.KeyID, err)
	}

	// The client is built here, not with apns2.NewTokenClient, so that TLS trusts cfg.RootCAs without
	// touching apns2's package-level DialTLS, and so that it uses net/http's HTTP/2 (x/net's transport, which
	// apns2 uses, is deprecated). One connection carries up to APNs' stream limit (1,000) of pushes at once.
	protocols := new(http.Protocols)
	protocols.SetHTTP2(true) // APNs speaks nothing else
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   apns2.TLSDialTimeout,
			KeepAlive: apns2.TCPKeepAlive,
		}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: apns2.TLSDialTimeout,
		ForceAttemptHTTP2:   true,
		Protocols:           protocols,
		// Without a limit, a burst of pushes on a cold client dials one connection per push until the first
		// is up (and a burst dials again whenever every connection is at its stream limit). With it, a burst
		// waits for at most a few dials and shares them; net/http still dials past the limit when every
		// connection is full, so it bounds dialling, not throughput.
		MaxConnsPerHost: 4,
		// Connections are never closed for idleness: APNs asks providers to keep them open rather than
		// reconnect per burst. Pings find one APNs or a middlebox dropped before a push is lost on it.
		IdleConnTimeout: 0,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: apns2.ReadIdleTimeout,
			PingTimeout:     apns2.ReadIdleTimeout,
		},
	}
	client := &apns2.Client{
		Host:  host,
		Token: tok,
		// A backstop for a caller that passes a context without a deadline.
		HTTPClient: &http.Client{Transport: stampReader{transport}, Timeout: apns2.HTTPClientTimeout},
	}
	return &Sender{client: client, topic: cfg.Topic, token: tok}, nil
}

func host(cfg Config) (string, error) {
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return "", fmt.Errorf("apns: endpoint %q: want https://host[:port] (APNs is HTTP/2 over TLS)", cfg.Endpoint)
		}
		return strings.TrimRight(cfg.Endpoint, "/"), nil
	}
	switch cfg.Environment {
	case "", "production":
		return apns2.HostProduction, nil
	case "development":
		return apns2.HostDevelopment, nil
	}
	return "", fmt.Errorf("apns: environment %q: want production or development", cfg.Environment)
}

// Check tells whether APNs accepts our key, for /readyz. APNs has no endpoint that checks a key alone, so
// Check pushes once to probeToken, a token no device has: 403 means the key (or team, or key id) is
// rejected; any other answer from APNs means it is accepted. The answer is kept for checkEvery.
func (s *Sender) Check(ctx context.Context) error {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	if !s.checkedAt.IsZero() && time.Since(s.checkedAt) < checkEvery {
		return s.checkErr
	}
	n := &apns2.Notification{
		DeviceToken: probeToken, Topic: s.topic, PushType: apns2.PushTypeBackground,
		Priority: apns2.PriorityLow, Expiration: time.Now(), Payload: []byte(`{"aps":{"content-available":1}}`),
	}
	res, err := s.client.PushWithContext(ctx, n)
	if err != nil {
		return fmt.Errorf("apns: readiness probe: %w", err) // unreachable now: not kept, ask again next time
	}
	s.checkedAt, s.checkErr = time.Now(), nil
	if res.StatusCode == http.StatusForbidden {
		s.checkErr = fmt.Errorf("apns: key %s of team %s rejected: %s", s.token.KeyID, s.token.TeamID, res.Reason)
	}
	return s.checkErr
}

// Send delivers one push and says what its answer means.
func (s *Sender) Send(ctx context.Context, p providers.Push) providers.Result {
	n, err := s.notification(p)
	if err != nil {
		return verdict(nil, err)
	}
	stamp := new(time.Time)
	res, err := s.client.PushWithContext(context.WithValue(ctx, stampKey{}, stamp), n)
	if res != nil && !stamp.IsZero() {
		res.Timestamp.Time = *stamp
	}
	return verdict(res, err)
}

// stampKey carries, in a push's context, where stampReader puts the 410 timestamp.
type stampKey struct{}

// stampReader reads a 410 answer's timestamp to the millisecond, as APNs sends it: apns2 keeps only whole
// seconds, and a token registered again within that second must not be pruned for a death before it.
type stampReader struct{ base http.RoundTripper }

func (t stampReader) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	stamp, ok := req.Context().Value(stampKey{}).(*time.Time)
	if err != nil || !ok || resp.StatusCode != http.StatusGone {
		return resp, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // APNs' error bodies are a few dozen bytes
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("apns: read 410 answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b)) // for apns2, which reads the reason from it
	var body struct {
		Timestamp int64 `json:"timestamp"`
	}
	if json.Unmarshal(b, &body) == nil && body.Timestamp > 0 {
		*stamp = time.UnixMilli(body.Timestamp)
	}
	return resp, nil
}

// notification shapes a push as API.md's push table says.
func (s *Sender) notification(p providers.Push) (*apns2.Notification, error) {
	if p.Token == "" {
		return nil, &pushError{msg: "push has no token"}
	}
	n := &apns2.Notification{
		// Escaped so that no token can change the request's path; a real token is hex and unchanged.
		DeviceToken: url.PathEscape(p.Token),
		Topic:       s.topic,
		CollapseID:  p.CollapseID,
		Expiration:  p.Expires,
	}
	aps := map[string]any{}
	switch {
	case p.VoIP && p.Kind == providers.KindRing:
		n.PushType, n.Topic, n.Priority = apns2.PushTypeVOIP, s.topic+".voip", apns2.PriorityHigh
	case p.VoIP:
		return nil, &pushError{msg: fmt.Sprintf("a VoIP token takes only rings, not %s", p.Kind)}
	case p.Kind == providers.KindRing:
		// A ring to a regular token (an iPhone without a VoIP token) is an alert with the ring's text that
		// sounds and breaks through a Focus, as close to a call screen as an alert gets.
		n.PushType, n.Priority = apns2.PushTypeAlert, apns2.PriorityHigh
		aps["alert"] = map[string]string{"title": p.Title, "body": p.Body}
		aps["sound"] = "default"
		aps["interruption-level"] = "time-sensitive"
	case p.Kind == providers.KindAlert:
		n.PushType, n.Priority = apns2.PushTypeAlert, apns2.PriorityHigh
		aps["alert"] = map[string]string{"title": p.Title, "body": p.Body}
	case p.Kind == providers.KindStop:
		// Background pushes must go at priority 5; APNs refuses 10.
		n.PushType, n.Priority = apns2.PushTypeBackground, apns2.PriorityLow
		aps["content-available"] = 1
	default:
		return nil, &pushError{msg: fmt.Sprintf("unknown push kind %d", p.Kind)}
	}
	payload := make(map[string]any, len(p.Data)+1)
	for k, v := range p.Data {
		payload[k] = v
	}
	payload["aps"] = aps
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, &pushError{msg: "encode payload: " + err.Error()}
	}
	n.Payload = b
	return n, nil
}

// pushError is a push this package cannot shape: a caller's bug, not Apple's answer.
type pushError struct{ msg string }

func (e *pushError) Error() string { return "apns: " + e.msg }
