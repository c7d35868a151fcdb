package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringer-dev/ringer/queue"
)

// Metrics are the worker's Prometheus series. One value per process, registered on the registry main owns.
type Metrics struct {
	Pushes      *prometheus.CounterVec   // provider (type), provider_name, push type, outcome
	PushSeconds *prometheus.HistogramVec // provider round trip, by provider (type) and provider_name
	RingSeconds prometheus.Histogram     // ring enqueued (ring start) to provider accepted
	Pruned      *prometheus.CounterVec   // provider (type), provider_name
	Retries     *prometheus.CounterVec   // task type
	Rescues     prometheus.Counter       // ring pushes re-enqueued by the watchdog
	Suppressed  *prometheus.CounterVec   // push type: pushes withheld because the member turned pushes off
	// RingsElsewhere counts the times another process's worker (the notify child's parent) began running
	// ring-side tasks, for each of which this worker's notification pushes gave way.
	RingsElsewhere prometheus.Counter
}

// NewMetrics registers the worker's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_pushes_total", Help: "Pushes by provider type, provider name, push type and outcome (sent, retry, unregistered, rejected).",
		}, []string{"provider", "provider_name", "type", "outcome"}),
		PushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ringer_push_duration_seconds", Help: "Provider round trip of one push.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"provider", "provider_name"}),
		RingSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ringer_ring_latency_seconds", Help: "From the ring's task being enqueued to the provider accepting the ring push.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		Pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_tokens_pruned_total", Help: "Device tokens removed on the provider's word.",
		}, []string{"provider", "provider_name"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_task_retries_total", Help: "Tasks handed back for a retry, by task type.",
		}, []string{"task"}),
		Rescues: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringer_ring_rescues_total", Help: "Ring pushes re-enqueued by the ring watchdog after their worker died.",
		}),
		Suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_pushes_suppressed_total", Help: "Pushes not sent because their member turned pushes off or snoozed them (push preferences), by push type; one per device.",
		}, []string{"type"}),
		RingsElsewhere: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringer_notify_gave_way_total",
			Help: "Times the worker serving rings in another process (the notify child's parent) began running ring tasks, and notification pushes here gave way to them.",
		}),
	}
	// Every task type's retry series exists from the start, at zero, so dashboards and alerts see it before
	// the first retry.
	for _, t := range []string{queue.TypeRing, queue.TypeStop, queue.TypeTimeout, queue.TypeWatch, queue.TypeNotify} {
		m.Retries.WithLabelValues(t)
	}
	for _, e := range []string{queue.EventRing, queue.EventNotification, queue.EventMissed, queue.EventReminder} {
		m.Suppressed.WithLabelValues(e)
	}
	if reg != nil {
		reg.MustRegister(m.Pushes, m.PushSeconds, m.RingSeconds, m.Pruned, m.Retries, m.Rescues, m.Suppressed, m.RingsElsewhere)
	}
	return m
}

func (m *Metrics) observePush(provider, name, typ, outcome string, d time.Duration) {
	m.Pushes.WithLabelValues(provider, name, typ, outcome).Inc()
	m.PushSeconds.WithLabelValues(provider, name).Observe(d.Seconds())
}
