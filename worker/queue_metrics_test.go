package worker

import (
	"context"
	"fmt"
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

func TestAQueueSplitOverShardsIsReportedAsOne(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewQueueCollector(rdb))
	qc := queue.NewClient(rdb)
	qc.SetShards(4)
	members := make([]string, 10*queue.NotifyBatch)
	for i := range members {
		members[i] = fmt.Sprintf("u%d", i)
	}
	if err := qc.Notify(context.Background(), queue.CallInfo{CID: "default:shards"}, "n1", queue.EventNotification, members); err != nil {
		t.Fatal(err)
	}
	names, err := queue.KnownQueues(context.Background(), rdb)
	if err != nil || len(names) < 2 {
		t.Fatalf("queues in Redis: %v (%v), want the notify tasks over several shards", names, err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := gauge(t, families, "ringer_queue_tasks", map[string]string{"queue": queue.QueueNotify, "state": "pending"}); v != 10 {
		t.Errorf("ringer_queue_tasks{queue=notify,state=pending} = %v, want the 10 batches of every shard", v)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "queue" && queue.Base(lp.GetValue()) != lp.GetValue() {
					t.Fatalf("%s has a series of shard %s", f.GetName(), lp.GetValue())
				}
			}
		}
	}
}
