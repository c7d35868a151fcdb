//go:build race

package browser

import "time"

// ringPrompt is how soon after alice's click ringBob expects both pages to show the ring and bob's device to
// have its push. Under the race detector ringer runs as an instrumented binary, several times slower, on two
// cores with Chromium and the other parallel tests, and a ring has taken 1.2 s there: the product's second is
// for the binary users run (race_off_test.go).
const ringPrompt = 3 * time.Second
