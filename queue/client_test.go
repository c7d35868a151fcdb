package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// newClient is a queue.Client on a Redis of the test's own, and a client of that Redis to look at what the
// queue wrote.
func newClient(t *testing.T) (*queue.Client, *redis.Client) {
	t.Helper()
	rdb := testredis.Start(t).Client(t)
	return queue.NewClient(rdb), rdb
}

// A call service's ring gate is ringer's to keep: it lapses after the ring, not never.
func TestAnOutsideServicesRingGateLapsesAfterItsRing(t *testing.T) {
	c, rdb := newClient(t)
	ctx := context.Background()
	ends := time.Now().Add(time.Minute)
	call := queue.CallInfo{CID: "external:gate"}
	if err := c.Ring(ctx, call, "g1", []queue.RingMember{{UserID: "bob", EndsAt: ends}, {UserID: "carol", EndsAt: ends.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{gate.RingKey(call.CID), gate.RingingKey(call.CID)} {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl < 2*time.Minute || ttl > 2*time.Minute+queue.RingRetention {
			t.Errorf("%s lives %v (err %v), want past the last member's ring (2 min) by the task retention", k, ttl, err)
		}
	}
}
