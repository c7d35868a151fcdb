//go:build !race

package browser

import "time"

// ringPrompt is how soon after alice's click ringBob expects both pages to show the ring and bob's device to
// have its push: within a second, as a user would expect a phone to ring.
const ringPrompt = time.Second
