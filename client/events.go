package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ringer-dev/ringer/wire"
)

// Event is one event of the stream (docs/API.md, "Events"). Its ID is the event's SSE id; the stream sends
// the last one it saw as Last-Event-ID when it reconnects.
type Event = wire.Event

// Events is a followed event stream. It reconnects whenever the stream ends or fails, waiting between
// attempts (from MinBackoff, doubling to MaxBackoff), until its context ends. A reconnect sends the id of the
// last event delivered as Last-Event-ID, so the server first replays what was missed, from at most
// RINGER_EVENTS_REPLAY back; a client that must not miss a call after a longer gap (or before its first event)
// reads ListCalls after each Connected.
type Events struct {
	// C delivers the events in order; it is closed when the context ends or the server refuses the stream
	// for good (401, 403, 400: see Err).
	C <-chan Event
	// Connected receives a value each time the stream is (re)connected and live: events caused after it are
	// delivered. It never blocks the stream: a value nobody took is dropped.
	Connected <-chan struct{}

	err  error
	done chan struct{}
}

// Backoff bounds of the reconnects.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// Err is why the stream stopped for good once C is closed: nil when the context ended, else the answer that
// refused it.
func (e *Events) Err() error {
	<-e.done
	return e.err
}

// Events follows the acting user's events until ctx ends.
func (c *Client) Events(ctx context.Context) *Events { return c.events(ctx, "") }

func (c *Client) events(ctx context.Context, userID string) *Events {
	ch := make(chan Event, 64)
	connected := make(chan struct{}, 1)
	ev := &Events{C: ch, Connected: connected, done: make(chan struct{})}
	go func() {
		defer close(ev.done)
		defer close(ch)
		wait := MinBackoff
		// lastID is the id of the last event delivered on C: the Last-Event-ID of the next connection.
		var lastID string
		for ctx.Err() == nil {
			sent := lastID
			live, err := c.stream(ctx, userID, &lastID, ch, connected)
			var apiErr *Error
			if sent != "" && errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest {
				// The server does not take the id (it changed, or its replay was reset): the events after it
				// cannot be had, so follow the live stream and leave catching up to ListCalls.
				lastID = ""
				continue
			}
			if errors.As(err, &apiErr) && apiErr.Status < 500 && apiErr.Status != http.StatusTooManyRequests {
				ev.err = err // retrying cannot help: the token or the request is wrong
				return
			}
			if live {
				wait = MinBackoff
			}
			if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
				wait = apiErr.RetryAfter // a process past RINGER_SSE_MAX asks for that much
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(2*wait, MaxBackoff)
		}
	}()
	return ev
}

// stream reads one connection until it ends; live reports whether it got as far as the server's
// ": connected". It sends *lastID as Last-Event-ID when set, and sets it to each event's id as it delivers it.
func (c *Client) stream(ctx context.Context, userID string, lastID *string, ch chan<- Event, connected chan<- struct{}) (live bool, err error) {
	u := c.base + "/v1/events"
	if userID != "" {
		u += "?" + userQuery(userID).Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return false, fmt.Errorf("GET /v1/events: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		e := &Error{Status: res.StatusCode}
		_ = json.NewDecoder(res.Body).Decode(e)
		e.Status = res.StatusCode
		e.RetryAfter = retryAfter(res.Header)
		return false, fmt.Errorf("GET /v1/events: %w", e)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ": connected"):
			live = true
			select {
			case connected <- struct{}{}:
			default:
			}
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		case line == "":
			if name != "" && data != "" {
				var e Event
				if err := json.Unmarshal([]byte(data), &e); err == nil {
					e.ID = id
					select {
					case ch <- e:
						if id != "" {
							*lastID = id
						}
					case <-ctx.Done():
						return live, ctx.Err()
					}
				}
			}
			id, name, data = "", "", ""
		}
	}
	return live, sc.Err()
}
