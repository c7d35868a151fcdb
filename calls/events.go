package calls

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Defaults of HubConfig.
const (
	DefaultStreamsPerUser = 5
	DefaultMaxStreams     = 10000
	// streamBuffer is how many events a stream may fall behind before the hub closes it: a client that
	// reads this slowly is gone or stuck, and it reconnects and re-reads the call like any other.
	streamBuffer = 64
	// readyWait bounds how long Subscribe waits for Redis to confirm a new channel.
	readyWait = 5 * time.Second
)

// ErrTooManyStreams is Subscribe's answer once the process holds HubConfig.Max streams.
var ErrTooManyStreams = errors.New("too many event streams")

// Why a hub closes a stream on its own.
const (
	closeReplaced = "replaced" // a newer stream of the same user took its place (HubConfig.PerUser)
	closeSlow     = "slow"     // its buffer was full: the client does not read
)

// HubConfig is what NewHub needs beyond the Redis client.
type HubConfig struct {
	// PerUser bounds the open streams of one user; a new one past it closes that user's oldest. 0 is
	// DefaultStreamsPerUser.
	PerUser int
	// Max bounds the open streams of the process; past it Subscribe is ErrTooManyStreams. 0 is
	// DefaultMaxStreams.
	Max int
	// Replay is how long back Replay reaches (the Store's SetEventReplay); 0 replays nothing.
	Replay time.Duration
	// Registerer, when set, gets the stream metrics (ringer_sse_streams, ...).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Hub streams each user's events (EventChannel) to that user's open event streams. However many streams are
// open, the process holds one Redis pub/sub connection: the hub subscribes to a user's channel when the user's
// first stream opens and unsubscribes when the last one ends, and copies each message to every stream of that
// user without ever waiting for one. The connection opens with the first stream and closes with the last.
//
// go-redis' PubSub reconnects by itself and, on the new connection, subscribes again to every channel it
// holds (PubSub.conn calls resubscribe); its Channel pings Redis when idle, so a dead connection is noticed
// within seconds. Events published while it reconnects are lost, as they always were: clients re-read the
// call when the stream is re-established.
//
// The connection also hears manyChannel, where a big call's events come for many users a message
// (publishMany); the hub hands each to the streams it holds of the users named.
//
// On Redis Cluster, PUBLISH reaches every node, so the one connection (to whichever node go-redis picks for
// the first channel) hears every user's channel.
type Hub struct {
	rdb     redis.UniversalClient
	perUser int
	max     int
	replay  time.Duration
	// refresh is how often the users streamed to are marked present again (presenceRefresh).
	refresh time.Duration
	log     *slog.Logger
	metrics *hubMetrics

	mu    sync.Mutex
	conn  *hubConn // nil while no stream is open
	total int      // open streams
}

// hubConn is one pub/sub connection and the channels it serves; a new one starts with empty state.
type hubConn struct {
	ps    *redis.PubSub
	users map[string]*userStreams
	done  chan struct{} // closed with the connection
}

// userStreams is one user's channel on the connection.
type userStreams struct {
	streams []*stream // oldest first
	// inflight counts the SUBSCRIBE and UNSUBSCRIBE commands sent for the channel whose confirmation has
	// not come back. Redis answers one connection's commands in order, so once it is 0 after a "subscribe"
	// confirmation, the channel is live.
	inflight int
	ready    chan struct{} // closed once the channel is live for the current streams
}

type stream struct {
	user   string
	ch     chan Event
	closed bool // under Hub.mu
	stop   func() bool
}

// NewHub returns a hub on rdb; it opens no connection until the first stream.
func NewHub(rdb redis.UniversalClient, cfg HubConfig) (*Hub, error) {
	// Zero (or less) takes the default.
	cfg.PerUser = cmp.Or(max(cfg.PerUser, 0), DefaultStreamsPerUser)
	cfg.Max = cmp.Or(max(cfg.Max, 0), DefaultMaxStreams)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	h := &Hub{rdb: rdb, perUser: cfg.PerUser, max: cfg.Max, replay: cfg.Replay, refresh: presenceRefresh, log: cfg.Logger}
	if cfg.Registerer != nil {
		m, err := newHubMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		h.metrics = m
	}
	return h, nil
}

// Subscribe streams the events of every call the user is a member of until ctx ends or the hub closes the
// stream (a newer stream of the user replaced it, or it fell behind); the channel is closed then. It
// returns once Redis has confirmed the subscription, so an event published after it reaches the stream.
func (h *Hub) Subscribe(ctx context.Context, user string) (<-chan Event, error) {
	if h.replay > 0 {
		// Before the subscription: an event published once the stream is live must go to the replay stream too.
		if err := h.rdb.Set(ctx, presenceKey(user), 1, h.presenceTTL()).Err(); err != nil {
			return nil, fmt.Errorf("subscribe %s: mark present: %w", user, err)
		}
	}
	h.mu.Lock()
	if h.conn == nil {
		h.open()
	}
	c := h.conn
	us := c.users[user]
	// A user at its own bound replaces a stream rather than adding one, so the process bound does not apply.
	if h.total >= h.max && (us == nil || len(us.streams) < h.perUser) {
		h.mu.Unlock()
		h.metrics.refused()
		return nil, fmt.Errorf("subscribe %s: %w (%d)", user, ErrTooManyStreams, h.max)
	}
	if us == nil {
		us = &userStreams{}
		c.users[user] = us
	}
	s := &stream{user: user, ch: make(chan Event, streamBuffer)}
	us.streams = append(us.streams, s)
	h.total++
	h.metrics.setOpen(h.total)
	var err error
	if len(us.streams) == 1 {
		us.ready = make(chan struct{})
		us.inflight++
		// Sent under the lock: commands must reach Redis in the order the counts above assume.
		err = c.ps.Subscribe(ctx, EventChannel(user))
	}
	var evicted *stream
	if len(us.streams) > h.perUser {
		evicted = us.streams[0]
	}
	ready := us.ready
	h.mu.Unlock()
	if evicted != nil {
		h.close(evicted, closeReplaced)
	}
	if err != nil {
		h.close(s, "")
		return nil, fmt.Errorf("subscribe %s: %w", user, err)
	}
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-ctx.Done():
		h.close(s, "")
		return nil, fmt.Errorf("subscribe %s: %w", user, ctx.Err())
	case <-t.C:
		h.mu.Lock()
		// A confirmation lost with a broken connection must not keep later streams waiting as well: go-redis
		// subscribes again on its new connection, and that confirmation is the one to wait for.
		if us.inflight > 0 {
			us.inflight = 0
		}
		h.mu.Unlock()
		h.close(s, "")
		return nil, fmt.Errorf("subscribe %s: no confirmation from redis within %s: %w", user, readyWait, context.DeadlineExceeded)
	}
	h.mu.Lock()
	if !s.closed {
		s.stop = context.AfterFunc(ctx, func() { h.close(s, "") })
	}
	h.mu.Unlock()
	return s.ch, nil
}

