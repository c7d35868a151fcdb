package calls

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/testredis"
)

// A stream marks its user present for the replay window and two renewals, the hub renews the mark while the
// stream is open (here every 50 ms), and the mark outlives the stream by at least the window.
func TestAnOpenStreamKeepsItsUserPresentForTheWindowBeyondItsEnd(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	h, err := NewHub(rdb, HubConfig{Replay: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.refresh = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := h.Subscribe(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, presenceKey("bob")).Val(); ttl <= time.Minute {
		t.Fatalf("bob's presence lasts %v once his stream opened; want more than the replay window", ttl)
	}
	// Renewed while the stream is open: a mark cut short comes back whole.
	if err := rdb.PExpire(ctx, presenceKey("bob"), time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); rdb.PTTL(ctx, presenceKey("bob")).Val() <= time.Minute; {
		if time.Now().After(deadline) {
			t.Fatal("the hub never renewed bob's presence while his stream was open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	for deadline := time.Now().Add(10 * time.Second); ; {
		h.mu.Lock()
		closed := h.conn == nil
		h.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub kept its connection after the last stream ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ttl := rdb.PTTL(context.Background(), presenceKey("bob")).Val(); ttl < time.Minute {
		t.Fatalf("bob's presence lasts %v after his stream closed; want at least the replay window", ttl)
	}
}

// A hub of a process that keeps no events for replay marks nobody present.
func TestAHubWithoutReplayMarksNobodyPresent(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	h, err := NewHub(rdb, HubConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := h.Subscribe(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, presenceKey("bob")).Val(); n != 0 {
		t.Fatal("a hub without replay marked bob present")
	}
}
