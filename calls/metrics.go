package calls

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringer-dev/ringer/queue"
)

// Ring outcomes, the outcome label of ringer_rings_total. Each counts callee rings, one per member rung:
// every ring started ends in exactly one of the others (or is still ringing), so
// started = accepted + rejected + missed + cancelled + ended + ringing now.
const (
	RingStarted   = "started"   // a member was rung
	RingAccepted  = "accepted"  // the member accepted (or joined while rung)
	RingRejected  = "rejected"  // the member rejected (any reason), or left while rung
	RingMissed    = "missed"    // nobody answered in time: the ring or the member's incoming timeout passed
	RingCancelled = "cancelled" // the caller gave up (reject or leave before any accept) while the member rang
	RingEnded     = "ended"     // the call was ended (mark_ended) or the member removed while it rang
)

// Metrics counts what becomes of rings. A Store counts on it once SetMetrics is called; a nil *Metrics
// counts nothing.
type Metrics struct {
	Rings *prometheus.CounterVec // outcome
	// Refused counts requests that would have started a ring, refused because rings could not be delivered in
	// time (SetRingAdmission).
	Refused prometheus.Counter
	// RateLimited counts requests that would have started a ring, refused because their user was past its
	// ring rate (SetRingLimiter).
	RateLimited prometheus.Counter
}

// NewMetrics registers the calls series on reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_rings_total",
			Help: "Callee rings by outcome: started when a member is rung, then accepted, rejected, missed (timeout), cancelled (by the caller) or ended (call ended, member removed).",
		}, []string{"outcome"}),
		Refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringer_rings_refused_total",
			Help: "Requests that would have started a ring, answered 503 overloaded because ring pushes already waited longer than RINGER_RING_QUEUE_BUDGET.",
		}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringer_rings_rate_limited_total",
			Help: "Requests that would have started a ring, answered 429 rate_limited because their user was past RINGER_RING_RATE.",
		}),
	}
	// Every outcome exists from the start, so rate() and increase() see the first one.
	for _, o := range []string{RingStarted, RingAccepted, RingRejected, RingMissed, RingCancelled, RingEnded} {
		m.Rings.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.Rings, m.Refused, m.RateLimited)
	}
	return m
}

// SetMetrics makes the store count ring outcomes on m. Call it before the store is used.
func (s *Store) SetMetrics(m *Metrics) { s.metrics = m }

func (m *Metrics) refused() {
	if m != nil {
		m.Refused.Inc()
	}
}

func (m *Metrics) rateLimited() {
	if m != nil {
		m.RateLimited.Inc()
	}
}

// observe counts what one transition script did, read from its outcome: members newly rung, the stops it
// owes (accepted, rejected, ended), and the members it missed. A missed member is cancelled when the caller's
// cancel missed it: the cancel is the call.rejected event without a stop of its own (a callee's reject
// always has one), and the misses it causes follow it in the event list.
func (m *Metrics) observe(out outcome) {
	if m == nil {
		return
	}
	counts := map[string]int{RingStarted: len(out.Rung)}
	rejectedStop := map[string]bool{}
	for _, st := range out.Stops {
		switch st.Event {
		case queue.EventAccepted:
			counts[RingAccepted]++
		case queue.EventRejected:
			counts[RingRejected]++
			rejectedStop[st.Member] = true
		case queue.EventEnded:
			counts[RingEnded]++
		}
	}
	cancelled := false
	for _, e := range out.Events {
		switch {
		case e.Type == queue.EventRejected && !rejectedStop[e.User]:
			cancelled = true
		case e.Type == queue.EventMissed && cancelled:
			counts[RingCancelled]++
		case e.Type == queue.EventMissed:
			counts[RingMissed]++
		}
	}
	for o, n := range counts {
		if n > 0 {
			m.Rings.WithLabelValues(o).Add(float64(n))
		}
	}
}