// open starts a connection and its reader; h.mu is held.
func (h *Hub) open() {
	// No channel yet: the connection is made by the reader, and the first Subscribe follows on it.
	ps := h.rdb.Subscribe(context.Background())
	c := &hubConn{ps: ps, users: map[string]*userStreams{}, done: make(chan struct{})}
	h.conn = c
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	go h.read(c, msgs)
	// Before any user's channel, on the same connection: once a user's SUBSCRIBE is confirmed, so is this one.
	// go-redis keeps the channel even when this fails, and subscribes again on its next connection.
	if err := ps.Subscribe(context.Background(), manyChannel); err != nil {
		h.log.Warn("event hub: subscribe to the events of many users", "err", err)
	}
	if h.replay > 0 {
		go h.keepPresent(c)
	}
}

// presenceTTL is how long a mark of presence lasts: past the next two renewals by the replay window, so that a
// user stays present for at least the window after its last stream closed, or its process died.
func (h *Hub) presenceTTL() time.Duration { return h.replay + 2*h.refresh }

// keepPresent marks the users of c present again every h.refresh until c closes. A renewal that fails is
// logged; the next may succeed before the marks run out.
func (h *Hub) keepPresent(c *hubConn) {
	t := time.NewTicker(h.refresh)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		h.mu.Lock()
		users := slices.Collect(maps.Keys(c.users))
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), h.refresh)
		pipe := h.rdb.Pipeline()
		for _, u := range users {
			pipe.Set(ctx, presenceKey(u), 1, h.presenceTTL())
		}
		if _, err := pipe.Exec(ctx); err != nil {
			h.log.Warn("event hub: presence not renewed", "users", len(users), "err", err)
		}
		cancel()
	}
}

// read hands each message of c to its user's streams until c is closed.
func (h *Hub) read(c *hubConn, msgs <-chan any) {
	for m := range msgs {
		switch m := m.(type) {
		case *redis.Subscription:
			h.confirmed(c, m)
		case *redis.Message:
			if m.Channel == manyChannel {
				h.deliverMany(c, m)
			} else {
				h.deliver(c, m)
			}
		}
	}
}

func (h *Hub) confirmed(c *hubConn, m *redis.Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	user, ok := userOfChannel(m.Channel)
	us := c.users[user]
	if !ok || us == nil || h.conn != c {
		return
	}
	if us.inflight > 0 {
		us.inflight--
	}
	if us.inflight > 0 {
		return
	}
	if len(us.streams) == 0 {
		delete(c.users, user)
		return
	}
	if m.Kind == "subscribe" {
		select {
		case <-us.ready:
		default:
			close(us.ready)
		}
	}
}

