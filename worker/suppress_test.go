package worker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringer-dev/ringer/devices"
)

func TestAWithheldPushIsLoggedWithItsCallRingMemberAndReasonAndCounted(t *testing.T) {
	var buf bytes.Buffer
	w := &Worker{cfg: Config{Metrics: NewMetrics(nil)}}
	log := slog.New(slog.NewTextHandler(&buf, nil)).With("cid", "default:c1", "ring_id", "r1", "member", "bob")
	until := time.Now().Add(time.Hour)

	if w.suppressed(log, "", devices.Preferences{CallLevel: devices.CallLevelAll}, "call.ring", 2) {
		t.Fatal("a member with the default preferences had its push withheld")
	}
	if !w.suppressed(log, "", devices.Preferences{CallLevel: devices.CallLevelAll, DisabledUntil: &until}, "call.ring", 2) {
		t.Fatal("a snoozed member's push was not withheld")
	}
	line := buf.String()
	for _, want := range []string{"push suppressed", "cid=default:c1", "ring_id=r1", "member=bob", "reason=\"disabled_until ", "devices=2"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	buf.Reset()
	if !w.suppressed(slog.New(slog.NewTextHandler(&buf, nil)), "carol", devices.Preferences{CallLevel: devices.CallLevelNone}, "call.notification", 1) ||
		!strings.Contains(buf.String(), "member=carol") || !strings.Contains(buf.String(), `reason="call_level none"`) {
		t.Errorf("a notification's withheld push: %q", buf.String())
	}
	if got := testutil.ToFloat64(w.cfg.Metrics.Suppressed.WithLabelValues("call.ring")); got != 2 {
		t.Errorf("ringer_pushes_suppressed_total{type=call.ring} = %v, want 2", got)
	}
}
