package calls

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMetricsCountRingOutcomesFromTheTransitionOutcome(t *testing.T) {
	cases := []struct {
		name string
		out  outcome
		want map[string]float64
	}{
		{"ring of two", outcome{RungMembers: []string{"bob", "carol"}, EventTypes: []string{EventCreated, EventRing}},
			map[string]float64{RingStarted: 2}},
		{"accept", outcome{StopMembers: []string{"bob"}, StopEvents: []string{EventAccepted},
			EventTypes: []string{EventAccepted}, EventUsers: []string{"bob"}},
			map[string]float64{RingAccepted: 1}},
		{"last callee rejects: the call ends", outcome{StopMembers: []string{"bob"}, StopEvents: []string{EventRejected},
			EventTypes: []string{EventRejected, EventEnded}, EventUsers: []string{"bob", "bob"}},
			map[string]float64{RingRejected: 1}},
		{"caller cancels two", outcome{Missed: []string{"bob", "carol"},
			EventTypes: []string{EventRejected, EventMissed, EventMissed, EventEnded}, EventUsers: []string{"alice", "bob", "carol", "alice"}},
			map[string]float64{RingCancelled: 2}},
		{"one was due before the caller cancelled", outcome{Missed: []string{"bob", "carol"},
			EventTypes: []string{EventMissed, EventRejected, EventMissed, EventEnded}, EventUsers: []string{"bob", "alice", "carol", "alice"}},
			map[string]float64{RingMissed: 1, RingCancelled: 1}},
		{"timeout", outcome{Missed: []string{"bob"}, EventTypes: []string{EventMissed, EventEnded}, EventUsers: []string{"bob", "alice"}},
			map[string]float64{RingMissed: 1}},
		{"mark_ended stops two", outcome{StopMembers: []string{"bob", "carol"}, StopEvents: []string{EventEnded, EventEnded},
			EventTypes: []string{EventEnded}, EventUsers: []string{"alice"}},
			map[string]float64{RingEnded: 2}},
		{"noop", outcome{Status: statusNoop}, map[string]float64{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := NewMetrics(nil)
			m.observe(c.out)
			for _, o := range []string{RingStarted, RingAccepted, RingRejected, RingMissed, RingCancelled, RingEnded} {
				if got := counterValue(t, m.Rings.WithLabelValues(o)); got != c.want[o] {
					t.Errorf("%s = %v, want %v", o, got, c.want[o])
				}
			}
		})
	}
}

func TestNilMetricsCountNothing(t *testing.T) {
	var m *Metrics
	m.observe(outcome{RungMembers: []string{"bob"}}) // must not panic
}
