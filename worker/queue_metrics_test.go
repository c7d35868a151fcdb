package worker

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// gauge is the value of one series of name with the given labels, and whether it was exported.
func gauge(t *testing.T, families []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestTheWebhookQueueIsCountedBesideTheRingQueues(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewQueueCollector(rdb))

	// Before any delivery the queue does not exist in Redis yet: it reads as empty, not missing.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{queue.QueueRing, queue.QueueWatch, queue.QueueNotify, queue.QueueWebhook} {
		if v, ok := gauge(t, families, "ringer_queue_tasks", map[string]string{"queue": q, "state": "pending"}); !ok || v != 0 {
			t.Errorf("ringer_queue_tasks{queue=%q,state=pending} = %v (exported %v) before any task, want 0", q, v, ok)
		}
	}

	// Nobody serves the queue here, so an enqueued delivery stays pending.
	qc := queue.NewClient(rdb)
	tasks := []queue.WebhookTask{
		{URL: "http://receiver.invalid/hooks", ID: "wh_a", Body: []byte(`{"type":"call.ring"}`)},
		{URL: "http://receiver.invalid/hooks", ID: "wh_b", Body: []byte(`{"type":"call.ringing"}`)},
	}
	if err := qc.EnqueueWebhooks(context.Background(), tasks); err != nil {
		t.Fatal(err)
	}
	families, err = reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := gauge(t, families, "ringer_queue_tasks", map[string]string{"queue": queue.QueueWebhook, "state": "pending"}); v != 2 {
		t.Errorf("ringer_queue_tasks{queue=webhook,state=pending} = %v, want the 2 enqueued deliveries", v)
	}
	if v, ok := gauge(t, families, "ringer_queue_up", map[string]string{"queue": queue.QueueWebhook}); !ok || v != 1 {
		t.Errorf("ringer_queue_up{queue=webhook} = %v (exported %v), want 1", v, ok)
	}
	if v, _ := gauge(t, families, "ringer_queue_tasks", map[string]string{"queue": queue.QueueRing, "state": "pending"}); v != 0 {
		t.Errorf("ringer_queue_tasks{queue=ring,state=pending} = %v: the webhooks were counted in the ring queue", v)
	}
}
