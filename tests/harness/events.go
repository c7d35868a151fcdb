package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// Event is one Server-Sent Event from GET /v1/events.
type Event struct {
	ID   string // its id: line; empty when it had none
	Name string
	Data map[string]any
}

// ReadEvents reads the Server-Sent Events of r and hands each to each, until r ends.
func ReadEvents(r io.Reader, each func(Event)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	var ev Event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id:"):
			ev.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			_ = json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "data:"))), &ev.Data)
		case line == "" && ev.Name != "":
			each(ev)
			ev = Event{}
		}
	}
}

// Events is an open event stream.
type Events struct {
	ch     chan Event
	cancel context.CancelFunc
}

// Events opens GET /v1/events with token (query like "?user_id=bob" for server tokens) and returns once the
// stream has answered 200.
func (e *Env) Events(token, query string) *Events {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := e.http.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("open events: %v", err)
	}
	if res.StatusCode != 200 {
		cancel()
		e.t.Fatalf("open events: status %d", res.StatusCode)
	}
	s := &Events{ch: make(chan Event, 256), cancel: cancel}
	e.t.Cleanup(cancel)
	spec := LoadSpec(e.t)
	go func() {
		defer res.Body.Close()
		defer close(s.ch)
		ReadEvents(res.Body, func(ev Event) {
			// After Close the test may be over: it can no longer fail.
			if err := spec.ValidateEvent(ev.Data); err != nil && ctx.Err() == nil {
				e.t.Errorf("openapi: event %s does not match the schema Event of docs/openapi.yaml: %v", ev.Name, err)
			}
			if ev.Data["type"] != ev.Name && ctx.Err() == nil {
				e.t.Errorf("event %s carries type %v", ev.Name, ev.Data["type"])
			}
			s.ch <- ev
		})
	}()
	return s
}

// Until returns the events up to and including the first named want, or false after d.
func (s *Events) Until(want string, d time.Duration) ([]Event, bool) {
	return s.Await(d, func(ev Event) bool { return ev.Name == want })
}

// Await reads events until one satisfies stop and returns those read, that one last, or false when d passes
// (or the stream ends) first.
func (s *Events) Await(d time.Duration, stop func(Event) bool) ([]Event, bool) {
	seen, err := Await(s.ch, d, stop)
	return seen, err == nil
}

// Close ends the stream.
func (s *Events) Close() { s.cancel() }