func (h *Hub) deliver(c *hubConn, m *redis.Message) {
	user, ok := userOfChannel(m.Channel)
	if !ok {
		return
	}
	id, data := splitPublished(m.Payload)
	ev, err := decodeEvent(data)
	if err != nil {
		h.log.Error("event not decoded", "user", user, "err", err)
		return
	}
	ev.ID = id
	h.mu.Lock()
	var slow []*stream
	if h.conn == c {
		slow = h.offer(c.users[user], ev, nil)
	}
	h.mu.Unlock()
	for _, s := range slow {
		h.close(s, closeSlow)
	}
}

// deliverMany hands an event published for many users (publishMany) to the streams c holds of them. Such an
// event has no replay id.
func (h *Hub) deliverMany(c *hubConn, m *redis.Message) {
	var msg manyMessage
	if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil {
		h.log.Error("event for many users not decoded", "err", err)
		return
	}
	h.mu.Lock()
	held := h.conn == c && slices.ContainsFunc(msg.Users, func(u string) bool { return c.users[u] != nil })
	h.mu.Unlock()
	if !held {
		return // most processes hold a stream of none of a message's users: decoding the event is saved
	}
	ev, err := decodeEvent(string(msg.Event))
	if err != nil {
		h.log.Error("event not decoded", "err", err)
		return
	}
	var slow []*stream
	h.mu.Lock()
	if h.conn == c {
		for _, u := range msg.Users {
			slow = h.offer(c.users[u], ev, slow)
		}
	}
	h.mu.Unlock()
	for _, s := range slow {
		h.close(s, closeSlow)
	}
}

// offer gives ev to every stream of us (nil: none) that has room, and answers slow with those that had none
// added; h.mu is held.
func (h *Hub) offer(us *userStreams, ev Event, slow []*stream) []*stream {
	if us == nil {
		return slow
	}
	for _, s := range us.streams {
		select {
		case s.ch <- ev:
		default:
			slow = append(slow, s)
		}
	}
	return slow
}

// close ends s (once) and, with the user's last stream, the channel, and with the process' last, the
// connection. reason is why the hub closes it on its own, "" when its client went.
func (h *Hub) close(s *stream, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.stop != nil {
		s.stop()
	}
	close(s.ch)
	h.total--
	h.metrics.setOpen(h.total)
	if reason != "" {
		h.metrics.closed(reason)
		h.log.Info("event stream closed", "user", s.user, "reason", reason)
	}
	c := h.conn
	us := c.users[s.user]
	us.streams = slices.DeleteFunc(us.streams, func(o *stream) bool { return o == s })
	if h.total == 0 {
		// Nothing to hear: the connection goes, and its state with it.
		h.conn = nil
		close(c.done)
		if err := c.ps.Close(); err != nil {
			h.log.Debug("event hub: close pub/sub", "err", err)
		}
		return
	}
	if len(us.streams) > 0 {
		return
	}
	us.inflight++
	// A failed UNSUBSCRIBE leaves nothing behind: go-redis forgot the channel first, and a new connection
	// does not subscribe to it again.
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	if err := c.ps.Unsubscribe(ctx, EventChannel(s.user)); err != nil {
		h.log.Warn("event hub: unsubscribe", "user", s.user, "err", err)
		us.inflight--
	}
	if us.inflight == 0 {
		delete(c.users, s.user)
	}
}

func decodeEvent(data string) (Event, error) {
	var ev Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return ev, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// userOfChannel is the inverse of EventChannel.
func userOfChannel(ch string) (string, bool) {
	const prefix = "ringer:events:"
	if len(ch) <= len(prefix) || ch[:len(prefix)] != prefix {
		return "", false
	}
	return ch[len(prefix):], true
}

// hubMetrics are the hub's series; a nil *hubMetrics counts nothing.
type hubMetrics struct {
	open    prometheus.Gauge
	ended   *prometheus.CounterVec
	refusal prometheus.Counter
}

func newHubMetrics(reg prometheus.Registerer) (*hubMetrics, error) {
	m := &hubMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ringer_sse_streams", Help: "Open event streams (GET /v1/events) of this process.",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_sse_streams_closed_total",
			Help: "Event streams the server closed on its own: replaced (a newer stream of the same user past RINGER_SSE_PER_USER), slow (the client fell behind).",
		}, []string{"reason"}),
		refusal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringer_sse_streams_refused_total", Help: "Event streams refused because the process held RINGER_SSE_MAX.",
		}),
	}
	for _, c := range []prometheus.Collector{m.open, m.ended, m.refusal} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register event hub metrics: %w", err)
		}
	}
	for _, r := range []string{closeReplaced, closeSlow} {
		m.ended.WithLabelValues(r)
	}
	return m, nil
}

func (m *hubMetrics) setOpen(n int) {
	if m != nil {
		m.open.Set(float64(n))
	}
}

func (m *hubMetrics) closed(reason string) {
	if m != nil {
		m.ended.WithLabelValues(reason).Inc()
	}
}

func (m *hubMetrics) refused() {
	if m != nil {
		m.refusal.Inc()
	}
}
