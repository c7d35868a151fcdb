package worker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
)

// runningRingTask runs a ring-side task through track until the returned func is called.
func runningRingTask(t *testing.T, r *ringFirst) (finish func()) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	go (&ringTasks{report: []func(bool){r.setHere}}).track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
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
	r := newRingFirst(64, true)
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
	r := newRingFirst(1, true)
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
	r := newRingFirst(64, true)
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
	r := newRingFirst(1, true)
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
	r := newRingFirst(8, true)
	r.recentWaitLong() // the first read sets the baseline
	if r.lastCount == nil {
		t.Fatal("/sched/latencies:seconds was not read")
	}
}

// The notify child gives way to its parent's ring tasks as it does to its own: the parent's news arrives on
// RingsElsewhere, and the pushes it held go out when the parent has no ring work left or is gone.
func TestNotificationsGiveWayWhileAnotherProcessRunsRingsAndResumeWhenItStopsOrIsGone(t *testing.T) {
	w := &Worker{cfg: Config{Metrics: NewMetrics(nil)}, ringFirst: newRingFirst(64, false)}
	r := w.ringFirst
	elsewhere := make(chan bool)
	done := make(chan struct{})
	go func() {
		w.followRingsElsewhere(elsewhere)
		close(done)
	}()

	elsewhere <- true
	waitFor(t, r, func() bool { return r.elsewhere })
	got := admitInOrder(t, r, 10)
	if !held(r, func() bool { return r.inFlight == ringFirstFloor && len(r.waiters) == 10-ringFirstFloor }) {
		t.Fatalf("while the other process ran rings: %d admitted, %d waiting; want the floor, %d, and the rest",
			r.inFlight, len(r.waiters), ringFirstFloor)
	}
	elsewhere <- false
	for want := range 10 {
		select {
		case g := <-got:
			g.release()
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 10 pushes admitted after the other process's rings ended", want)
		}
	}

	elsewhere <- true
	waitFor(t, r, func() bool { return r.elsewhere })
	close(elsewhere) // the parent is gone: nothing to give way to
	<-done
	if held(r, func() bool { return r.elsewhere }) {
		t.Fatal("still giving way after the other process was gone")
	}
	if n := testutil.ToFloat64(w.cfg.Metrics.RingsElsewhere); n != 2 {
		t.Fatalf("ringer_notify_gave_way_total %v; want 2, one for each time the other process began ring work", n)
	}
}

// A worker reports when its first ring-side task starts and when its last ends, not every task.
func TestRingWorkIsReportedWhenTheFirstRingTaskStartsAndTheLastEnds(t *testing.T) {
	var mu sync.Mutex
	var reports []bool
	rep := &ringTasks{report: []func(bool){func(busy bool) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, busy)
	}}}
	started, finish := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			_ = rep.track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
				started <- struct{}{}
				<-finish
				return nil
			})).ProcessTask(context.Background(), asynq.NewTask(queue.TypeRing, nil))
		})
	}
	for range 3 {
		<-started
	}
	mu.Lock()
	during := slices.Clone(reports)
	mu.Unlock()
	close(finish)
	wg.Wait()
	if !slices.Equal(during, []bool{true}) || !slices.Equal(reports, []bool{true, false}) {
		t.Fatalf("reports while three ring tasks ran %v, after %v; want [true] and [true false]", during, reports)
	}
}

// New wires the admission by what the worker serves: rings and notifications, or notifications beside another
// process's rings (without following the scheduler: a niced child waits for cores by design), or rings that
// another process's notifications give way to.
func TestAWorkerGivesWayOrReportsRingWorkByWhatItServes(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	base := Config{Redis: rdb, Devices: devices.New(rdb), Templates: tmpl, FCM: &fakeSender{}, APNs: &fakeSender{},
		Calls: noCalls{}, Queue: queue.NewClient(rdb)}
	for _, c := range []struct {
		name            string
		change          func(*Config)
		admits, follows bool
		listeners       int // told of this worker's ring tasks: its own admission, Config.RingWork
	}{
		{"both queues", func(*Config) {}, true, true, 1},
		{"the notify child", func(c *Config) { c.SkipRing, c.RingsElsewhere = true, make(chan bool) }, true, false, 0},
		{"the child's parent", func(c *Config) { c.SkipNotify, c.RingWork = true, func(bool) {} }, false, false, 1},
		{"notifications alone", func(c *Config) { c.SkipRing = true }, false, false, 0},
	} {
		cfg := base
		c.change(&cfg)
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if admits := w.ringFirst != nil; admits != c.admits || (admits && w.ringFirst.followScheduler != c.follows) {
			t.Errorf("%s: admission %v (following the scheduler %v); want %v (%v)", c.name, admits, admits && w.ringFirst.followScheduler, c.admits, c.follows)
		}
		listeners := 0
		if w.ringTasks != nil {
			listeners = len(w.ringTasks.report)
		}
		if listeners != c.listeners {
			t.Errorf("%s: %d told of its ring tasks; want %d", c.name, listeners, c.listeners)
		}
	}
}
