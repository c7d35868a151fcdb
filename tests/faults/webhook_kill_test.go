package faults

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/tests/harness"
	"github.com/ringer-dev/ringer/webhook"
)

// TestAnEventCommittedByAnAPIKilledBeforeItsWebhookIsEnqueuedStillReachesTheReceiver holds the API process in
// the window between a transition and the enqueue of its webhooks, then kills it (SIGKILL). A Redis ACL lets
// the API write calls and ring tasks but not the webhook queue, so every webhook enqueue fails while the
// transitions commit: the state a kill right after the transition script leaves. The worker's outbox sweeper
// must deliver each event's webhook all the same, once.
func TestAnEventCommittedByAnAPIKilledBeforeItsWebhookIsEnqueuedStillReachesTheReceiver(t *testing.T) {
	t.Parallel()
	const secret = "whsec-kill"
	var (
		mu  sync.Mutex
		got = map[string][]string{} // event type -> webhook ids
		bad []string
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &body)
		mu.Lock()
		defer mu.Unlock()
		if !hmac.Equal([]byte(webhook.Sign([]byte(secret), raw)), []byte(r.Header.Get("X-Signature"))) {
			bad = append(bad, body.Type)
		}
		got[body.Type] = append(got[body.Type], r.Header.Get("X-Webhook-Id"))
	}))
	t.Cleanup(rcv.Close)
	count := func(typ string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[typ])
	}

	e := harness.Start(t, harness.Options{Command: "worker", Env: []string{
		"RINGER_WEBHOOK_URL=" + rcv.URL, "RINGER_WEBHOOK_SECRET=" + secret,
	}})
	if err := e.RDB.Do(e.Context(), "ACL", "SETUSER", "ringer-api", "on", ">api-pw", "~ringer:*", "~asynq:queues",
		"~asynq:{ring}:*", "~asynq:{watch}:*", "~asynq:{notify}:*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	api := e.StartProcess("api", "REDIS_URL=redis://ringer-api:api-pw@"+e.Redis.Addr)
	e.URL = "http://" + api.Addr
	e.MustCall(201, "POST", "/v1/call/default/killed", e.Token("alice"), ringBody(30_000, "bob"))
	e.Eventually(5*time.Second, "the API to fail to enqueue the webhooks", func() bool {
		return strings.Contains(api.Logs(), "webhooks not enqueued")
	})
	api.Kill()

	e.Eventually(20*time.Second, "the webhooks of the created call and its ring", func() bool {
		return count("call.created") >= 1 && count("call.ring") >= 1
	})
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	e.Eventually(20*time.Second, "the webhook queue to drain", func() bool {
		info, err := in.GetQueueInfo("webhook")
		return err == nil && info.Pending+info.Active+info.Retry+info.Scheduled == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("signatures that do not verify: %v", bad)
	}
	for _, typ := range []string{"call.created", "call.ring"} {
		if len(got[typ]) != 1 {
			t.Errorf("%s came %d times (ids %v), want once", typ, len(got[typ]), got[typ])
		}
	}
}
