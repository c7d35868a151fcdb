package calls

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultEventReplay is how long a user's events are kept for a client that reconnects (RINGER_EVENTS_REPLAY).
const DefaultEventReplay = 2 * time.Minute

// replayMax bounds the events one reconnect replays.
const replayMax = 1000

// replayKey is the stream of one user's events, in the user's slot.
func replayKey(user string) string { return "ringer:{u:" + user + "}:events" }

// streamPublishScript appends a transition's events to a user's replay stream, in order, dropping entries
// older than the replay window, and publishes each on the user's channel as "<stream id> <event JSON>", so a
// live stream and a replay name each event by the same id. One call per member, not per event and member: a
// ring request's events are two, and each script call has a cost of its own in Redis.
//
// KEYS[1] -> ringer:{u:<user>}:events
// ARGV[1] -> the oldest unix ms to keep
// ARGV[2] -> the user's channel (EventChannel)
// ARGV[3] -> the stream's TTL, ms: a user with no new event loses the stream with the window
// ARGV[4..] -> the events' JSON, in order
// Answers the events' stream ids.
var streamPublishScript = redis.NewScript(`
local ids = {}
for i = 4, #ARGV do
  local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'e', ARGV[i])
  redis.call('PUBLISH', ARGV[2], id .. ' ' .. ARGV[i])
  ids[#ids + 1] = id
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ids
`)

// splitPublished splits a published message into its stream id ("" when it has none) and its event JSON.
func splitPublished(payload string) (id, data string) {
	if strings.HasPrefix(payload, "{") {
		return "", payload
	}
	id, data, _ = strings.Cut(payload, " ")
	return id, data
}

// ErrBadEventID is a Last-Event-ID that is no stream id (<ms>-<seq>).
var ErrBadEventID = errors.New("not an event id")

// streamID is a stream entry id as two numbers.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return streamID{}, fmt.Errorf("%q: %w", s, ErrBadEventID)
	}
	return streamID{ms, seq}, nil
}

// EventIDAfter tells whether stream id a comes after b; an id that does not parse comes after nothing.
func EventIDAfter(a, b string) bool {
	x, err := parseStreamID(a)
	if err != nil {
		return false
	}
	y, err := parseStreamID(b)
	if err != nil {
		return true
	}
	return x.ms > y.ms || (x.ms == y.ms && x.seq > y.seq)
}

// Replay answers the user's events after the event id `after`, oldest first, from at most the replay window
// back (HubConfig.Replay). A client calls it after Subscribe, and drops the live events whose id is not after
// the last replayed one: subscribing first loses nothing published between the two.
func (h *Hub) Replay(ctx context.Context, user, after string) ([]Event, error) {
	if h.replay <= 0 {
		return nil, nil
	}
	last, err := parseStreamID(after)
	if err != nil {
		return nil, err
	}
	start := "(" + after
	if from := uint64(time.Now().Add(-h.replay).UnixMilli()); last.ms < from {
		start = strconv.FormatUint(from, 10) + "-0"
	}
	msgs, err := h.rdb.XRangeN(ctx, replayKey(user), start, "+", replayMax).Result()
	if err != nil {
		return nil, fmt.Errorf("replay events of %s: %w", user, err)
	}
	evs := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		data, _ := m.Values["e"].(string)
		ev, err := decodeEvent(data)
		if err != nil {
			h.log.Error("replayed event not decoded", "user", user, "id", m.ID, "err", err)
			continue
		}
		ev.ID = m.ID
		evs = append(evs, ev)
	}
	return evs, nil
}
