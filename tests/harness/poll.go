package harness

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// The one way system tests and benchmarks wait for something to happen: poll a condition with a deadline,
// never sleep for success.

// Poll calls cond every interval until it holds, and reports whether it did before d passed. cond is called
// at least once, and once more at the deadline, so a condition that holds just in time counts.
func Poll(d, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

// Eventually polls cond every few milliseconds until it holds, failing the test after d with what it waited
// for.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, 5*time.Millisecond, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// ErrClosed is Await's answer when the channel closed before a value it waited for.
var ErrClosed = errors.New("closed")

// Await reads ch until stop holds for a value, and returns the values read, that one last. It returns an error
// when ch closes (ErrClosed) or d passes first, with what it read by then.
func Await[T any](ch <-chan T, d time.Duration, stop func(T) bool) ([]T, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var seen []T
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				return seen, ErrClosed
			}
			seen = append(seen, v)
			if stop(v) {
				return seen, nil
			}
		case <-deadline.C:
			return seen, fmt.Errorf("timed out after %s", d)
		}
	}
}
