package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
)

func TestTheWatchTicksEverySecondOnlyWhileAPushIsUndelivered(t *testing.T) {
	const tick = 1_800_000_000 // a tick number: its time is tick × WatchInterval
	tickAt := time.UnixMilli(tick * queue.WatchInterval.Milliseconds())
	soon, later := tickAt.Add(20*time.Second), tickAt.Add(45*time.Second)
	live := []queue.RingMember{{UserID: "b", EndsAt: later}, {UserID: "c", EndsAt: soon}}
	for _, c := range []struct {
		name      string
		live      []queue.RingMember
		delivered []bool
		want      time.Time
	}{
		{"a push undelivered: the next tick", live, []bool{true, false}, tickAt},
		{"the delivered set not read: the next tick", live, nil, tickAt},
		{"every push delivered: the earliest end", live, []bool{true, true}, soon.Add(-time.Millisecond)},
		{"every push delivered, an end already passed: the next tick", []queue.RingMember{{UserID: "b", EndsAt: tickAt.Add(-time.Second)}}, []bool{true}, tickAt},
		{"no live member: the next tick", nil, nil, tickAt},
	} {
		if got := nextWatch(tick, c.live, c.delivered); !got.Equal(c.want) {
			t.Errorf("%s: next watch after %s, want after %s", c.name, got.Sub(tickAt), c.want.Sub(tickAt))
		}
	}
}

// The ring's first tick runs while its pushes are in flight, and its worker may die in it: it schedules the
// next tick before it reads anything, so the watch goes on without it. Later ticks schedule theirs from what
// they read (a ring over needs none).
func TestTheFirstTickSchedulesTheNextBeforeItReadsTheRing(t *testing.T) {
	r := newRig(t)
	in := asynq.NewInspectorFromRedisClient(r.rdb)
	const tick = 1_800_000_000
	for _, first := range []bool{false, true} {
		ringID := fmt.Sprintf("over-%v", first)
		tk := task(t, queue.TypeWatch, queue.WatchTask{Call: testCall, RingID: ringID, Tick: tick, First: first})
		if err := r.w.HandleWatch(context.Background(), tk); err != nil {
			t.Fatalf("first=%v: %v", first, err)
		}
		ids := scheduledWatchIDs(t, in)
		want := queue.WatchTaskID(ringID, tick+1)
		if got := slices.Contains(ids, want); got != first {
			t.Errorf("first=%v: next tick scheduled %v (scheduled: %v)", first, got, ids)
		}
	}
}

// While a push is undelivered a tick keeps two ticks ahead, so that a worker dying inside the next one, before
// it scheduled its own next, does not end the watch; once every push is delivered, only the tick at the
// earliest ring end follows.
func TestATickKeepsTwoTicksAheadWhileAPushIsUndelivered(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	in := asynq.NewInspectorFromRedisClient(r.rdb)
	g := gate.New(r.rdb)
	call := queue.CallInfo{CID: "default:two-ahead"}
	const ringID = "two-ahead"
	ends := time.Now().Add(time.Minute)
	if err := g.Open(ctx, call.CID, ringID, time.Minute, []gate.Member{{ID: "bob", EndsAt: ends}, {ID: "carol", EndsAt: ends}}); err != nil {
		t.Fatal(err)
	}
	deliver := func(member string) {
		adm, lease, err := g.Admit(ctx, call.CID, ringID, member, queue.RingTaskID(ringID, member), time.Now())
		if err != nil || adm != gate.Admitted {
			t.Fatalf("admit %s: %v %v", member, adm, err)
		}
		if err := lease.Release(ctx, true, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// Ticks of their own, well before the ring's end and apart from any the ring scheduled.
	tick := time.Now().UnixMilli()/queue.WatchInterval.Milliseconds() + 10
	run := func(tick int64) {
		if err := r.w.HandleWatch(ctx, task(t, queue.TypeWatch, queue.WatchTask{Call: call, RingID: ringID, Tick: tick})); err != nil {
			t.Fatal(err)
		}
	}

	deliver("carol")
	run(tick)
	ids := scheduledWatchIDs(t, in)
	for _, want := range []int64{tick + 1, tick + 2} {
		if !slices.Contains(ids, queue.WatchTaskID(ringID, want)) {
			t.Errorf("with bob's push undelivered, tick %d was not scheduled (scheduled: %v)", want-tick, ids)
		}
	}

	deliver("bob")
	run(tick + 2)
	ids = scheduledWatchIDs(t, in)
	if slices.Contains(ids, queue.WatchTaskID(ringID, tick+3)) || slices.Contains(ids, queue.WatchTaskID(ringID, tick+4)) {
		t.Errorf("with every push delivered, the tick after was scheduled (scheduled: %v); want only the one at the ring's end", ids)
	}
	if end := ends.Add(-time.Millisecond).UnixMilli()/queue.WatchInterval.Milliseconds() + 1; !slices.Contains(ids, queue.WatchTaskID(ringID, end)) {
		t.Errorf("with every push delivered, the tick at the ring's end (%d) was not scheduled (scheduled: %v)", end, ids)
	}
}

// scheduledWatchIDs is the ids of the watch ticks scheduled in the watch queue.
func scheduledWatchIDs(t *testing.T, in *asynq.Inspector) []string {
	t.Helper()
	scheduled, err := in.ListScheduledTasks(queue.QueueWatch)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	var ids []string
	for _, ti := range scheduled {
		ids = append(ids, ti.ID)
	}
	return ids
}
