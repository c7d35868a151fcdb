package devices_test

import (
	"context"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// A token's owner key has no lifetime of its own: it must go when its device goes, or Redis keeps one key
// per token ever registered.
func TestAnOwnerKeyGoesWithItsDevice(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	r := devices.New(rdb)
	ctx := context.Background()
	owners := func() []string {
		t.Helper()
		keys, err := rdb.Keys(ctx, "ringer:{t:*}:owner").Result()
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	register(t, r, devices.Device{ID: "fcm-deleted", UserID: "alice", PushProvider: devices.Firebase})
	register(t, r, devices.Device{ID: "fcm-pruned", UserID: "alice", PushProvider: devices.Firebase})
	register(t, r, devices.Device{ID: "fcm-moved", UserID: "alice", PushProvider: devices.Firebase})
	register(t, r, devices.Device{ID: "fcm-moved", UserID: "bob", PushProvider: devices.Firebase})
	if n := len(owners()); n != 3 {
		t.Fatalf("%d owner keys for 3 tokens", n)
	}
	if err := r.Delete(ctx, "alice", "fcm-deleted"); err != nil {
		t.Fatal(err)
	}
	if pruned, err := r.Prune(ctx, "alice", "fcm-pruned", time.Time{}); err != nil || !pruned {
		t.Fatalf("prune: %v %v", pruned, err)
	}
	if err := r.Delete(ctx, "bob", "fcm-moved"); err != nil {
		t.Fatal(err)
	}
	if left := owners(); len(left) != 0 {
		t.Fatalf("owner keys left after every device went: %v", left)
	}
}
