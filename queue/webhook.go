package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/hibiken/asynq"
)

// QueueWebhook carries webhook deliveries, served by a small Asynq server of its own in the worker: a slow or
// failing receiver holds only its slots, never a ring's.
const QueueWebhook = "webhook"

// TypeWebhook is one event POSTed to one receiver URL.
const TypeWebhook = "webhook:post"

// WebhookMaxRetry with the webhook package's retry delays (doubling from the base, capped at an hour) keeps a
// delivery retried for more than a day before Asynq archives it.
const WebhookMaxRetry = 40

// WebhookRetention keeps a delivered webhook's task id long enough that the outbox sweeper re-driving the same
// event (calls.Store.SweepOutbox) enqueues nothing twice.
const WebhookRetention = time.Hour

// WebhookTask is one event to POST to one URL. Body is the exact JSON the receiver gets and the signature
// covers; the secret is not in the task but in the worker's configuration.
type WebhookTask struct {
	URL  string          `json:"url"`
	ID   string          `json:"id"`
	Body json.RawMessage `json:"body"`
}

// WebhookID names one event (the call, its event sequence number and time) sent to one URL: the same on every
// retry and on a re-drive by the sweeper, so a receiver can drop a repeat.
func WebhookID(cid string, seq, atMs int64, url string) string {
	h := sha256.New()
	b, _ := json.Marshal([]any{cid, seq, atMs, url})
	h.Write(b)
	return "wh_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// EnqueueWebhooks enqueues each task with its webhook id as task id: enqueueing the same delivery twice is a
// no-op.
func (c *Client) EnqueueWebhooks(ctx context.Context, tasks []WebhookTask) error {
	return c.fanOut(ctx, len(tasks), func(ctx context.Context, i int) error {
		payload, err := json.Marshal(tasks[i])
		if err != nil {
			return err
		}
		return c.enqueue(ctx, asynq.NewTask(TypeWebhook, payload),
			c.in(QueueWebhook, "webhook:"+tasks[i].ID),
			asynq.MaxRetry(WebhookMaxRetry), asynq.Retention(WebhookRetention))
	})
}
