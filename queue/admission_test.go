package queue_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
)

func TestAdmissionRefusesRingsOnceTheOldestPendingRingPushWaitedPastTheBudget(t *testing.T) {
	c, rdb := newClient(t)
	ctx := context.Background()
	if b, err := c.RingBacklog(ctx); err != nil || b != 0 {
		t.Fatalf("backlog of an empty ring queue: %v, %v", b, err)
	}
	adm := queue.NewAdmission(c, 20*time.Millisecond)
	if err := adm.AdmitRing(ctx); err != nil {
		t.Fatalf("an empty ring queue refuses: %v", err)
	}
	// Nobody serves the queue: the ring push waits, and its wait passes the budget.
	call := queue.CallInfo{CID: "default:adm"}
	if err := c.EnqueueRing(ctx, call, "r1", []queue.RingMember{{UserID: "bob", EndsAt: time.Now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err = adm.AdmitRing(ctx); err == nil; err = adm.AdmitRing(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("the admission never refused while a ring push waited past the budget")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	var over *queue.OverloadedError
	if !errors.As(err, &over) || !errors.Is(err, queue.ErrOverloaded) || over.RetryAfter < time.Second || over.Backlog <= over.Budget {
		t.Fatalf("refusal %#v (%v), want an OverloadedError with a whole-second Retry-After", err, err)
	}
	info, ierr := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(queue.QueueRing)
	if ierr != nil {
		t.Fatal(ierr)
	}
	if b, berr := c.RingBacklog(ctx); berr != nil || (b-info.Latency).Abs() > time.Second {
		t.Fatalf("RingBacklog %v (%v), Asynq's own Latency %v", b, berr, info.Latency)
	}

	// The queue drains: once the reading is stale, rings are let in again.
	if err := asynq.NewInspectorFromRedisClient(rdb).DeleteTask(queue.QueueRing, queue.RingTaskID("r1", "bob")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for adm.AdmitRing(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the admission still refuses after the ring queue drained")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// The check stands in front of every ring request, so it must cost a request nothing but a lock: Redis is
// asked at most once per AdmissionFreshness, however many requests ask.
func TestAdmissionReadsTheBacklogAtMostOncePerFreshness(t *testing.T) {
	c, rdb := newClient(t)
	ctx := context.Background()
	adm := queue.NewAdmission(c, time.Second)
	scripts := func() int64 {
		t.Helper()
		info, err := rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if i := strings.Index(info, cmd); i >= 0 {
				v, _, _ := strings.Cut(info[i+len(cmd):], ",")
				c, _ := strconv.ParseInt(v, 10, 64)
				n += c
			}
		}
		return n
	}
	before := scripts()
	start := time.Now()
	const asks = 2000
	for range asks {
		if err := adm.AdmitRing(ctx); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	reads := scripts() - before
	if most := int64(took/queue.AdmissionFreshness) + 2; reads > most {
		t.Fatalf("%d asks in %v read the backlog %d times, want at most %d", asks, took, reads, most)
	}
}

// Once the admission refuses, it lets rings in again only when the backlog is down to half the budget, so the
// queue drains instead of sitting at the budget with every accepted ring waiting all of it.
func TestAdmissionRefusingAdmitsAgainOnlyBelowHalfTheBudget(t *testing.T) {
	c, rdb := newClient(t)
	ctx := context.Background()
	if err := c.EnqueueRing(ctx, queue.CallInfo{CID: "default:wm"}, "r1", []queue.RingMember{{UserID: "bob", EndsAt: time.Now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	adm := queue.NewAdmission(c, 2*time.Second)
	adm.SetFreshness(0) // read the backlog on every ask
	// waited sets how long the one pending ring push has waited, through the field Asynq keeps it in.
	waited := func(d time.Duration) {
		t.Helper()
		key := queue.AsynqTaskKey(queue.QueueRing, queue.RingTaskID("r1", "bob"))
		if err := rdb.HSet(ctx, key, "pending_since", strconv.FormatInt(time.Now().Add(-d).UnixNano(), 10)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		waited time.Duration
		admit  bool
		// atOnce: the first ask answers it. A stale reading that admits is answered while the next is read
		// beside the request, so a turn to refusing shows an ask later; a refusal is always read again first.
		atOnce bool
	}{
		{1500 * time.Millisecond, true, true},  // under the budget (the first reading is taken before answering)
		{3 * time.Second, false, false},        // past it: refuse, once the reading beside the last ask is in
		{1500 * time.Millisecond, false, true}, // back under the budget, not under half of it: still refuse
		{500 * time.Millisecond, true, true},   // under half: admit
		{1500 * time.Millisecond, true, true},  // and keep admitting up to the budget
		{1500 * time.Millisecond, true, true},  // (a second ask: the reading beside the first one admits too)
		{3 * time.Second, false, false},        // past it again
		{1800 * time.Millisecond, false, true}, // still refusing
	} {
		waited(step.waited)
		err := adm.AdmitRing(ctx)
		for deadline := time.Now().Add(5 * time.Second); !step.atOnce && (err == nil) != step.admit; err = adm.AdmitRing(ctx) {
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond) // poll interval
		}
		if (err == nil) != step.admit {
			t.Fatalf("backlog %v: admission answered %v, want admitted=%v", step.waited, err, step.admit)
		}
	}
}
