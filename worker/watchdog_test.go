package worker

import (
	"testing"
	"time"

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
