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
//	id: 1733480000000-0
//	event: call.ring
//	data: {"type":"call.ring","call_cid":...}
//
// A client that reconnects with Last-Event-ID first gets the events after that id that it missed, from at
// most RINGER_EVENTS_REPLAY back (calls.Hub.Replay).
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
	after := r.Header.Get("Last-Event-ID")
	rp, replays := s.cfg.Events.(Replayer)
	sub, err := s.cfg.Events.Subscribe(ctx, a.UserID)
	if errors.Is(err, calls.ErrTooManyStreams) {
		w.Header().Set("Retry-After", strconv.Itoa(streamsRetryAfter))
	}
	if err != nil {
		return fmt.Errorf("subscribe events of %s: %w", a.UserID, err)
	}
	var missed []calls.Event
	if after != "" && replays {
		if missed, err = rp.Replay(ctx, a.UserID, after); err != nil {
			if errors.Is(err, calls.ErrBadEventID) {
				return &calls.FieldError{Field: "Last-Event-ID", Message: "is not an event id this stream sent: " + err.Error()}
			}
			return fmt.Errorf("replay events of %s: %w", a.UserID, err)
		}
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
	// Replayed after subscribing, so nothing published between the two is lost; a live event the replay
	// already sent is dropped below by its id.
	var last string
	for _, ev := range missed {
		if !s.writeEvent(ctx, w, a, ev) {
			return nil
		}
		last = ev.ID
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
			if last != "" && ev.ID != "" && !calls.EventIDAfter(ev.ID, last) {
				continue // sent by the replay
			}
			if !s.writeEvent(ctx, w, a, ev) {
				return nil
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// writeEvent writes one event frame, with its id when it has one; false when the client is gone.
func (s *server) writeEvent(ctx context.Context, w http.ResponseWriter, a calls.Actor, ev calls.Event) bool {
	if !calls.Visible(a, ev.Call) {
		// A team call is heard only with a token of its team (API.md, "Teams").
		return true
	}
	if strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsAny(ev.ID, "\r\n") {
		// A newline in a field would end the frame early and let the rest read as another field.
		s.log.ErrorContext(ctx, "events: type or id with a newline", "cid", ev.CallCID)
		return true
	}
	data, err := json.Marshal(ev)
	if err != nil {
		// One event we cannot encode must not end the stream of every later one.
		s.log.ErrorContext(ctx, "events: encode", "type", ev.Type, "cid", ev.CallCID, "err", err)
		return true
	}
	id := ""
	if ev.ID != "" {
		id = "id: " + ev.ID + "\n"
	}
	// encoding/json never writes a raw newline, so one data line holds the whole event.
	_, err = fmt.Fprintf(w, "%sevent: %s\ndata: %s\n\n", id, ev.Type, data)
	return err == nil
}

// sayExpired ends a stream whose token expired with a comment saying so, so a client can tell it needs a new
// token rather than a retry.
func sayExpired(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprint(w, ": token expired\n\n")
		_ = rc.Flush()
	}
}
