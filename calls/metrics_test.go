package calls

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringer-dev/ringer/queue"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// evs is the events of an outcome, given as type, user, type, user, ...
func evs(typeUser ...string) []event {
	out := make([]event, 0, len(typeUser)/2)
	for i := 0; i+1 < len(typeUser); i += 2 {
		out = append(out, event{Type: typeUser[i], User: typeUser[i+1]})
	}
	return out
}

func TestMetricsCountRingOutcomesFromTheTransitionOutcome(t *testing.T) {
	cases := []struct {
		name string
		out  outcome
		want map[string]float64
	}{
		{"ring of two", outcome{Rung: []rung{{"bob", 1}, {"carol", 1}}, Events: evs(EventCreated, "", queue.EventRing, "")},
			map[string]float64{RingStarted: 2}},
		{"accept", outcome{Stops: []stop{{"bob", queue.EventAccepted}}, Events: evs(queue.EventAccepted, "bob")},
			map[string]float64{RingAccepted: 1}},
		{"last callee rejects: the call ends", outcome{Stops: []stop{{"bob", queue.EventRejected}}, Events: evs(queue.EventRejected, "bob", queue.EventEnded, "bob")},
			map[string]float64{RingRejected: 1}},
		{"caller cancels two", outcome{Missed: []string{"bob", "carol"},
			Events: evs(queue.EventRejected, "alice", queue.EventMissed, "bob", queue.EventMissed, "carol", queue.EventEnded, "alice")},
			map[string]float64{RingCancelled: 2}},
		{"one was due before the caller cancelled", outcome{Missed: []string{"bob", "carol"},
			Events: evs(queue.EventMissed, "bob", queue.EventRejected, "alice", queue.EventMissed, "carol", queue.EventEnded, "alice")},
			map[string]float64{RingMissed: 1, RingCancelled: 1}},
		{"timeout", outcome{Missed: []string{"bob"}, Events: evs(queue.EventMissed, "bob", queue.EventEnded, "alice")},
			map[string]float64{RingMissed: 1}},
		{"mark_ended stops two", outcome{Stops: []stop{{"bob", queue.EventEnded}, {"carol", queue.EventEnded}}, Events: evs(queue.EventEnded, "alice")},
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
	m.observe(outcome{Rung: []rung{{"bob", 1}}}) // must not panic
}
