package web

import (
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/ringer-dev/ringer/providers"
)

// DeviceTokenPrefix starts the token of every browser "device" the demo page registers. The hub keeps pushes
// for these tokens only: a phone's token registered by hand is logged as before and never shown to a page.
const DeviceTokenPrefix = "web-"

// Hub limits: what a page that reconnects can still catch up on, and how many browser devices are remembered.
const (
	recentPerDevice = 50
	maxDevices      = 256
	subscriberQueue = 64
)

// PushEvent is one push as the device panel shows it: what a phone would receive, and when.
type PushEvent struct {
	Seq      uint64 `json:"seq"`
	Provider string `json:"provider"`
	// Kind is the push's shape on the wire: ring (data-only, high priority), alert (notification), stop.
	Kind  string `json:"kind"`
	Type  string `json:"type"`
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
	// Data is the payload's string fields (API.md, "Push payloads").
	Data       map[string]string `json:"data"`
	Expires    *time.Time        `json:"expires,omitempty"`
	ReceivedAt time.Time         `json:"received_at"`
}

// Hub hands the pushes a log provider was given to the pages that play the devices they were for. Wire it
// with logsink.Sink.OnPush(hub.Deliver). It is safe for concurrent use.
type Hub struct {
	provider string
	now      func() time.Time

	mu      sync.Mutex
	seq     uint64
	devices map[string]*device
	// order lists device tokens, least recently used first, to forget the oldest past maxDevices.
	order []string
}

type device struct {
	recent []PushEvent
	subs   map[chan PushEvent]struct{}
}

// NewHub returns a hub for the pushes of provider ("firebase": the page registers FCM devices).
func NewHub(provider string) *Hub {
	return &Hub{provider: provider, now: time.Now, devices: map[string]*device{}}
}

// Deliver records p for its device and passes it to every page following that device. It copies what it
// keeps (logsink's OnPush contract) and never blocks: a page too slow to read loses the push, not the worker.
func (h *Hub) Deliver(p providers.Push) {
	if !strings.HasPrefix(p.Token, DeviceTokenPrefix) {
		return
	}
	ev := PushEvent{
		Provider: h.provider, Kind: p.Kind.String(), Type: p.Data["type"], Title: p.Title, Body: p.Body,
		Data: maps.Clone(p.Data), ReceivedAt: h.now().UTC(),
	}
	if ev.Data == nil {
		ev.Data = map[string]string{}
	}
	if !p.Expires.IsZero() {
		exp := p.Expires.UTC()
		ev.Expires = &exp
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	ev.Seq = h.seq
	d := h.device(p.Token)
	d.recent = append(d.recent, ev)
	if len(d.recent) > recentPerDevice {
		d.recent = d.recent[len(d.recent)-recentPerDevice:]
	}
	for ch := range d.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Subscribe follows the pushes of token. The pushes it already holds with a Seq above after come first, in
// order (a page that reconnects passes the last Seq it saw, as EventSource's Last-Event-ID); then ch carries
// the new ones until cancel is called.
func (h *Hub) Subscribe(token string, after uint64) (backlog []PushEvent, ch <-chan PushEvent, cancel func()) {
	c := make(chan PushEvent, subscriberQueue)
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.device(token)
	for _, ev := range d.recent {
		if ev.Seq > after {
			backlog = append(backlog, ev)
		}
	}
	d.subs[c] = struct{}{}
	return backlog, c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(d.subs, c)
	}
}

// device returns token's entry, making it and forgetting the least recently used idle device when full.
// h.mu must be held.
func (h *Hub) device(token string) *device {
	if i := indexOf(h.order, token); i >= 0 {
		h.order = append(append(h.order[:i:i], h.order[i+1:]...), token)
		return h.devices[token]
	}
	d := &device{subs: map[chan PushEvent]struct{}{}}
	h.devices[token] = d
	h.order = append(h.order, token)
	for i := 0; len(h.devices) > maxDevices && i < len(h.order)-1; { // never the one just made
		old := h.order[i]
		if len(h.devices[old].subs) > 0 {
			i++ // a page still follows it
			continue
		}
		delete(h.devices, old)
		h.order = append(h.order[:i:i], h.order[i+1:]...)
	}
	return d
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
