//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// setSchedSlice asks the kernel to run every thread of this process with slice as its scheduler slice, or with
// the kernel's default when slice is 0, and says whether the kernel took it.
//
// Linux's fair scheduler (EEVDF, 6.6 and later) runs a waking thread ahead of one that is running once the
// waker's deadline, its eligible time plus its slice, comes first; since 6.12 a thread may ask for a slice of
// its own (sched_setattr's sched_runtime under SCHED_OTHER). A ring's way to the phone is a chain of short
// wake-ups, in the API, in the worker and on each side of every Redis round trip; on cores that a notification
// drain keeps busy, each waits up to a default slice for the running thread. A short slice lets them cut in.
// It changes no thread's share of the CPU, only how soon it gets it (BENCHMARKS.md has the rings measured).
//
// The attribute belongs to each thread, and a new thread inherits its creator's: every thread there is now is
// set, in passes, until a pass finds none it has not set (the Go runtime may start one from a thread not yet
// set while a pass runs). An earlier kernel takes the call and ignores the slice, which reads back as 0.
func setSchedSlice(slice time.Duration) (bool, error) {
	set := map[int]bool{}
	for range 10 {
		tids, err := threadIDs()
		if err != nil {
			return false, err
		}
		fresh := 0
		for _, tid := range tids {
			if set[tid] {
				continue
			}
			fresh++
			attr, err := unix.SchedGetAttr(tid, 0)
			if errors.Is(err, unix.ESRCH) { // the thread ended since the listing
				continue
			}
			if err != nil {
				return false, fmt.Errorf("sched_getattr of thread %d: %w", tid, err)
			}
			// Everything else as it was: the policy, and the niceness the notify child lowered itself to.
			attr.Runtime = uint64(slice.Nanoseconds())
			if err := unix.SchedSetAttr(tid, attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return false, fmt.Errorf("sched_setattr of thread %d: %w", tid, err)
			}
			set[tid] = true
		}
		if fresh == 0 {
			break
		}
	}
	if slice == 0 {
		return true, nil
	}
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return false, fmt.Errorf("sched_getattr: %w", err)
	}
	return attr.Runtime == uint64(slice.Nanoseconds()), nil
}

// threadIDs lists the threads of this process.
func threadIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
