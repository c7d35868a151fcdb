//go:build linux

package main

import (
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The slice reaches every thread of the process, and the threads the runtime starts afterwards inherit it;
// a slice of 0 gives every one of them the kernel's back.
func TestTheSchedulerSliceReachesEveryThreadAndThoseStartedAfter(t *testing.T) {
	const slice = 250 * time.Microsecond
	runWithSlice(t, slice)
	before, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	// More goroutines holding their threads while blocked than there are threads: the runtime must start new
	// ones.
	release := make(chan struct{})
	var started, done sync.WaitGroup
	for range len(before) + 2 {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	slices := threadSlices(t)
	close(release)
	done.Wait()
	fresh := len(slices)
	for _, tid := range before {
		if _, ok := slices[tid]; ok {
			fresh--
		}
	}
	if fresh == 0 {
		t.Fatalf("no thread started after the slice was set (%d before, %d after)", len(before), len(slices))
	}
	for tid, got := range slices {
		if got != slice {
			t.Errorf("thread %d runs with a slice of %v, want %v", tid, got, slice)
		}
	}

	if _, err := setSchedSlice(0); err != nil {
		t.Fatal(err)
	}
	for tid, got := range threadSlices(t) {
		if got == slice {
			t.Errorf("thread %d kept the slice of %v after the reset", tid, got)
		}
	}
}

// runWithSlice sets slice on every thread of the test process, gives the kernel's back when the test ends, and
// skips the test on a kernel that takes no slice.
func runWithSlice(t *testing.T, slice time.Duration) {
	t.Helper()
	took, err := setSchedSlice(slice)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := setSchedSlice(0); err != nil {
			t.Errorf("reset: %v", err)
		}
	})
	if !took {
		var u unix.Utsname
		_ = unix.Uname(&u)
		t.Skipf("kernel %s takes no slice of its own under SCHED_OTHER (Linux 6.12 or later does)", unix.ByteSliceToString(u.Release[:]))
	}
}

// threadSlices reads each thread's slice as the kernel reports it.
func threadSlices(t *testing.T) map[int]time.Duration {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // ended since the listing
		}
		out[tid] = time.Duration(attr.Runtime)
	}
	return out
}

// The notify child gives back the slice it inherits; RINGER_SCHED_SLICE=0 touches no thread, so a slice the
// process was started with stays.
func TestTheNotifyChildGivesTheSliceBackAndZeroTouchesNothing(t *testing.T) {
	const inherited = 300 * time.Microsecond
	runWithSlice(t, inherited)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	applySchedSlice(0, false, log)
	applySchedSlice(0, true, log)
	for tid, got := range threadSlices(t) {
		if got != inherited {
			t.Errorf("RINGER_SCHED_SLICE=0: thread %d runs with %v, want the %v it had", tid, got, inherited)
		}
	}

	applySchedSlice(100*time.Microsecond, true, log)
	for tid, got := range threadSlices(t) {
		if got == inherited || got == 100*time.Microsecond {
			t.Errorf("notify child: thread %d runs with %v, want the kernel's", tid, got)
		}
	}
}
