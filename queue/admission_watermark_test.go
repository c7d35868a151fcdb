package queue

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/testredis"
)

// Once the admission refuses, it lets rings in again only when the backlog is down to half the budget, so the
// queue drains instead of sitting at the budget with every accepted ring waiting all of it.
func TestAdmissionRefusingAdmitsAgainOnlyBelowHalfTheBudget(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	ctx := context.Background()
	c := NewClient(rdb)
	if err := c.EnqueueRing(ctx, CallInfo{CID: "default:wm"}, "r1", []RingMember{{UserID: "bob", EndsAt: time.Now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	adm := NewAdmission(c, 2*time.Second)
	adm.fresh = 0 // read the backlog on every ask
	// waited sets how long the one pending ring push has waited, through the field Asynq keeps it in.
	waited := func(d time.Duration) {
		t.Helper()
		key := asynqTaskKeyPrefix(QueueRing) + RingTaskID("r1", "bob")
		if err := rdb.HSet(ctx, key, "pending_since", strconv.FormatInt(time.Now().Add(-d).UnixNano(), 10)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		waited time.Duration
		admit  bool
	}{
		{1500 * time.Millisecond, true},  // under the budget
		{3 * time.Second, false},         // past it: refuse
		{1500 * time.Millisecond, false}, // back under the budget, not under half of it: still refuse
		{500 * time.Millisecond, true},   // under half: admit
		{1500 * time.Millisecond, true},  // and keep admitting up to the budget
	} {
		waited(step.waited)
		if err := adm.AdmitRing(ctx); (err == nil) != step.admit {
			t.Fatalf("backlog %v: admission answered %v, want admitted=%v", step.waited, err, step.admit)
		}
	}
}
