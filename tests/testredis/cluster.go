package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a local Redis Cluster of masters only, owned by one test.
type Cluster struct {
	Nodes []*Server // one a master, in the order they were started
}

// Addrs are the masters' host:port addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Client returns a cluster client closed at the test's end.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// StartCluster runs a Redis Cluster of masters (at least 3, as redis-cli --cluster create asks) with no
// replicas on free loopback ports, each with its cluster bus port (+10000) free too, and returns it once every
// node says cluster_state:ok. The nodes stop when the test ends; a failed test logs the tail of each node's log.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("a Redis Cluster needs 3 masters or more, not %d", masters)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found on PATH (apt-get install redis-server): %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found on PATH (apt-get install redis-tools): %v", err)
	}
	c := &Cluster{}
	for range masters {
		// nodes.conf is relative to the node's --dir, its own folder.
		n := startOn(t, bin, clusterPort, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000")
		t.Cleanup(func() {
			n.Stop()
			if t.Failed() {
				if b, err := os.ReadFile(filepath.Join(n.Dir, "redis.log")); err == nil {
					t.Logf("cluster node %s log (tail):\n%s", n.Addr, tail(string(b), 15))
				}
			}
		})
		c.Nodes = append(c.Nodes, n)
	}
	args := append(append([]string{"--cluster", "create"}, c.Addrs()...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		if err := clusterOK(n.Addr, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// clusterOK waits until the node at addr says cluster_state:ok.
func clusterOK(addr string, d time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		info, err := c.ClusterInfo(context.Background()).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster node %s not ok after %s: %q, %v", addr, d, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterPort is a free loopback port whose cluster bus port (+10000) is free as well.
func clusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := FreePort(t)
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port+10000)))
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
