package calls

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// TestSweepOutboxEnqueuesWhatADeadProcessLeftOnceItsGraceIsOver: a process whose webhook enqueues fail (a
// Redis ACL keeps it off the webhook queue, as a kill right after the transition would) leaves its events in
// the call's outbox; the sweeper of another process leaves them alone within OutboxGrace, then enqueues one
// task per event and URL under the event's webhook id, empties the outbox and drops the call from the index.
func TestSweepOutboxEnqueuesWhatADeadProcessLeftOnceItsGraceIsOver(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	if err := rdb.Do(ctx, "ACL", "SETUSER", "no-webhooks", "on", ">pw", "~ringer:*", "~asynq:queues",
		"~asynq:{ring}:*", "~asynq:{watch}:*", "~asynq:{notify}:*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	limited := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "no-webhooks", Password: "pw"})
	t.Cleanup(func() { limited.Close() })
	urls := []string{"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"}
	live := New(limited, queue.NewClient(limited), nil)
	live.SetWebhooks(urls)
	if _, _, err := live.GetOrCreate(ctx, Actor{UserID: "alice"}, "default", "o1",
		CreateRequest{Ring: true, Members: []MemberInput{{UserID: "bob"}}}); err != nil {
		t.Fatal(err)
	}
	cid := CID("default", "o1")
	left, err := rdb.HGetAll(ctx, outboxKey(cid)).Result()
	if err != nil || len(left) != 2 {
		t.Fatalf("outbox after the failed enqueue: %v %v, want call.created and call.ring", left, err)
	}
	want := map[string]bool{}
	for f, v := range left {
		var e outboxEntry
		seq, _ := strconv.ParseInt(f, 10, 64)
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			t.Fatal(err)
		}
		for _, u := range urls {
			want["webhook:"+queue.WebhookID(cid, seq, e.At, u)] = true
		}
	}

	sweeper := New(rdb, queue.NewClient(rdb), nil)
	sweeper.SetWebhooks(urls)
	if n, err := sweeper.SweepOutbox(ctx); err != nil || n != 0 {
		t.Fatalf("within the grace the sweeper re-drove %d events (err %v), want none", n, err)
	}
	sweeper.now = func() time.Time { return time.Now().Add(OutboxGrace + time.Second) }
	if n, err := sweeper.SweepOutbox(ctx); err != nil || n != 2 {
		t.Fatalf("after the grace the sweeper re-drove %d events (err %v), want 2", n, err)
	}
	tasks, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(queue.QueueWebhook)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, ti := range tasks {
		got[ti.ID] = true
	}
	if len(got) != len(want) {
		t.Errorf("pending webhook tasks %v, want %v", got, want)
	}
	for id := range want {
		if !got[id] {
			t.Errorf("no pending webhook task %s", id)
		}
	}
	if n := rdb.HLen(ctx, outboxKey(cid)).Val(); n != 0 {
		t.Errorf("outbox holds %d events after the sweep", n)
	}
	if rdb.ZScore(ctx, outboxCallsKey, cid).Err() != redis.Nil {
		t.Errorf("the call is still in the outbox index")
	}
	if n, err := sweeper.SweepOutbox(ctx); err != nil || n != 0 {
		t.Errorf("a second sweep re-drove %d events (err %v), want none", n, err)
	}
}

// TestAProcessWithoutWebhooksWritesNoOutboxAndStillPublishesEveryEvent: the outbox is for webhooks alone, so a
// store without receivers leaves none (nor an event counter in the call) and publishes a transition's events
// from the script's answer: the callee's replay stream gets call.created, call.ring and call.accepted, in order.
func TestAProcessWithoutWebhooksWritesNoOutboxAndStillPublishesEveryEvent(t *testing.T) {
	ctx := context.Background()
	rdb := testredis.Start(t).Client(t)
	s := New(rdb, queue.NewClient(rdb), nil)
	s.SetEventReplay(time.Minute)
	if err := rdb.Set(ctx, presenceKey("bob"), 1, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetOrCreate(ctx, Actor{UserID: "alice"}, "default", "quiet",
		CreateRequest{Ring: true, Members: []MemberInput{{UserID: "bob"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accept(ctx, Actor{UserID: "bob"}, "default", "quiet"); err != nil {
		t.Fatal(err)
	}
	cid := CID("default", "quiet")
	if n := rdb.Exists(ctx, outboxKey(cid)).Val(); n != 0 {
		t.Errorf("a store without webhooks left an outbox: %v", rdb.HGetAll(ctx, outboxKey(cid)).Val())
	}
	if rdb.HExists(ctx, callKeys(cid)[0], "evseq").Val() {
		t.Errorf("a store without webhooks numbered its events")
	}
	if rdb.ZScore(ctx, outboxCallsKey, cid).Err() != redis.Nil {
		t.Errorf("a store without webhooks indexed the call for the sweeper")
	}
	msgs, err := rdb.XRange(ctx, replayKey("bob"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		var e struct {
			Type    string `json:"type"`
			CallCID string `json:"call_cid"`
		}
		if err := json.Unmarshal([]byte(m.Values["e"].(string)), &e); err != nil {
			t.Fatal(err)
		}
		if e.CallCID == cid {
			got = append(got, e.Type)
		}
	}
	want := []string{EventCreated, queue.EventRing, queue.EventAccepted}
	if !slices.Equal(got, want) {
		t.Errorf("bob's replay stream holds %v, want %v", got, want)
	}
}
