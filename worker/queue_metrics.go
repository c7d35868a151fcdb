package worker

import (
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/queue"
)

// QueueCollector reads the depth and latency of ringer's Asynq queues from Redis at every scrape. The
// numbers are the queues' own, not this process's: every process that exports them shows the same values,
// so a dashboard takes max by queue, never sum.
type QueueCollector struct {
	inspector *asynq.Inspector
	queues    []string
	timeout   time.Duration

	tasks     *prometheus.Desc
	latency   *prometheus.Desc
	processed *prometheus.Desc
	failed    *prometheus.Desc
	up        *prometheus.Desc
}

// queueStates are the task states of ringer_queue_tasks, as the Asynq dashboard names them.
var queueStates = []string{"pending", "active", "scheduled", "retry", "archived", "completed"}

// NewQueueCollector returns a collector of the ring, watch, notify and webhook queues on rdb; register it on the
// registry that /metrics serves.
func NewQueueCollector(rdb redis.UniversalClient) *QueueCollector {
	// Every series but ringer_queue_tasks has one label, the queue.
	perQueue := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"queue"}, nil)
	}
	return &QueueCollector{
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		queues:    []string{queue.QueueRing, queue.QueueWatch, queue.QueueNotify, queue.QueueWebhook},
		timeout:   3 * time.Second,
		tasks: prometheus.NewDesc("ringer_queue_tasks",
			"Tasks in an Asynq queue by state (pending, active, scheduled, retry, archived, completed).",
			[]string{"queue", "state"}, nil),
		latency: perQueue("ringer_queue_latency_seconds",
			"How long the oldest pending task of a queue has waited (0 when none waits)."),
		processed: perQueue("ringer_queue_processed_total",
			"Tasks a queue's workers have finished, succeeded or failed, since the queue was created."),
		failed: perQueue("ringer_queue_failed_total",
			"Task runs of a queue that failed (each retry counts), since the queue was created."),
		up: perQueue("ringer_queue_up",
			"1 when the queue's numbers were read from Redis at this scrape, 0 when Redis did not answer in time."),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.tasks, c.latency, c.processed, c.failed, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A queue that never held a task reads as empty; a Redis that does
// not answer within the timeout gives ringer_queue_up 0 rather than a failed scrape, so the process's other
// series stay visible while Redis is down.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	type result struct {
		info *asynq.QueueInfo
		ok   bool
	}
	done := make(chan []result, 1)
	go func() {
		// The Inspector takes no context: a slow Redis is cut off by the timeout below, and this goroutine
		// ends with go-redis's own read timeout.
		names, err := c.inspector.Queues()
		if err != nil {
			done <- nil
			return
		}
		out := make([]result, len(c.queues))
		for i, q := range c.queues {
			// A queue split over shards (queue.Layout) is reported as one: its shards' sums, and the
			// longest wait of any of them. A queue that never held a task has no shard and reads as empty.
			sum := &asynq.QueueInfo{Queue: q}
			ok := true
			for _, name := range names {
				if queue.Base(name) != q {
					continue
				}
				info, err := c.inspector.GetQueueInfo(name)
				if err != nil {
					ok = false
					break
				}
				addQueueInfo(sum, info)
			}
			out[i] = result{info: sum, ok: ok}
		}
		done <- out
	}()
	var results []result
	select {
	case results = <-done:
	case <-time.After(c.timeout):
	}
	for i, q := range c.queues {
		if results == nil || !results[i].ok {
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0, q)
			continue
		}
		info := results[i].info
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1, q)
		for _, s := range queueStates {
			ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(stateCount(info, s)), q, s)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
		ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(info.FailedTotal), q)
	}
}

func stateCount(info *asynq.QueueInfo, state string) int {
	switch state {
	case "pending":
		return info.Pending
	case "active":
		return info.Active
	case "scheduled":
		return info.Scheduled
	case "retry":
		return info.Retry
	case "archived":
		return info.Archived
	case "completed":
		return info.Completed
	}
	return 0
}

// addQueueInfo adds a shard's figures to its queue's.
func addQueueInfo(sum, shard *asynq.QueueInfo) {
	sum.Pending += shard.Pending
	sum.Active += shard.Active
	sum.Scheduled += shard.Scheduled
	sum.Retry += shard.Retry
	sum.Archived += shard.Archived
	sum.Completed += shard.Completed
	sum.ProcessedTotal += shard.ProcessedTotal
	sum.FailedTotal += shard.FailedTotal
	sum.Latency = max(sum.Latency, shard.Latency)
}
