// Package webhook delivers call events to the call service's own HTTP endpoints (API.md, "Webhooks"): each
// event is one Asynq task per receiver URL in the webhook queue (queue.QueueWebhook), POSTed as the JSON SSE
// carries, signed with HMAC-SHA256, retried with growing jittered waits for more than a day, then archived.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringer-dev/ringer/queue"
)

// Defaults of Config.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultRetryBase = 2 * time.Second
	// maxRetryDelay caps the doubling waits: with queue.WebhookMaxRetry retries a delivery is tried for more
	// than a day.
	maxRetryDelay = time.Hour
)

// Sign is the X-Signature of body: the lowercase hex HMAC-SHA256 of the raw body keyed with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Config is what New needs.
type Config struct {
	Secret []byte
	// Timeout bounds one POST, from connecting to reading the answer's status. 0 is DefaultTimeout.
	Timeout time.Duration
	// RetryBase is the first retry's wait; each next one doubles, jittered, capped at an hour. 0 is
	// DefaultRetryBase.
	RetryBase time.Duration
	// Version goes in the User-Agent: ringer/<Version>.
	Version string
	// Metrics counts the attempts; nil counts them in series registered nowhere.
	Metrics *Metrics
	Logger  *slog.Logger
}

// Metrics are the webhook series: ringer_webhooks_total{outcome} and ringer_webhook_duration_seconds. A
// worker registers them whether or not webhooks are configured, so dashboards find them.
type Metrics struct {
	total   *prometheus.CounterVec
	latency prometheus.Histogram
}

// NewMetrics makes the series and registers them with reg (nil: nowhere).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_webhooks_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), refused (any other status), error (timeout or connection error).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringer_webhook_duration_seconds",
			Help:    "Time of one webhook delivery attempt, until the receiver's status or the error.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	for _, o := range []string{OutcomeDelivered, OutcomeRefused, OutcomeError} {
		m.total.WithLabelValues(o)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.total, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register webhook metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Sender POSTs webhook tasks; its Handle is the Asynq handler of queue.TypeWebhook.
type Sender struct {
	cfg     Config
	client  *http.Client
	log     *slog.Logger
	total   *prometheus.CounterVec
	latency prometheus.Histogram
}

// Outcomes of one delivery attempt, the outcome label of ringer_webhooks_total.
const (
	OutcomeDelivered = "delivered" // a 2xx answer
	OutcomeRefused   = "refused"   // any other status, a redirect included
	OutcomeError     = "error"     // a timeout or a connection error
)

// New returns a Sender.
func New(cfg Config) (*Sender, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: a secret is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil) // registers nothing, so it cannot fail
	}
	s := &Sender{
		cfg: cfg, log: cfg.Logger,
		client: &http.Client{
			Timeout: cfg.Timeout,
			// A redirect is not followed: the receiver answered 3xx, and that is not a delivery. Following it
			// would send a signed body wherever the receiver's answer points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		total: cfg.Metrics.total, latency: cfg.Metrics.latency,
	}
	return s, nil
}

// Handle POSTs one webhook task. An error makes Asynq retry it (RetryDelay) and, past queue.WebhookMaxRetry,
// archive it with that error, which the dashboard shows.
func (s *Sender) Handle(ctx context.Context, t *asynq.Task) error {
	var task queue.WebhookTask
	if err := queue.Decode(t, &task); err != nil {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, task.URL, bytes.NewReader(task.Body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w: %w", task.ID, err, asynq.SkipRetry)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "ringer/"+s.cfg.Version)
	h.Set("X-Signature", Sign(s.cfg.Secret, task.Body))
	h.Set("X-Webhook-Id", task.ID)
	h.Set("X-Webhook-Attempt", strconv.Itoa(retried+1))
	start := time.Now()
	resp, err := s.client.Do(req)
	s.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		s.total.WithLabelValues(OutcomeError).Inc()
		return fmt.Errorf("webhook %s to %s, attempt %d: %w", task.ID, task.URL, retried+1, err)
	}
	// Read a little of the answer so the connection can be reused; the rest is the receiver's business.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.total.WithLabelValues(OutcomeRefused).Inc()
		return fmt.Errorf("webhook %s to %s, attempt %d: receiver answered %s", task.ID, task.URL, retried+1, resp.Status)
	}
	s.total.WithLabelValues(OutcomeDelivered).Inc()
	s.log.Debug("webhook delivered", "id", task.ID, "url", task.URL, "attempt", retried+1)
	return nil
}

// RetryDelay is the wait before retry n+1: RetryBase doubled n times, capped at an hour, plus up to half of
// it again at random so that receivers coming back are not hit by every delivery at once.
func (s *Sender) RetryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	d := s.cfg.RetryBase
	for i := 0; i < n && d < maxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, maxRetryDelay)
	return d + rand.N(d/2+1)
}
