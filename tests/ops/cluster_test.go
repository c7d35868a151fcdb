package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// clusterEnv is a ringer on a Redis Cluster: pushes are awaited against the cluster's queues (the harness's
// own Quiet watches the standalone Redis it started, which this ringer does not use).
type clusterEnv struct {
	*harness.Env
	t  *testing.T
	cc *redis.ClusterClient
	in *asynq.Inspector
}

// fcm waits until token got exactly the push types want, in order, with the queues drained.
func (c *clusterEnv) fcm(token string, want ...string) {
	c.t.Helper()
	harness.Eventually(c.t, 30*time.Second, fmt.Sprintf("%d FCM pushes to %s", len(want), token), func() bool {
		return len(c.FCM.MessagesTo(token)) >= len(want)
	})
	harness.QuietWithin(c.t, c.in, 30*time.Second)
	if got := c.FCMTypes(token); !slices.Equal(got, want) {
		c.t.Fatalf("FCM %s got %v, want %v", token, got, want)
	}
}

// apns is fcm for an APNs token named name.
func (c *clusterEnv) apns(name string, want ...string) {
	c.t.Helper()
	token := harness.APNsToken(name)
	harness.Eventually(c.t, 30*time.Second, fmt.Sprintf("%d APNs pushes to %s", len(want), name), func() bool {
		return len(c.APNs.NotificationsTo(token)) >= len(want)
	})
	harness.QuietWithin(c.t, c.in, 30*time.Second)
	if got := c.APNsTypes(token); !slices.Equal(got, want) {
		c.t.Fatalf("APNs %s got %v, want %v", name, got, want)
	}
}

func (c *clusterEnv) call(id string, r harness.Resp) map[string]any {
	c.t.Helper()
	call, ok := r.Body["call"].(map[string]any)
	if !ok {
		c.t.Fatalf("call %s: answer has no call: %s", id, r.Raw)
	}
	return call
}

func TestTheRingRulesHoldOnARedisCluster(t *testing.T) {
	t.Parallel()
	cluster := testredis.StartCluster(t, 3)
	addrs := cluster.Addrs()
	e := harness.Start(t, harness.Options{Env: []string{
		"REDIS_URL=", "REDIS_CLUSTER_ADDRS=" + strings.Join(addrs, ","),
		"RINGER_DASHBOARD_USER=" + dashUser, "RINGER_DASHBOARD_PASSWORD=" + dashPassword,
	}})
	cc := cluster.Client(t)
	c := &clusterEnv{Env: e, t: t, cc: cc, in: asynq.NewInspectorFromRedisClient(cc)}

	// The standalone Redis the harness started is not used: ringer's keys are on the cluster.
	if n, err := e.RDB.DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Fatalf("the standalone Redis holds %d keys (err %v): ringer did not use the cluster", n, err)
	}

	alice := e.Token("alice")
	ring := func(id string, autoMs int, callees ...string) map[string]any {
		t.Helper()
		return c.call(id, e.MustCall(201, "POST", "/v1/call/default/"+id, alice, ringBody(callees, autoMs)))
	}

	// Ring, then accept: the callee's other devices stop, the caller joins. Events cross the cluster.
	e.AndroidAndVoIP("bob", "bob")
	e.Device("bob", harness.APNsToken("bob-iphone"), "apn", false)
	events := e.Events(e.Token("bob"), "")
	ring("cl-accept", 0, "bob")
	if evs, ok := events.Until("call.ring", 10*time.Second); !ok {
		t.Errorf("bob's event stream got no call.ring over the cluster: %v", names(evs))
	}
	c.fcm("bob-android", "call.ring")
	c.apns("bob-voip", "call.ring")
	c.apns("bob-iphone")
	call := c.call("cl-accept", e.MustCall(200, "POST", "/v1/call/default/cl-accept/accept", e.Token("bob"), nil))
	c.fcm("bob-android", "call.ring", "call.accepted")
	c.apns("bob-iphone", "call.accepted")
	c.apns("bob-voip", "call.ring")
	if ps := fmt.Sprint(call["session"].(map[string]any)["participants"]); !strings.Contains(ps, "alice") {
		t.Errorf("the caller did not join on the first accept: participants %s", ps)
	}
	if r := e.MustCall(200, "GET", "/v1/calls", e.Token("bob"), nil); !strings.Contains(string(r.Raw), "default:cl-accept") {
		t.Errorf("GET /v1/calls of bob does not list the call: %s", r.Raw)
	}

	// Reject: the rejecting callee stops alone; when every callee rejected, the call ends.
	e.Android("carol", "dave")
	ring("cl-reject", 0, "carol", "dave")
	c.fcm("carol-android", "call.ring")
	c.fcm("dave-android", "call.ring")
	e.MustCall(200, "POST", "/v1/call/default/cl-reject/reject", e.Token("carol"), map[string]any{"reason": "decline"})
	c.fcm("carol-android", "call.ring", "call.rejected")
	c.fcm("dave-android", "call.ring")
	call = c.call("cl-reject", e.MustCall(200, "POST", "/v1/call/default/cl-reject/reject", e.Token("dave"), map[string]any{"reason": "busy"}))
	c.fcm("dave-android", "call.ring", "call.rejected")
	if call["ended_at"] == nil {
		t.Errorf("every callee rejected and the call did not end: %v", call)
	}

	// Cancel: the caller gives up; the callee's missed-call push is its stop.
	e.Android("erin")
	ring("cl-cancel", 0, "erin")
	c.fcm("erin-android", "call.ring")
	e.MustCall(200, "POST", "/v1/call/default/cl-cancel/reject", alice, map[string]any{"reason": "cancel"})
	c.fcm("erin-android", "call.ring", "call.missed")

	// Timeout: nobody answers in a second; the ring ends with a missed-call push and the call ends.
	e.Android("frank")
	ring("cl-timeout", 1000, "frank")
	c.fcm("frank-android", "call.ring", "call.missed")
	harness.Eventually(t, 10*time.Second, "the timed-out call to end", func() bool {
		r := e.MustCall(200, "GET", "/v1/call/default/cl-timeout", alice, nil)
		return c.call("cl-timeout", r)["ended_at"] != nil
	})

	// Notify: one regular push.
	e.Android("gina")
	e.MustCall(201, "POST", "/v1/call/default/cl-notify", alice, map[string]any{"notify": true, "data": map[string]any{"members": harness.MemberList("gina")}})
	c.fcm("gina-android", "call.notification")

	// The dashboard and the queue metrics read the cluster too.
	qs := dashQueues(t, e.URL)
	if qs["ring"].Completed == 0 || qs["notify"].Completed != 1 {
		t.Errorf("dashboard on the cluster: ring %+v, notify %+v", qs["ring"], qs["notify"])
	}
	m := harness.Scrape(t, e.URL)
	for _, q := range []string{"ring", "notify"} {
		if m.Get("ringer_queue_up", "queue", q) != 1 {
			t.Errorf("ringer_queue_up{queue=%q} on the cluster = %v, want 1", q, m.Get("ringer_queue_up", "queue", q))
		}
	}

	// The keys really are spread: ringer's keys live on more than one master.
	var holders atomic.Int32
	_ = cc.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		if keys, err := n.Keys(ctx, "ringer:*").Result(); err == nil && len(keys) > 0 {
			holders.Add(1)
		}
		return nil
	})
	if holders.Load() < 2 {
		t.Errorf("ringer's keys sit on %d master(s) of 3: the test did not spread over the cluster", holders.Load())
	}
}

