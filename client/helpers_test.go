package client

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// openStream serves handler and opens an event stream on it with token, for at most 10 s; cancel ends the
// stream sooner. The server closes with the test.
func openStream(t *testing.T, token string, handler http.HandlerFunc) (*Events, context.Context, context.CancelFunc) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return New(srv.URL, token).Events(ctx), ctx, cancel
}

// serveRing answers a stream with the API's ": connected" comment and one call.ring event about default:c<n>
// from alice, with the id when it is not empty.
func serveRing(w http.ResponseWriter, id string, n int32) {
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, ": connected\n\n")
	if id != "" {
		fmt.Fprintf(w, "id: %s\n", id)
	}
	fmt.Fprintf(w, "event: call.ring\ndata: {\"type\":\"call.ring\",\"call_cid\":\"default:c%d\",\"user\":{\"id\":\"alice\"}}\n\n", n)
}

// answerError answers with the API's error body.
func answerError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%q,"message":%q,"status":%d}`, code, message, status)
}
