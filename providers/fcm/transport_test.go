package fcm

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/fakepush"
)

// burst sends n ring pushes to distinct tokens at once, and fails the test unless fake got them all and every
// request (pushes and token fetches) came over HTTP/protoMajor.
func burst(t *testing.T, s *Sender, fake *fakefcm.Server, n, protoMajor int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res := s.Send(fakepush.Context(t, 20*time.Second), providers.Push{Token: fmt.Sprintf("tok-%d", i), Kind: providers.KindRing,
				Data: data("call.ring")})
			if res.Verdict != providers.Sent {
				t.Errorf("push %d: %v %s %v", i, res.Verdict, res.Reason, res.Err)
			}
		})
	}
	wg.Wait()
	if got := fake.Count(); got != n {
		t.Fatalf("delivered %d of %d pushes", got, n)
	}
	if want, got := n+fake.TokenRequests(), fake.RequestsOver(protoMajor); got != want {
		t.Errorf("%d of %d requests came over HTTP/%d (%d over HTTP/1.x, %d over HTTP/2)", got, want, protoMajor,
			fake.RequestsOver(1), fake.RequestsOver(2))
	}
}

// FCM speaks HTTP/2 over TLS: a burst of pushes shares a few connections, each carrying many streams, instead
// of holding a connection per push in flight.
func TestPushesToATLSEndpointAreMultiplexedOverHTTP2OnAFewConnections(t *testing.T) {
	s, fake := newSender(t)
	const n = 200
	burst(t, s, fake, n, 2)
	// Twice the fake's stream limit needs two connections; a few more are allowed for dials racing a burst.
	got := fake.Connections()
	t.Logf("%d pushes over %d connections", n, got)
	if got > 4 {
		t.Errorf("%d connections for %d pushes at once: HTTP/2 connections are not shared", got, n)
	}
}

// Emulators and proxies may offer only HTTP/1.1, over TLS or plain http://: every push still gets through.
func TestAnEndpointOfferingOnlyHTTP1GetsEveryPush(t *testing.T) {
	for name, o := range map[string]fakefcm.Options{"tls": {HTTP1: true}, "plain": {Plain: true}} {
		t.Run(name, func(t *testing.T) {
			fake := fakefcm.StartWith(t, o)
			burst(t, senderFor(t, fake), fake, 200, 1)
		})
	}
}
