package ops

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/tests/harness"
)

// startCluster runs a local Redis Cluster of three masters on free loopback ports (each with its cluster bus
// port, +10000, free too), joined by redis-cli --cluster create, and returns their addresses once every node
// says cluster_state:ok. The nodes stop when the test ends.
func startCluster(t *testing.T) []string {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (apt-get install redis-server): %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found (apt-get install redis-tools): %v", err)
	}
	var addrs []string
	for i := range 3 {
		port := clusterPort(t)
		dir := t.TempDir()
		cmd := exec.Command(server, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
			"--logfile", filepath.Join(dir, "redis.log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("start cluster node %d: %v", i, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				if b, err := os.ReadFile(filepath.Join(dir, "redis.log")); err == nil {
					t.Logf("cluster node %d log (tail):\n%s", port, harness.Tail(string(b), 15))
				}
			}
		})
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		c := redis.NewClient(&redis.Options{Addr: addr})
		harness.Eventually(t, 10*time.Second, "cluster node "+addr+" to answer", func() bool {
			return c.Ping(context.Background()).Err() == nil
		})
		c.Close()
		addrs = append(addrs, addr)
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		harness.Eventually(t, 30*time.Second, "cluster_state:ok on "+a, func() bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		c.Close()
	}
	return addrs
}

// clusterPort is a free loopback port whose cluster bus port (+10000) is free as well.
func clusterPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

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
	addrs := startCluster(t)
	e := harness.Start(t, harness.Options{Env: []string{
		"REDIS_URL=", "REDIS_CLUSTER_ADDRS=" + strings.Join(addrs, ","),
		"RINGER_DASHBOARD_USER=" + dashUser, "RINGER_DASHBOARD_PASSWORD=" + dashPassword,
	}})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { cc.Close() })
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
