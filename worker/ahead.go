package worker

import (
	"context"

	"github.com/ringer-dev/ringer/devices"
)

// Reads a handler starts before the round trip it waits for, so that independent Redis reads share one wait:
// on a ring's way to the phone every round trip counts.

// ahead is a value read ahead, or the error that read it.
type ahead[T any] struct {
	v   T
	err error
}

// readAhead runs read in a goroutine of its own and answers on the channel. The channel has room for the
// answer, so a handler that returns without taking it leaves nothing blocked.
func readAhead[T any](read func() (T, error)) <-chan ahead[T] {
	ch := make(chan ahead[T], 1)
	go func() {
		v, err := read()
		ch <- ahead[T]{v, err}
	}()
	return ch
}

// userTargets reads member's devices and push preferences.
func (w *Worker) userTargets(ctx context.Context, member string) (devices.UserTargets, error) {
	devs, prefs, err := w.cfg.Devices.Targets(ctx, member)
	return devices.UserTargets{Devices: devs, Preferences: prefs}, err
}

// readTargets reads member's devices and push preferences ahead.
func (w *Worker) readTargets(ctx context.Context, member string) <-chan ahead[devices.UserTargets] {
	return readAhead(func() (devices.UserTargets, error) { return w.userTargets(ctx, member) })
}

// targetsOf is member's devices and push preferences as read ahead, or read now when nothing was (a nil
// channel) or that read failed.
func (w *Worker) targetsOf(ctx context.Context, member string, read <-chan ahead[devices.UserTargets]) (devices.UserTargets, error) {
	if read != nil {
		if r := <-read; r.err == nil {
			return r.v, nil
		}
	}
	return w.userTargets(ctx, member)
}

// known is what a ring handler read ahead for its first try: the member's targets (nil: read them) and its
// push's ledger (nil: read it).
type known struct {
	targets <-chan ahead[devices.UserTargets]
	reached map[string]bool
}

// tokenSet is a ledger's tokens as a set; never nil, so that an empty ledger read ahead is not read again.
func tokenSet(tokens []string) map[string]bool {
	set := make(map[string]bool, len(tokens))
	for _, tok := range tokens {
		set[tok] = true
	}
	return set
}
