package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringer-dev/ringer/calls"
)

// streamsRetryAfter is the Retry-After, in seconds, of a stream refused because the process holds its most.
const streamsRetryAfter = 5

// events is GET /v1/events: Server-Sent Events of the acting user's calls. Each event is framed
//
//	event: call.ring
//	data: {"type":"call.ring","call_cid":...}
//
// and flushed at once; a comment line every Heartbeat keeps proxies from closing an idle stream and lets
// the server notice a client that went away. The stream ends when the client goes, when the token expires
// (at its exp, so a stream never outlives the right to open it), or when the event source closes it (a newer
// stream of the same user replaced it, or the client fell behind); the client then reconnects, as
// EventSource does by itself.
func (s *server) events(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	a, err := actor(tok, r.URL.Query().Get("user_id"), "user_id", true)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	ctx := r.Context()
	if !tok.Expires.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, tok.Expires)
		defer cancel()
	}
	sub, err := s.cfg.Events.Subscribe(ctx, a.UserID)
	if errors.Is(err, calls.ErrTooManyStreams) {
		w.Header().Set("Retry-After", strconv.Itoa(streamsRetryAfter))
	}
	if err != nil {
		return fmt.Errorf("subscribe events of %s: %w", a.UserID, err)
	}
	// The server's WriteTimeout is for ordinary answers; a stream must outlive it.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.DebugContext(ctx, "events: clear write deadline", "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream
	w.WriteHeader(http.StatusOK)
	// A first comment tells the client the subscription is live before any event comes.
	if _, err := fmt.Fprint(w, ": connected\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}

	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			sayExpired(ctx, w, rc)
			return nil
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
		case ev, ok := <-sub:
			if !ok {
				// The source closes the stream when ctx ends too: say why if that was the token's exp.
				sayExpired(ctx, w, rc)
				return nil
			}
			if !calls.Visible(a, ev.Call) {
				// A team call is heard only with a token of its team (API.md, "Teams").
				continue
			}
			if strings.ContainsAny(ev.Type, "\r\n") {
				// A newline in the name would end the frame early and let the rest read as another field.
				s.log.ErrorContext(ctx, "events: type with a newline", "cid", ev.CallCID)
				continue
			}
			data, err := json.Marshal(ev)
			if err != nil {
				// One event we cannot encode must not end the stream of every later one.
				s.log.ErrorContext(ctx, "events: encode", "type", ev.Type, "cid", ev.CallCID, "err", err)
				continue
			}
			// encoding/json never writes a raw newline, so one data line holds the whole event.
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data); err != nil {
				return nil
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// sayExpired ends a stream whose token expired with a comment saying so, so a client can tell it needs a new
// token rather than a retry.
func sayExpired(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprint(w, ": token expired\n\n")
		_ = rc.Flush()
	}
}
