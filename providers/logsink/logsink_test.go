package logsink

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/providers"
)

const token = "f3c1a9b2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d"

func TestSendLogsThePushWithTheTokenSuffixOnly(t *testing.T) {
	var buf bytes.Buffer
	s := New(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), providers.APN)
	res := s.Send(context.Background(), providers.Push{
		Token: token, VoIP: true, Kind: providers.KindRing, Expires: time.Now().Add(time.Minute),
		Data: map[string]string{"type": "call.ring", "call_cid": "default:abc", "ring_id": "r1", "receiver_id": "bob"},
	})
	if res.Verdict != providers.Sent || res.ID == "" || res.Err != nil || res.Reason != Reason {
		t.Fatalf("Send = %+v, want sent with an id", res)
	}
	if strings.Contains(buf.String(), token) {
		t.Fatalf("log holds the whole token: %s", buf.String())
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	want := map[string]any{
		"provider": "apn", "kind": "ring", "type": "call.ring", "call_cid": "default:abc", "ring_id": "r1",
		"receiver_id": "bob", "token": "…2b3c4d", "voip": true, "id": res.ID,
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
}

func TestOnPushSeesEveryPush(t *testing.T) {
	s := New(slog.New(slog.DiscardHandler), providers.Firebase)
	var mu sync.Mutex
	var seen []string
	s.OnPush(func(p providers.Push) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, p.Data["type"])
	})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			s.Send(context.Background(), providers.Push{Token: "t", Data: map[string]string{"type": "call.ring"}})
		})
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Fatalf("hook saw %d pushes, want 20", len(seen))
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestIDsAreDistinct(t *testing.T) {
	s := New(nil, providers.Firebase)
	s.logger = slog.New(slog.DiscardHandler)
	a := s.Send(context.Background(), providers.Push{Token: "t"})
	b := s.Send(context.Background(), providers.Push{Token: "t"})
	if a.ID == b.ID {
		t.Fatalf("two pushes share id %q", a.ID)
	}
}

// The worker logs every push it sends in one line at info level; the sink adds its details only at debug
// level, so a logged push is one line, not two.
func TestSendWritesNothingAtInfoLevel(t *testing.T) {
	var buf bytes.Buffer
	s := New(slog.New(slog.NewJSONHandler(&buf, nil)), providers.Firebase)
	res := s.Send(context.Background(), providers.Push{Token: token, Kind: providers.KindRing, Data: map[string]string{"type": "call.ring"}})
	if res.Verdict != providers.Sent || res.Reason != Reason {
		t.Fatalf("Send = %+v, want sent with the reason %q", res, Reason)
	}
	if buf.Len() != 0 {
		t.Fatalf("Send wrote at info level: %s", buf.String())
	}
}
