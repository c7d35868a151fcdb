package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestEventsReconnectAfterTheServerEndsTheStream serves one event per connection and then ends the stream,
// as an API process that restarts does: the client must come back by itself and get the next one.
func TestEventsReconnectAfterTheServerEndsTheStream(t *testing.T) {
	var conns atomic.Int32
	evs, ctx, cancel := openStream(t, "tok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"code":"unauthorized","message":"no","status":401}`, http.StatusUnauthorized)
			return
		}
		serveRing(w, "", conns.Add(1))
		w.(http.Flusher).Flush()
	})
	for want := 1; want <= 3; want++ {
		select {
		case ev := <-evs.C:
			if ev.CallCID != fmt.Sprintf("default:c%d", want) || ev.Type != "call.ring" || ev.User.ID != "alice" {
				t.Fatalf("event %d = %+v", want, ev)
			}
		case <-ctx.Done():
			t.Fatalf("no event %d: the stream did not reconnect", want)
		}
	}
	cancel()
	for range evs.C {
	}
	if err := evs.Err(); err != nil {
		t.Errorf("Err after the context ended = %v, want nil", err)
	}
}

func TestEventsStopOnARefusedToken(t *testing.T) {
	evs, ctx, _ := openStream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		answerError(w, http.StatusUnauthorized, "unauthorized", "The token is not valid.")
	})
	for range evs.C {
	}
	if !IsStatus(evs.Err(), http.StatusUnauthorized) || ctx.Err() != nil {
		t.Fatalf("Err = %v (context %v), want the 401 at once", evs.Err(), ctx.Err())
	}
}

func TestAnErrorAnswerIsATypedError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerError(w, http.StatusConflict, "conflict", "The call has ended.")
	}))
	defer srv.Close()
	_, err := New(srv.URL, "tok").Accept(context.Background(), "default", "abc")
	var e *Error
	if !IsStatus(err, http.StatusConflict) || !asError(err, &e) || e.Code != "conflict" || e.Message != "The call has ended." {
		t.Fatalf("Accept = %v, want the 409 conflict body", err)
	}
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
