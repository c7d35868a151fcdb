package gate_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/tests/testredis"
)

const cid = "default:gated"

func openFor(t *testing.T, g *gate.Gate, ringID string, members ...string) {
	t.Helper()
	ms := make([]gate.Member, len(members))
	for i, m := range members {
		ms[i] = gate.Member{ID: m, EndsAt: time.Now().Add(time.Minute)}
	}
	if err := g.Open(context.Background(), cid, ringID, time.Minute, ms); err != nil {
		t.Fatal(err)
	}
}

// pushID is a ring push's id, as queue.RingTaskID makes it (gate imports nothing of ringer's).
func pushID(ringID, member string) string { return "ring:" + ringID + ":" + member }

func admit(t *testing.T, g *gate.Gate, ringID, member string) (gate.Admission, *gate.Lease) {
	t.Helper()
	a, l, err := g.Admit(context.Background(), cid, ringID, member, pushID(ringID, member), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a, l
}

// bobBeingRung is a ring r1 of bob whose push a worker is sending: it holds the lease.
func bobBeingRung(t *testing.T) (*redis.Client, *gate.Gate, *gate.Lease) {
	t.Helper()
	rdb := testredis.Start(t).Client(t)
	g := gate.New(rdb)
	openFor(t, g, "r1", "bob")
	a, lease := admit(t, g, "r1", "bob")
	if a != gate.Admitted {
		t.Fatalf("bob's push: %v, want admitted", a)
	}
	return rdb, g, lease
}

func TestARingPushIsAdmittedOnceWhileItsMemberRingsAndNeverAfterItsDelivered(t *testing.T) {
	g := gate.New(testredis.Start(t).Client(t))
	ctx := context.Background()
	openFor(t, g, "r1", "bob", "carol")
	a, lease := admit(t, g, "r1", "bob")
	if a != gate.Admitted {
		t.Fatalf("first push: %v, want admitted", a)
	}
	if a, _ := admit(t, g, "r1", "bob"); a != gate.Held {
		t.Fatalf("a duplicate while the first is sent: %v, want held", a)
	}
	if err := lease.Release(ctx, true, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if a, _ := admit(t, g, "r1", "bob"); a != gate.Delivered {
		t.Fatalf("a duplicate after delivery: %v, want delivered", a)
	}
	if _, err := g.Close(ctx, cid, "r1", []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if a, _ := admit(t, g, "r1", "carol"); a != gate.Over {
		t.Fatalf("a push after its member stopped ringing: %v, want over", a)
	}
	if err := g.Open(ctx, cid, "r2", time.Minute, []gate.Member{{ID: "dave", EndsAt: time.Now().Add(time.Minute)}}); err != gate.ErrRingLive {
		t.Fatalf("a second ring while bob still rings: %v, want ErrRingLive", err)
	}
}

func TestEveryWaiterWakesWhenTheLeaseIsReleased(t *testing.T) {
	rdb, g, lease := bobBeingRung(t)
	ctx := context.Background()
	woke := make(chan bool, 2)
	for range 2 {
		go func() {
			idle, err := g.WaitIdle(ctx, cid, "r1", []string{"bob"}, time.Minute)
			if err != nil {
				t.Error(err)
			}
			woke <- idle
		}()
	}
	// Both block on the release signal before it is raised.
	for deadline := time.Now().Add(10 * time.Second); testredis.Clients(t, rdb, "blocked_clients") < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the waiters never blocked on the release signal")
		}
		time.Sleep(time.Millisecond)
	}
	if err := lease.Release(ctx, true, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if !<-woke {
			t.Fatal("a waiter gave up although the lease was released")
		}
	}
}

// A stop reads the ring's ledger with the wait for its lease: it must see what the push recorded before
// letting go, not what the ledger held when the wait began.
func TestAWaitThatReadsTheLedgerAnswersItAsTheReleasedLeaseLeftIt(t *testing.T) {
	rdb, g, lease := bobBeingRung(t)
	ctx := context.Background()
	type answer struct {
		idle   bool
		tokens []string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		idle, tokens, err := g.WaitIdleThenRead(ctx, cid, "r1", "bob", time.Minute, pushID("r1", "bob"))
		got <- answer{idle, tokens, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); testredis.Clients(t, rdb, "blocked_clients") < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never blocked on the release signal")
		}
		time.Sleep(time.Millisecond)
	}
	// The holder's push reached bob's phone, then it lets go.
	if err := rdb.SAdd(ctx, gate.LedgerKey(cid, pushID("r1", "bob")), "bob-phone").Err(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx, true, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a.err != nil || !a.idle || !slices.Equal(a.tokens, []string{"bob-phone"}) {
		t.Fatalf("idle %v, ledger %v, err %v; want idle with the device the push reached", a.idle, a.tokens, a.err)
	}
	// Nobody rings bob any more: the ledger is read at once.
	if idle, tokens, err := g.WaitIdleThenRead(ctx, cid, "r1", "bob", 0, pushID("r1", "bob")); err != nil || !idle || len(tokens) != 1 {
		t.Fatalf("idle %v, ledger %v, err %v", idle, tokens, err)
	}
}

func TestAWaitGivesUpAfterItsBoundWhileALiveWorkerHoldsTheLease(t *testing.T) {
	_, g, lease := bobBeingRung(t)
	stop := lease.KeepAlive(context.Background())
	defer stop()
	idle, err := g.WaitIdle(context.Background(), cid, "r1", []string{"bob"}, 100*time.Millisecond)
	if err != nil || idle {
		t.Fatalf("idle %v, err %v; want a wait that gives up", idle, err)
	}
}

func TestAPushWaitingForItsRetryHoldsNoWaiterButKeepsTheWatchdogAway(t *testing.T) {
	rdb, g, lease := bobBeingRung(t)
	ctx := context.Background()
	if len(lease.Reached) != 0 {
		t.Fatalf("a first admission's ledger: %v, want empty", lease.Reached)
	}
	// The first try reached one of bob's two devices, and the other asked for a retry.
	if err := rdb.SAdd(ctx, gate.LedgerKey(cid, pushID("r1", "bob")), "bob-phone").Err(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx, false, time.Minute, time.Minute); err != nil {
		t.Fatal(err)
	}
	if idle, err := g.WaitIdle(ctx, cid, "r1", []string{"bob"}, 0); err != nil || !idle {
		t.Fatalf("idle %v, err %v; want idle at once", idle, err)
	}
	v, err := g.Inspect(ctx, cid, "r1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !v.Current || len(v.Live) != 1 || !v.Live[0].Leased || v.Live[0].Delivered || v.Live[0].RungAt.IsZero() {
		t.Fatalf("view %+v: want bob live, leased, undelivered, with the time he was rung", v)
	}
	a, retry := admit(t, g, "r1", "bob")
	if a != gate.Admitted {
		t.Fatalf("the retry: %v, want admitted", a)
	}
	if !slices.Equal(retry.Reached, []string{"bob-phone"}) {
		t.Fatalf("the retry's ledger: %v, want the device the first try reached", retry.Reached)
	}
}

// A worker that dies holding the lease raises no signal: the waiter finds the lapsed lease by reading again.
func TestAWaiterSeesALeaseThatLapsedWithoutASignal(t *testing.T) {
	rdb, g, _ := bobBeingRung(t)
	ctx := context.Background()
	woke := make(chan bool, 1)
	go func() {
		idle, err := g.WaitIdle(ctx, cid, "r1", []string{"bob"}, time.Minute)
		if err != nil {
			t.Error(err)
		}
		woke <- idle
	}()
	if err := rdb.Del(ctx, gate.LeaseKey(cid, "r1", "bob")).Err(); err != nil {
		t.Fatal(err)
	}
	if !<-woke {
		t.Fatal("the waiter gave up on a lapsed lease")
	}
}

// A big call's notification batches keep their ledgers under hash tags of their own, so that on a Redis
// Cluster they are written on every master rather than all on the call's.
func TestBatchLedgersOfOneCallSpreadOverHashTags(t *testing.T) {
	tags := map[string]bool{}
	for i := range 100 {
		key := gate.BatchLedgerKey("default:big", fmt.Sprintf("notify:n1:%d", i))
		from, to := strings.Index(key, "{"), strings.Index(key, "}")
		if from < 0 || to < from {
			t.Fatalf("%s has no hash tag", key)
		}
		tags[key[from+1:to]] = true
	}
	if len(tags) != 100 {
		t.Fatalf("100 batch ledgers share %d hash tags, want one each", len(tags))
	}
	if strings.Contains(gate.LedgerKey("default:big", "ring:r1:bob"), "/") {
		t.Fatal("a ring's ledger left the call's hash tag: the gate scripts read it beside the call's keys")
	}
}
