package calls_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// callKeyTTLs answers the time to live of every key under the call's hash tag, by key.
func callKeyTTLs(t *testing.T, rdb redis.UniversalClient, cid string) map[string]time.Duration {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "ringer:{"+cid+"}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = ttl
	}
	return out
}

func TestEveryKeyOfACallLapsesAfterTheMaxAgeWithoutActivityAndTheRetentionOnceEnded(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	s.SetRetention(time.Minute, time.Hour)
	ctx := context.Background()
	cid := calls.CID("default", "kept")
	if _, _, err := s.GetOrCreate(ctx, alice, "default", "kept", calls.CreateRequest{Members: []calls.MemberInput{{UserID: "bob"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join(ctx, bob, "default", "kept"); err != nil {
		t.Fatal(err)
	}
	ttls := callKeyTTLs(t, rdb, cid)
	if len(ttls) < 3 {
		t.Fatalf("keys of a joined call: %v", ttls)
	}
	for k, ttl := range ttls {
		if ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("%s lives %v before the call ends, want the max age (1h)", k, ttl)
		}
	}
	if _, err := s.MarkEnded(ctx, alice, "default", "kept"); err != nil {
		t.Fatal(err)
	}
	for k, ttl := range callKeyTTLs(t, rdb, cid) {
		if ttl <= 50*time.Second || ttl > time.Minute {
			t.Errorf("%s lives %v after the call ended, want the retention (1m)", k, ttl)
		}
	}
}

func TestNoKeyOfARingingCallLapsesBeforeTheRingEnds(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	s.SetRetention(time.Second, time.Second)
	req := calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "bob"}},
		SettingsOverride: &calls.SettingsOverride{Ring: &calls.RingSettings{AutoCancelTimeoutMs: 60000, IncomingCallTimeoutMs: 60000}}}
	if _, _, err := s.GetOrCreate(context.Background(), alice, "default", "ringing", req); err != nil {
		t.Fatal(err)
	}
	for k, ttl := range callKeyTTLs(t, rdb, calls.CID("default", "ringing")) {
		if ttl < 60*time.Second {
			t.Errorf("%s lives %v while its ring lasts 60s", k, ttl)
		}
	}
}

func TestACallWhoseStartIsAheadLivesAtLeastUntilItStarts(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	s.SetRetention(time.Second, time.Minute)
	starts := time.Now().Add(48 * time.Hour)
	if _, _, err := s.GetOrCreate(context.Background(), alice, "default", "later", calls.CreateRequest{StartsAt: &starts}); err != nil {
		t.Fatal(err)
	}
	for k, ttl := range callKeyTTLs(t, rdb, calls.CID("default", "later")) {
		if ttl < 48*time.Hour {
			t.Errorf("%s lives %v, but the call starts in 48h", k, ttl)
		}
	}
}

func TestAListDropsCallsThatLapsed(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	ctx := context.Background()
	for _, id := range []string{"gone", "kept"} {
		if _, _, err := s.GetOrCreate(ctx, alice, "default", id, calls.CreateRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// What a lapse leaves: the call's keys gone, its entry in the list still there.
	if err := rdb.Del(ctx, gate.CallKey(calls.CID("default", "gone"), "call"), gate.CallKey(calls.CID("default", "gone"), "members")).Err(); err != nil {
		t.Fatal(err)
	}
	items, err := s.List(ctx, alice, "")
	if err != nil || len(items) != 1 || items[0].Call.ID != "kept" {
		t.Fatalf("list: %v, err %v", items, err)
	}
	left, err := rdb.ZRange(ctx, "ringer:{u:alice}:calls", 0, -1).Result()
	if err != nil || len(left) != 1 || left[0] != calls.CID("default", "kept") {
		t.Fatalf("alice's call list holds %v (err %v), want only the call that exists", left, err)
	}
	if ttl, err := rdb.PTTL(ctx, "ringer:{u:alice}:calls").Result(); err != nil || ttl <= 0 {
		t.Fatalf("alice's call list lives %v (err %v), want a lifetime", ttl, err)
	}
}

func TestARefusedRingStoresNothing(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	q := queue.NewClient(rdb)
	s := calls.New(rdb, q, nil)
	m := calls.NewMetrics(nil)
	s.SetMetrics(m)
	ctx := context.Background()
	// A ring queue that nobody serves: its first pending task ages past the budget.
	ring(t, s, "first", "bob")
	adm := queue.NewAdmission(q, 10*time.Millisecond)
	s.SetRingAdmission(adm)
	deadline := time.Now().Add(5 * time.Second)
	for adm.AdmitRing(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the admission never saw the ring queue's backlog")
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	_, _, err := s.GetOrCreate(ctx, alice, "default", "refused", calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "carol"}}})
	var over *queue.OverloadedError
	if !errors.As(err, &over) || over.RetryAfter < time.Second {
		t.Fatalf("create with ring over a stale ring queue: %v, want an OverloadedError with Retry-After", err)
	}
	if n, err := rdb.Exists(ctx, gate.CallKey(calls.CID("default", "refused"), "call")).Result(); err != nil || n != 0 {
		t.Fatalf("the refused call was stored (exists=%d, err %v)", n, err)
	}
	if _, err := s.Ring(ctx, alice, "default", "first", []string{"bob"}); !errors.Is(err, queue.ErrOverloaded) {
		t.Fatalf("ring of an existing call over a stale ring queue: %v, want overloaded", err)
	}
	if got := testutil.ToFloat64(m.Refused); got < 2 {
		t.Fatalf("ringer_rings_refused_total = %v, want at least 2", got)
	}
	// A call without a ring is not refused.
	if _, _, err := s.GetOrCreate(ctx, alice, "default", "quiet", calls.CreateRequest{}); err != nil {
		t.Fatalf("create without ring: %v", err)
	}
	in := asynq.NewInspectorFromRedisClient(rdb)
	info, err := in.GetQueueInfo(queue.QueueRing)
	if err != nil {
		t.Fatal(err)
	}
	backlog, err := q.RingBacklog(ctx)
	if err != nil || backlog < info.Latency-time.Second || backlog > info.Latency+time.Second {
		t.Fatalf("RingBacklog %v (err %v), Asynq's own latency %v", backlog, err, info.Latency)
	}
}
