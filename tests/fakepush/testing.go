package fakepush

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/providers"
)

// What tests of a push client (providers/apns, providers/fcm) and of the fakes themselves share.

// Context is a context that ends after d, or when the test's cleanup runs: the bound on one send to a fake.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// CallData is the data of a push of type typ about call default:abc that alice rings bob in, with every field
// API.md lists for a call push.
func CallData(typ string, video bool) map[string]string {
	return map[string]string{
		"sender": "ringer", "type": typ, "call_cid": "default:abc", "call_type": "default", "call_id": "abc",
		"call_display_name": "Standup", "created_by_id": "alice", "created_by_display_name": "Alice",
		"receiver_id": "bob", "ring_id": "r1", "video": strconv.FormatBool(video),
	}
}

// PushConcurrently sends each pushes to each of workers tokens, one goroutine a token, all at once, and fails
// t unless r recorded every one, each token's in the order sent. send sends push i to a token; index reads i
// back from a recorded push.
func PushConcurrently[P, A any](t *testing.T, r *Recorder[P, A], workers, each int, token func(w int) string,
	send func(token string, i int) error, index func(P) string) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := send(token(w), i); err != nil {
					t.Errorf("push %d to %s: %v", i, token(w), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := r.Count(); got != workers*each {
		t.Fatalf("Count = %d, want %d", got, workers*each)
	}
	for w := range workers {
		got := r.To(token(w))
		if len(got) != each {
			t.Fatalf("%s got %d, want %d", token(w), len(got), each)
		}
		for i, p := range got {
			if index(p) != strconv.Itoa(i) {
				t.Fatalf("%s push %d has i=%s: out of order", token(w), i, index(p))
			}
		}
	}
}

// MustSend sends p through s within 10 s and fails t unless it was sent.
func MustSend(t testing.TB, s providers.Sender, p providers.Push) providers.Result {
	t.Helper()
	res := s.Send(Context(t, 10*time.Second), p)
	if res.Verdict != providers.Sent || res.Err != nil {
		t.Fatalf("Send to %s = %v %q (%v), want sent", p.Token, res.Verdict, res.Reason, res.Err)
	}
	return res
}

// BenchSend sends push through s b.N times from many goroutines at once, as the worker calls a push client.
func BenchSend(b *testing.B, s providers.Sender, push providers.Push) {
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := s.Send(context.Background(), push); res.Verdict != providers.Sent {
				b.Errorf("Send = %+v", res)
				return
			}
		}
	})
}
