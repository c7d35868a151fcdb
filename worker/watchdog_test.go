package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

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
		scheduled, err := in.ListScheduledTasks(queue.QueueWatch)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
		var ids []string
		for _, ti := range scheduled {
			ids = append(ids, ti.ID)
		}
		want := queue.WatchTaskID(ringID, tick+1)
		if got := slices.Contains(ids, want); got != first {
			t.Errorf("first=%v: next tick scheduled %v (scheduled: %v)", first, got, ids)
		}
	}
}
