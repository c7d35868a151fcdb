package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// openStream opens GET /v1/events with lastID as Last-Event-ID (none when ""), and returns its status and
// events.
func openStream(t *testing.T, e *harness.Env, token, lastID string) (int, <-chan harness.Event, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open events: %v", err)
	}
	ch := make(chan harness.Event, 256)
	if res.StatusCode != 200 {
		res.Body.Close()
		close(ch)
		return res.StatusCode, ch, cancel
	}
	go func() {
		defer res.Body.Close()
		defer close(ch)
		harness.ReadEvents(res.Body, func(ev harness.Event) { ch <- ev })
	}()
	return res.StatusCode, ch, cancel
}

// until reads events up to and including the first named want.
func until(t *testing.T, ch <-chan harness.Event, want string) []harness.Event {
	t.Helper()
	seen, err := harness.Await(ch, 10*time.Second, func(ev harness.Event) bool { return ev.Name == want })
	switch {
	case errors.Is(err, harness.ErrClosed):
		t.Fatalf("stream ended before %s; saw %v", want, seen)
	case err != nil:
		t.Fatalf("no %s within 10s; saw %v", want, seen)
	}
	return seen
}

func TestAStreamReconnectingWithLastEventIDGetsTheEventsItMissedOnceThenLiveOnes(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	_, bob, disconnect := openStream(t, e, e.Token("bob"), "")
	e.MustCall(201, "POST", "/v1/call/default/rp1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("bob")},
	})
	before := until(t, bob, "call.ring")
	last := before[len(before)-1].ID
	if last == "" {
		t.Fatalf("event without an id: %+v", before[len(before)-1])
	}
	disconnect()

	// While bob is away, alice gives up: the ring ends.
	e.MustCall(200, "POST", "/v1/call/default/rp1/reject", e.Token("alice"), map[string]any{"reason": "cancel"})

	_, bob, _ = openStream(t, e, e.Token("bob"), last)
	missed := until(t, bob, "call.ended")
	var got []string
	for _, ev := range missed {
		got = append(got, ev.Name)
		if ev.Data["call_cid"] != "default:rp1" {
			t.Errorf("replayed %s of %v", ev.Name, ev.Data["call_cid"])
		}
	}
	if strings.Join(got, ",") != "call.rejected,call.missed,call.ended" {
		t.Errorf("replayed %v, want the reject, bob's miss and the end", got)
	}
	// Live events follow, and nothing replayed comes twice.
	e.MustCall(201, "POST", "/v1/call/default/rp2", e.Token("alice"), map[string]any{
		"data": map[string]any{"members": harness.MemberList("bob")},
	})
	live := until(t, bob, "call.created")
	if len(live) != 1 || live[0].Data["call_cid"] != "default:rp2" {
		t.Errorf("after the replay came %v, want only the new call's call.created", live)
	}
}

func TestALastEventIDThatIsNoEventIDIsABadRequest(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	if code, _, _ := openStream(t, e, e.Token("bob"), "yesterday"); code != 400 {
		t.Fatalf("status %d, want 400", code)
	}
}
