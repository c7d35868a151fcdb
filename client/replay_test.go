package client

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// TestAReconnectSendsTheIDOfTheLastEventAsLastEventID serves one event with an id per connection and then ends
// the stream: each reconnect must carry the id of the event before it, so the server can replay what was missed.
func TestAReconnectSendsTheIDOfTheLastEventAsLastEventID(t *testing.T) {
	var conns atomic.Int32
	sentIDs := make(chan string, 16)
	evs, ctx, cancel := openStream(t, "tok", func(w http.ResponseWriter, r *http.Request) {
		n := conns.Add(1)
		select {
		case sentIDs <- r.Header.Get("Last-Event-ID"):
		default:
		}
		serveRing(w, fmt.Sprintf("17334800000%02d-0", n), n)
		// A comment after the event must not clear the id the client keeps.
		fmt.Fprint(w, ": heartbeat\n\n")
		w.(http.Flusher).Flush()
	})
	for want := 1; want <= 3; want++ {
		select {
		case ev := <-evs.C:
			if wantID := fmt.Sprintf("17334800000%02d-0", want); ev.ID != wantID || ev.CallCID != fmt.Sprintf("default:c%d", want) {
				t.Fatalf("event %d = %+v, want id %s", want, ev, wantID)
			}
		case <-ctx.Done():
			t.Fatalf("no event %d: the stream did not reconnect", want)
		}
	}
	cancel()
	for range evs.C {
	}
	for i, want := range []string{"", "1733480000001-0", "1733480000002-0"} {
		if got := <-sentIDs; got != want {
			t.Errorf("connection %d sent Last-Event-ID %q, want %q", i+1, got, want)
		}
	}
}

// TestAnIDTheServerRefusesIsDroppedAndTheStreamGoesOn: a 400 to a reconnect's Last-Event-ID means the events
// after it cannot be had, not that the stream is wrong, so the client reconnects without it.
func TestAnIDTheServerRefusesIsDroppedAndTheStreamGoesOn(t *testing.T) {
	var conns atomic.Int32
	evs, ctx, _ := openStream(t, "tok", func(w http.ResponseWriter, r *http.Request) {
		n := conns.Add(1)
		if r.Header.Get("Last-Event-ID") != "" {
			answerError(w, http.StatusBadRequest, "invalid_field", "Last-Event-ID: is not an event id this stream sent")
			return
		}
		serveRing(w, fmt.Sprintf("%d-0", n), n)
		w.(http.Flusher).Flush()
	})
	for got := 0; got < 2; got++ {
		select {
		case ev, ok := <-evs.C:
			if !ok {
				t.Fatalf("the stream stopped after %d events: %v", got, evs.Err())
			}
			if ev.Type != "call.ring" || ev.ID == "" {
				t.Fatalf("event %d = %+v", got+1, ev)
			}
		case <-ctx.Done():
			t.Fatalf("no event %d after a refused Last-Event-ID", got+1)
		}
	}
}
