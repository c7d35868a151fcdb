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

// presenceKey marks a user whose events are kept for replay: set while a stream of the user is open and for at
// least the replay window after the last one closed (Hub.keepPresent), in the user's slot. Only such a user
// can come back with a Last-Event-ID the window still covers, so only its events go to its replay stream: a
// stream costs Redis a few KB however short it is, which a big call's absent members would otherwise pin for a
// whole window each.
func presenceKey(user string) string { return "ringer:{u:" + user + "}:present" }

// presenceRefresh is how often a hub renews the presence of the users it streams to; each renewal lasts the
// replay window and two of these, so a user's presence outlives its last stream by at least the window.
const presenceRefresh = 30 * time.Second

// streamPublishScript appends a transition's events to the replay streams of the members who are present
// (presenceKey), in order, dropping entries older than the replay window, and publishes each on the member's
// channel as "<stream id> <event JSON>", so a live stream and a replay name each event by the same id. An
// absent member's events are published as they are, without an id: a stream of its that opens meanwhile still
// hears them. One call for all the members of a small call whose streams share a node, else one a member
// (replayBatch): each script call has a cost of its own in Redis, and carries the events' JSON once for all
// the members it serves.
//
// KEYS[2k-1] -> ringer:{u:<user>}:events, member k's stream, for k = 1..n
// KEYS[2k] -> ringer:{u:<user>}:present, member k's presence
// ARGV[1] -> the oldest unix ms to keep
// ARGV[2] -> the streams' TTL, ms: a user with no new event loses the stream with the window
// ARGV[3] -> e, the number of events
// ARGV[4..3+e] -> the events' JSON, in order
// ARGV[4+e..3+e+n] -> the members' channels (EventChannel), in the order of KEYS
// Answers nothing.
var streamPublishScript = redis.NewScript(`
local e = tonumber(ARGV[3])
for k = 1, #KEYS / 2 do
  local stream, channel = KEYS[2 * k - 1], ARGV[3 + e + k]
  if redis.call('EXISTS', KEYS[2 * k]) == 1 then
    for i = 4, 3 + e do
      local id = redis.call('XADD', stream, 'MINID', '~', ARGV[1], '*', 'e', ARGV[i])
      redis.call('PUBLISH', channel, id .. ' ' .. ARGV[i])
    end
    redis.call('PEXPIRE', stream, ARGV[2])
  else
    for i = 4, 3 + e do
      redis.call('PUBLISH', channel, ARGV[i])
    end
  end
end
return 0
`)

// replayCallMax is the most members whose streams one call of streamPublishScript serves (see replayBatch).
const replayCallMax = 10

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
