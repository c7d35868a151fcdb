// Package fakepush is what the fake push services (tests/fakeapns, tests/fakefcm) share: the record of the
// pushes they delivered, by device token and in order; the answers a test scripts for a token; the per-token
// attempt counts; the added latency; and the connection count. Each fake keeps only its own wire protocol.
//
// A Recorder is generic over the push a fake records (fakeapns.Notification, fakefcm.Message) and the answer a
// test scripts (fakeapns.Answer, fakefcm.Answer). Each fake embeds one, so the methods tests call (Script,
// SetLatency, Attempts, Count, WaitFor, Connections) are the Recorder's; the rest are for the fake's handlers.
//
// It is safe for concurrent use and does no per-request logging, so a benchmark can push thousands of
// notifications a second through either fake.
package fakepush

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Recorder records the pushes of type P a fake delivered and hands out the answers of type A scripted for them.
type Recorder[P, A any] struct {
	name, noun  string // "fakeapns", "pushes": what WaitFor's error calls the fake and what it records
	closed      chan struct{}
	connections atomic.Int64

	mu       sync.Mutex
	latency  time.Duration
	scripts  map[string][]A
	attempts map[string]int
	pushes   []P
	byToken  map[string][]int
	changed  chan struct{} // WaitFor's wake-up, closed at the next recorded push; nil while nobody waits
}

// New is an empty Recorder; name ("fakeapns") and noun ("pushes") word WaitFor's error.
func New[P, A any](name, noun string) *Recorder[P, A] {
	return &Recorder[P, A]{
		name:     name,
		noun:     noun,
		closed:   make(chan struct{}),
		scripts:  map[string][]A{},
		attempts: map[string]int{},
		byToken:  map[string][]int{},
	}
}

// CountConnections makes srv count the TCP connections clients open to it, for Connections.
func (r *Recorder[P, A]) CountConnections(srv *http.Server) {
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			r.connections.Add(1)
		}
	}
}

// Connections is how many TCP connections clients have opened to the server: a client that reuses its
// connections keeps this near its concurrency, not its request count.
func (r *Recorder[P, A]) Connections() int { return int(r.connections.Load()) }

// Release ends every wait in Wait and Hold, now and from now on. The fake calls it before closing its server,
// so that closing does not wait for the clients of hanging requests.
func (r *Recorder[P, A]) Release() { close(r.closed) }

// Script queues answers for pushes to token: each push takes the next one, and once they are used up pushes
// succeed again.
func (r *Recorder[P, A]) Script(token string, answers ...A) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scripts[token] = append(r.scripts[token], answers...)
}

// SetLatency delays every answer by d.
func (r *Recorder[P, A]) SetLatency(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency = d
}

// Latency is what SetLatency set.
func (r *Recorder[P, A]) Latency() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latency
}

// Attempt counts one request for token, whatever it will be answered.
func (r *Recorder[P, A]) Attempt(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[token]++
}

// Attempts is how many requests for token reached the fake, whatever they were answered: a scripted failure
// counts here and not among the recorded pushes.
func (r *Recorder[P, A]) Attempts(token string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[token]
}

// Next takes the next answer scripted for token; the zero A (success) when none is left.
func (r *Recorder[P, A]) Next(token string) A {
	r.mu.Lock()
	defer r.mu.Unlock()
	var a A
	if q := r.scripts[token]; len(q) > 0 {
		a, r.scripts[token] = q[0], q[1:]
	}
	return a
}

// Record stores the push that build makes as delivered to token and wakes WaitFor. build gets the push's
// sequence number (1 for the first push to any token), so that ids a fake answers follow the recorded order.
func (r *Recorder[P, A]) Record(token string, build func(seq int) P) P {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := build(len(r.pushes) + 1)
	r.byToken[token] = append(r.byToken[token], len(r.pushes))
	r.pushes = append(r.pushes, p)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	return p
}

// All is every delivered push, in the order recorded.
func (r *Recorder[P, A]) All() []P {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]P(nil), r.pushes...)
}

// To is every push delivered to token, in order.
func (r *Recorder[P, A]) To(token string) []P {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.to(token)
}

func (r *Recorder[P, A]) to(token string) []P {
	idx := r.byToken[token]
	out := make([]P, len(idx))
	for i, j := range idx {
		out[i] = r.pushes[j]
	}
	return out
}

// Count is how many pushes were delivered, to any token.
func (r *Recorder[P, A]) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pushes)
}

// WaitFor waits until token has at least n delivered pushes and returns them all, or returns ctx's error.
// An empty token waits for n pushes to any token.
func (r *Recorder[P, A]) WaitFor(ctx context.Context, token string, n int) ([]P, error) {
	for {
		r.mu.Lock()
		var got []P
		if token == "" {
			got = append([]P(nil), r.pushes...)
		} else {
			got = r.to(token)
		}
		if len(got) >= n {
			r.mu.Unlock()
			return got, nil
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return got, fmt.Errorf("%s: %d of %d %s to %q: %w", r.name, len(got), n, r.noun, token, ctx.Err())
		}
	}
}

// Wait sleeps d (forever when d < 0) unless ctx ends or Release is called first; it reports whether to answer.
func (r *Recorder[P, A]) Wait(ctx context.Context, d time.Duration) bool {
	if d == 0 {
		return true
	}
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-ctx.Done():
	case <-r.closed:
	}
	return false
}

// Timing is how a scripted answer holds back, in either fake. The zero Timing answers at once.
type Timing struct {
	// Delay waits this long before answering (on top of SetLatency).
	Delay time.Duration
	// Hang never answers: the handler waits until the request's context ends.
	Hang bool
	// Drop ends the request without an answer (HTTP/2 resets the stream, HTTP/1.1 closes the connection): a
	// network error for the client.
	Drop bool
}

// Hold keeps a request for latency and what t says before the fake answers it; it reports whether to answer.
// A Drop panics with http.ErrAbortHandler, which net/http turns into a reset without logging.
func (r *Recorder[P, A]) Hold(ctx context.Context, latency time.Duration, t Timing) bool {
	if !r.Wait(ctx, latency+t.Delay) {
		return false
	}
	if t.Hang {
		r.Wait(ctx, -1)
		return false
	}
	if t.Drop {
		panic(http.ErrAbortHandler)
	}
	return true
}

// Typed is a recorded push that knows its type (API.md's "type" field: "call.ring", "call.missed"...).
type Typed interface{ Type() string }

// Types lists the types of pushes, in order; nil for none.
func Types[P Typed](pushes []P) []string {
	var out []string
	for _, p := range pushes {
		out = append(out, p.Type())
	}
	return out
}

// Only fails t unless exactly one push was delivered to token, and returns it.
func (r *Recorder[P, A]) Only(t testing.TB, token string) P {
	t.Helper()
	got := r.To(token)
	if len(got) != 1 {
		t.Fatalf("%s got %d %s to %q, want 1", r.name, len(got), r.noun, token)
	}
	return got[0]
}
