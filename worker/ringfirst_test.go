package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// runningRingTask runs a ring-side task through track until the returned func is called.
func runningRingTask(t *testing.T, r *ringFirst) (finish func()) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	go r.track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		close(started)
		<-done
		return nil
	})).ProcessTask(context.Background(), asynq.NewTask("ring", nil))
	<-started
	return func() { close(done) }
}

type grant struct {
	i       int
	release func()
}

// admitInOrder starts n admissions one after another, each once the one before is admitted or waiting, and
// sends each grant as it comes.
func admitInOrder(t *testing.T, r *ringFirst, n int) <-chan grant {
	t.Helper()
	got := make(chan grant, n)
	for i := range n {
		var before int
		held(r, func() bool { before = r.inFlight + len(r.waiters); return true })
		go func() {
			release, err := r.admit(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			got <- grant{i, release}
		}()
		waitFor(t, r, func() bool { return r.inFlight+len(r.waiters) == before+1 })
	}
	return got
}

func TestNotificationsGiveWayToTheFloorWhileARingRunsAndResumeInOrderAfterIt(t *testing.T) {
	r := newRingFirst(64)
	finish := runningRingTask(t, r)
	got := admitInOrder(t, r, 10)
	var inFlight, waiting int
	held(r, func() bool { inFlight, waiting = r.inFlight, len(r.waiters); return true })
	if inFlight != ringFirstFloor || waiting != 10-ringFirstFloor {
		t.Fatalf("%d notification pushes admitted and %d waiting while a ring ran; want the floor, %d, and the rest", inFlight, waiting, ringFirstFloor)
	}
	finish()
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < 10; {
		select {
		case <-got:
			n++
		case <-time.After(time.Until(deadline)):
			t.Fatalf("only %d of 10 pushes admitted after the ring ended", n)
		}
	}
}

func TestNotificationPushesAreAdmittedFirstComeFirstServed(t *testing.T) {
	r := newRingFirst(1)
	release, err := r.admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := admitInOrder(t, r, 5)
	for want := range 5 {
		release()
		g := <-got
		if g.i != want {
			t.Fatalf("push %d admitted in place %d", g.i, want)
		}
		release = g.release
	}
}

func held(r *ringFirst, cond func() bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return cond()
}

// waitFor polls cond, under r's lock, until it holds.
func waitFor(t *testing.T, r *ringFirst, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if held(r, cond) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

func TestTheNotificationLimitShrinksWhileCoresAreBusyAndGrowsBackWithinItsBounds(t *testing.T) {
	r := newRingFirst(64)
	for range 100 {
		r.adjustLocked(true)
	}
	if r.limit != ringFirstFloor {
		t.Fatalf("limit %d after long waits; want the floor %d", r.limit, ringFirstFloor)
	}
	for range 100 {
		r.adjustLocked(false)
	}
	if r.limit != 64 {
		t.Fatalf("limit %d after short waits; want the maximum 64", r.limit)
	}
}

func TestAPushWhoseTaskEndsWhileWaitingTakesNoSlot(t *testing.T) {
	r := newRingFirst(1)
	release, err := r.admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := r.admit(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("admit after its context ended: %v", err)
	}
	release()
	if _, err := r.admit(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight != 1 || len(r.waiters) != 0 {
		t.Fatalf("in flight %d, waiting %d; want 1 and 0", r.inFlight, len(r.waiters))
	}
}

func TestTheSchedulersWaitsAreRead(t *testing.T) {
	r := newRingFirst(8)
	r.recentWaitLong() // the first read sets the baseline
	if r.lastCount == nil {
		t.Fatal("/sched/latencies:seconds was not read")
	}
}
