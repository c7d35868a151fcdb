// Package logsink stands in for a push provider that has no credentials configured: it reports each push sent,
// with the reason Reason, so `ringer dev` works with nothing to set up and a developer can watch rings happen
// in the worker's one log line per push. The push's whole content (title, body, expiry) is logged at debug
// level only, so a logged push is one line, not two.
package logsink

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ringer-dev/ringer/providers"
)

// Reason is the Result.Reason of every push the sink takes: it was logged, not sent.
const Reason = "logged, not sent: no provider credentials"

// Sink logs pushes for one provider name ("firebase", "apn"). It is safe for concurrent use.
type Sink struct {
	logger   *slog.Logger
	provider string
	sent     atomic.Uint64

	mu    sync.RWMutex
	hooks []func(providers.Push)
}

// New returns a Sink that logs to logger (slog.Default() when nil) as provider.
func New(logger *slog.Logger, provider string) *Sink {
	if logger == nil {
		logger = slog.Default()
	}
	return &Sink{logger: logger, provider: provider}
}

// OnPush registers f to see every push Send is given, after it is logged; a demo page uses it to show pushes
// live. f runs on Send's goroutine and must return quickly; it must not keep p.Data, which the caller owns.
func (s *Sink) OnPush(f func(providers.Push)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, f)
}

// Send logs the push at debug level and reports it sent, with Reason. The token is logged by its suffix only.
func (s *Sink) Send(ctx context.Context, p providers.Push) providers.Result {
	id := s.provider + "-log-" + strconv.FormatUint(s.sent.Add(1), 10)
	attrs := []slog.Attr{
		slog.String("provider", s.provider),
		slog.String("kind", p.Kind.String()),
		slog.String("type", p.Data["type"]),
		slog.String("call_cid", p.Data["call_cid"]),
		slog.String("ring_id", p.Data["ring_id"]),
		slog.String("receiver_id", p.Data["receiver_id"]),
		slog.String("token", providers.TokenSuffix(p.Token)),
		slog.Bool("voip", p.VoIP),
		slog.String("id", id),
	}
	if p.Title != "" || p.Body != "" {
		attrs = append(attrs, slog.String("title", p.Title), slog.String("body", p.Body))
	}
	if !p.Expires.IsZero() {
		attrs = append(attrs, slog.Time("expires", p.Expires))
	}
	s.logger.LogAttrs(ctx, slog.LevelDebug, "push logged, not sent (no provider credentials)", attrs...)

	s.mu.RLock()
	hooks := s.hooks
	s.mu.RUnlock()
	for _, f := range hooks {
		f(p)
	}
	return providers.Result{Verdict: providers.Sent, ID: id, Reason: Reason}
}

// Check always succeeds: there is nothing to reach.
func (s *Sink) Check(context.Context) error { return nil }
