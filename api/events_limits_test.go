package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

func TestEventsStreamEndsAtTheTokensExp(t *testing.T) {
	e := newEnv(t)
	exp := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
	tok := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "bob", "exp": exp.Unix()})
	_, resp, _ := openEvents(t, e, "/v1/events", tok)
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body)
		done <- string(b)
	}()
	select {
	case body := <-done:
		if time.Now().Before(exp) {
			t.Errorf("the stream ended %s before its token's exp", time.Until(exp))
		}
		if !strings.HasPrefix(body, ": connected\n\n") || !strings.HasSuffix(body, ": token expired\n\n") {
			t.Errorf("body %q, want the connected comment first and the expiry comment last", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its token's exp")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.calls.subscribers("bob") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived the stream")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type refusingEvents struct{}

func (refusingEvents) Subscribe(_ context.Context, user string) (<-chan calls.Event, error) {
	return nil, fmt.Errorf("subscribe %s: %w (3)", user, calls.ErrTooManyStreams)
}

func TestEventsPastTheProcessBoundAre503WithRetryAfter(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Events = refusingEvents{} })
	w := e.do("GET", "/v1/events", userToken(t, "bob"), "")
	b := wantError(t, w, http.StatusServiceUnavailable, wire.CodeUnavailable, "")
	if !strings.Contains(b.Message, "RINGER_SSE_MAX") {
		t.Errorf("message %q does not name RINGER_SSE_MAX", b.Message)
	}
	if ra := w.Header().Get("Retry-After"); ra != "5" {
		t.Errorf("Retry-After %q, want 5", ra)
	}
}
