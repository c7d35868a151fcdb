package harness

import (
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
