package calls_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

const hubWait = 10 * time.Second

func newHub(t *testing.T, cfg calls.HubConfig) (*calls.Hub, *redis.Client) {
	t.Helper()
	rdb := testredis.Start(t).Client(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h, err := calls.NewHub(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, rdb
}

func subscribe(t *testing.T, h *calls.Hub, user string) (<-chan calls.Event, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := h.Subscribe(ctx, user)
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s: %v", user, err)
	}
	t.Cleanup(cancel)
	return ch, cancel
}

func publish(t *testing.T, rdb *redis.Client, user, cid string) {
	t.Helper()
	b, _ := json.Marshal(calls.Event{Type: queue.EventRing, CallCID: cid})
	if err := rdb.Publish(t.Context(), calls.EventChannel(user), b).Err(); err != nil {
		t.Fatal(err)
	}
}

// next returns the next event of ch; ok is false when ch was closed.
func next(t *testing.T, ch <-chan calls.Event) (calls.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		return ev, ok
	case <-time.After(hubWait):
		t.Fatalf("no event within %s", hubWait)
		return calls.Event{}, false
	}
}

func pubsubClients(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	list, err := rdb.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " sub=") && !strings.Contains(line, " sub=0 ") {
			n++
		}
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hubWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", hubWait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHubStreamsOfManyUsersShareOneRedisConnection(t *testing.T) {
	h, rdb := newHub(t, calls.HubConfig{PerUser: 10})
	var chans []<-chan calls.Event
	for i := range 100 {
		ch, _ := subscribe(t, h, fmt.Sprintf("user%d", i%50))
		chans = append(chans, ch)
	}
	if n := pubsubClients(t, rdb); n != 1 {
		t.Errorf("%d Redis connections in pub/sub mode for 100 streams, want 1", n)
	}
	if n := len(rdb.PubSubChannels(t.Context(), "ringer:events:*").Val()); n != 50 {
		t.Errorf("%d channels subscribed, want 50", n)
	}
	publish(t, rdb, "user7", "default:a")
	for i, ch := range chans {
		if i%50 != 7 {
			continue
		}
		if ev, ok := next(t, ch); !ok || ev.CallCID != "default:a" {
			t.Errorf("stream %d of user7 got %+v, %v", i, ev, ok)
		}
	}
	for i, ch := range chans {
		select {
		case ev := <-ch:
			t.Errorf("stream %d (user%d) got user7's event %+v", i, i%50, ev)
		default:
		}
	}
}

func TestHubClosesTheOldestStreamOfAUserPastItsBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, rdb := newHub(t, calls.HubConfig{PerUser: 2, Registerer: reg})
	first, _ := subscribe(t, h, "bob")
	second, _ := subscribe(t, h, "bob")
	third, _ := subscribe(t, h, "bob")
	if _, ok := next(t, first); ok {
		t.Fatal("the oldest stream got an event, want it closed")
	}
	publish(t, rdb, "bob", "default:b")
	for i, ch := range []<-chan calls.Event{second, third} {
		if ev, ok := next(t, ch); !ok || ev.CallCID != "default:b" {
			t.Errorf("stream %d: %+v, %v", i+2, ev, ok)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var open, replaced float64 = -1, -1
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case mf.GetName() == "ringer_sse_streams":
				open = m.GetGauge().GetValue()
			case mf.GetName() == "ringer_sse_streams_closed_total" && m.GetLabel()[0].GetValue() == "replaced":
				replaced = m.GetCounter().GetValue()
			}
		}
	}
	if open != 2 || replaced != 1 {
		t.Errorf("ringer_sse_streams %v, ringer_sse_streams_closed_total{reason=replaced} %v; want 2 and 1", open, replaced)
	}
}

func TestHubRefusesStreamsPastTheProcessBound(t *testing.T) {
	h, _ := newHub(t, calls.HubConfig{Max: 2})
	subscribe(t, h, "alice")
	_, cancelBob := subscribe(t, h, "bob")
	if _, err := h.Subscribe(t.Context(), "carol"); !errors.Is(err, calls.ErrTooManyStreams) {
		t.Fatalf("third stream: %v, want ErrTooManyStreams", err)
	}
	cancelBob()
	eventually(t, "a stream is accepted once one ends", func() bool {
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(cancel)
		_, err := h.Subscribe(ctx, "carol")
		return err == nil
	})
}

func TestHubClosesASlowStreamWithoutHoldingBackTheOthers(t *testing.T) {
	h, rdb := newHub(t, calls.HubConfig{})
	slow, _ := subscribe(t, h, "bob")
	fast, _ := subscribe(t, h, "bob")
	// In batches the reading stream keeps up with; the other never reads and falls past its buffer.
	const batch, batches = 16, 12
	for b := range batches {
		for i := range batch {
			publish(t, rdb, "bob", fmt.Sprintf("default:s%d-%d", b, i))
		}
		for i := range batch {
			if ev, ok := next(t, fast); !ok || ev.CallCID != fmt.Sprintf("default:s%d-%d", b, i) {
				t.Fatalf("batch %d, event %d: %+v, %v", b, i, ev, ok)
			}
		}
	}
	for range batch * batches {
		if _, ok := <-slow; !ok {
			return
		}
	}
	t.Error("the stream that did not read was not closed")
}

func TestHubUnsubscribesWithTheLastStreamOfAUserAndDisconnectsWithTheLastOfAll(t *testing.T) {
	h, rdb := newHub(t, calls.HubConfig{})
	_, cancelA := subscribe(t, h, "alice")
	_, cancelB1 := subscribe(t, h, "bob")
	_, cancelB2 := subscribe(t, h, "bob")
	cancelB1()
	// bob keeps one stream: his channel stays.
	publish(t, rdb, "alice", "default:x") // a round trip through the hub's connection
	cancelB2()
	eventually(t, "bob's channel is unsubscribed", func() bool {
		chs := rdb.PubSubChannels(t.Context(), "ringer:events:*").Val()
		return len(chs) == 1 && chs[0] == calls.EventChannel("alice")
	})
	cancelA()
	eventually(t, "the pub/sub connection is closed", func() bool { return pubsubClients(t, rdb) == 0 })
	// And a new stream opens a new one.
	ch, _ := subscribe(t, h, "alice")
	publish(t, rdb, "alice", "default:y")
	if ev, ok := next(t, ch); !ok || ev.CallCID != "default:y" {
		t.Errorf("after reopening: %+v, %v", ev, ok)
	}
}

func TestHubResubscribesAfterRedisDropsItsConnection(t *testing.T) {
	h, rdb := newHub(t, calls.HubConfig{})
	ch, _ := subscribe(t, h, "bob")
	if err := rdb.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	// Events published while go-redis reconnects are lost; keep publishing until one arrives.
	deadline := time.Now().Add(hubWait)
	for {
		publish(t, rdb, "bob", "default:r")
		select {
		case ev, ok := <-ch:
			if !ok || ev.CallCID != "default:r" {
				t.Fatalf("after the connection was dropped: %+v, %v", ev, ok)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event within %s of the connection being dropped", hubWait)
		}
	}
}
