package worker

import (
	"log/slog"
	"time"

	"github.com/ringer-dev/ringer/devices"
)

// suppressed says whether a member's push preferences withhold its pushes of event now (muteReason), and if
// so logs it and counts the n pushes withheld. log names the call and the ring or notification, and the member
// unless member is given (a notification task serves many members).
func (w *Worker) suppressed(log *slog.Logger, member string, prefs devices.Preferences, event string, n int) bool {
	reason, muted := muteReason(prefs, time.Now())
	if !muted {
		return false
	}
	w.cfg.Metrics.Suppressed.WithLabelValues(event).Add(float64(n))
	attrs := []any{"type", event, "reason", reason, "devices", n}
	if member != "" {
		attrs = append(attrs, "member", member)
	}
	log.Info("push suppressed: the member turned pushes off", attrs...)
	return true
}