// With RINGER_QUEUE_SHARDS at the master count, each of ringer's queues has a shard on every master of the
// cluster, rings and notifications spread over them, and each push still arrives once.
func TestShardedQueuesPutRingTrafficOnEveryMasterOfACluster(t *testing.T) {
	t.Parallel()
	cluster := testredis.StartCluster(t, 3)
	e := harness.Start(t, harness.Options{Env: []string{
		"REDIS_URL=", "REDIS_CLUSTER_ADDRS=" + strings.Join(cluster.Addrs(), ","), "RINGER_QUEUE_SHARDS=3",
	}})
	cc := cluster.Client(t)
	c := &clusterEnv{Env: e, t: t, cc: cc, in: asynq.NewInspectorFromRedisClient(cc)}
	alice := e.Token("alice")

	const callees, notified = 12, 250
	var rung []string
	for i := range callees {
		rung = append(rung, fmt.Sprintf("sc-callee-%d", i))
	}
	e.Android(rung...)
	e.MustCall(201, "POST", "/v1/call/default/sc-ring", alice, ringBody(rung, 0))
	for _, u := range rung {
		c.fcm(u+"-android", "call.ring")
	}
	e.MustCall(200, "POST", "/v1/call/default/sc-ring/reject", alice, map[string]any{"reason": "cancel"})
	for _, u := range rung {
		c.fcm(u+"-android", "call.ring", "call.missed")
	}
	var members []string
	for i := range notified {
		members = append(members, fmt.Sprintf("sc-member-%d", i))
	}
	e.Android(members...)
	e.MustCall(201, "POST", "/v1/call/default/sc-notify", alice, map[string]any{"notify": true, "data": map[string]any{"members": harness.MemberList(members...)}})
	for _, u := range members {
		c.fcm(u+"-android", "call.notification")
	}

	// Each queue has one shard on every master, and the ring's many tasks (rings, stops, timeouts, watchdog
	// ticks) reached every one of them. The three notification batches pick their shards by their ids, so
	// they need not cover all three.
	for _, base := range []string{"ring", "watch", "notify", "webhook"} {
		masters := map[string]bool{}
		for _, name := range queue.ShardNames(base, 3) {
			node, err := cc.MasterForKey(context.Background(), "asynq:{"+name+"}:pending")
			if err != nil {
				t.Fatal(err)
			}
			masters[node.Options().Addr] = true
		}
		if len(masters) != 3 {
			t.Errorf("the 3 shards of %s sit on %d master(s)", base, len(masters))
		}
	}
	var holders atomic.Int32
	_ = cc.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		if keys, err := n.Keys(ctx, "asynq:{ring*}:*").Result(); err == nil && len(keys) > 0 {
			holders.Add(1)
		}
		return nil
	})
	if holders.Load() != 3 {
		t.Errorf("the ring's tasks reached shards on %d master(s) of 3", holders.Load())
	}
	// /metrics reports each queue once, its shards summed: three notification batches, all done.
	m := harness.Scrape(t, e.URL)
	if got := m.Get("ringer_queue_tasks", "queue", "notify", "state", "completed"); got != 3 {
		t.Errorf("ringer_queue_tasks{queue=notify,state=completed} = %v, want the 3 batches of every shard", got)
	}
}
