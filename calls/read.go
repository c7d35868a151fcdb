package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/queue"
)

// snapshot is a call as read back, with the ring details the answer does not show.
type snapshot struct {
	State
	ringCaller     string
	ringCallerName string
	ringAccepted   bool
	ringEndsAt     int64
	ringing        map[string]int64 // member -> unix ms its ring ends
}

// callData is one call's keys as read, by the read pipeline (queueRead) or by a transition script's
// answer (see done in scripts.go): the hashes as maps, the ringing set as member -> unix ms its ring ends.
type callData struct {
	call, members, ring, accepted, rejected, missed, joined map[string]string
	ringing                                                 []ringingMember
}

type ringingMember struct {
	member string
	endsAt int64
}

// readCmds are the replies of one call's reads queued on a pipeline.
type readCmds struct {
	call, ring, accepted, rejected, missed, joined *redis.MapStringStringCmd
	members                                        *redis.Cmd
	ringing                                        *redis.ZSliceCmd
}

// membersScript answers a call's member hash, or only its size when the call has more than inlineMembers
// members, which are then read in chunks (scanMembers): one big HGETALL would hold Redis for tens of ms.
//
// KEYS[1] -> ringer:{<cid>}:members
var membersScript = redis.NewScript(luaMembers + "return members(KEYS[1])")

func queueRead(ctx context.Context, p redis.Pipeliner, cid string) readCmds {
	return readCmds{
		call: p.HGetAll(ctx, queue.CallKey(cid, "call")),
		// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and Redis caches the script by its body.
		members:  membersScript.Eval(ctx, p, []string{queue.CallKey(cid, "members")}),
		ring:     p.HGetAll(ctx, queue.RingKey(cid)),
		ringing:  p.ZRangeWithScores(ctx, queue.RingingKey(cid), 0, -1),
		accepted: p.HGetAll(ctx, queue.CallKey(cid, "accepted")),
		rejected: p.HGetAll(ctx, queue.CallKey(cid, "rejected")),
		missed:   p.HGetAll(ctx, queue.CallKey(cid, "missed")),
		joined:   p.HGetAll(ctx, queue.CallKey(cid, "joined")),
	}
}

func (c readCmds) data() callData {
	d := callData{
		call: c.call.Val(), members: memberPairs(c.members.Val()), ring: c.ring.Val(),
		accepted: c.accepted.Val(), rejected: c.rejected.Val(), missed: c.missed.Val(), joined: c.joined.Val(),
	}
	for _, z := range c.ringing.Val() {
		m, _ := z.Member.(string)
		d.ringing = append(d.ringing, ringingMember{member: m, endsAt: int64(z.Score)})
	}
	return d
}

// snapshot makes the call's snapshot from what the pipeline read, reading a big call's members first.
func (s *Store) snapshot(ctx context.Context, cid string, d callData) (snapshot, error) {
	if d.members == nil && len(d.call) > 0 {
		var err error
		if d.members, err = s.scanMembers(ctx, cid); err != nil {
			return snapshot{}, err
		}
	}
	return d.snapshot(cid, s.now())
}

func (s *Store) read(ctx context.Context, cid string) (snapshot, error) {
	pipe := s.rdb.Pipeline()
	cmds := queueRead(ctx, pipe, cid)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return snapshot{}, fmt.Errorf("read call %s: %w", cid, err)
	}
	return s.snapshot(ctx, cid, cmds.data())
}

// decodeKeepingNumbers decodes JSON without rounding numbers in custom objects through float64.
func decodeKeepingNumbers(raw string, v any) error {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

func msTime(v string) time.Time {
	ms, _ := strconv.ParseInt(v, 10, 64)
	return time.UnixMilli(ms).UTC()
}

func msTimePtr(v string) *time.Time {
	if v == "" {
		return nil
	}
	t := msTime(v)
	return &t
}

func timeMap(m map[string]string) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		out[k] = msTime(v)
	}
	return out
}

func (c callData) snapshot(cid string, now time.Time) (snapshot, error) {
	h := c.call
	if len(h) == 0 {
		return snapshot{}, fmt.Errorf("call %s: %w", cid, ErrNotFound)
	}
	ring := c.ring
	snap := snapshot{
		ringCaller: ring["caller"], ringCallerName: ring["caller_name"], ringAccepted: ring["accepted"] == "1",
		ringing: map[string]int64{},
	}
	snap.ringEndsAt, _ = strconv.ParseInt(ring["ends_at"], 10, 64)
	live := false
	for _, z := range c.ringing {
		snap.ringing[z.member] = z.endsAt
		if z.endsAt > now.UnixMilli() {
			live = true
		}
	}
	auto, _ := strconv.Atoi(h["auto_ms"])
	incoming, _ := strconv.Atoi(h["incoming_ms"])
	call := Call{
		CID: cid, Type: h["type"], ID: h["id"],
		CreatedBy: UserRef{ID: h["created_by"], Name: h["created_by_name"], Image: h["created_by_image"]},
		CreatedAt: msTime(h["created_at"]),
		Custom:    map[string]any{},
		Settings:  Settings{Ring: RingSettings{AutoCancelTimeoutMs: auto, IncomingCallTimeoutMs: incoming}},
		StartsAt:  msTimePtr(h["starts_at"]),
		Team:      h["team"],
		Ringing:   live && h["ended_at"] == "",
		RingID:    ring["id"],
		EndedAt:   msTimePtr(h["ended_at"]),
		Session: Session{
			AcceptedBy: timeMap(c.accepted), RejectedBy: timeMap(c.rejected),
			MissedBy: timeMap(c.missed), Participants: []Participant{},
		},
	}
	if err := decodeKeepingNumbers(h["custom"], &call.Custom); err != nil {
		return snapshot{}, fmt.Errorf("call %s: custom: %w", cid, err)
	}
	for _, u := range slices.Sorted(maps.Keys(c.joined)) {
		call.Session.Participants = append(call.Session.Participants, Participant{UserID: u, JoinedAt: msTime(c.joined[u])})
	}
	slices.SortStableFunc(call.Session.Participants, func(a, b Participant) int { return a.JoinedAt.Compare(b.JoinedAt) })
	members := make([]Member, 0, len(c.members))
	for u, raw := range c.members {
		var m Member
		if err := decodeKeepingNumbers(raw, &m); err != nil {
			return snapshot{}, fmt.Errorf("call %s: member %s: %w", cid, u, err)
		}
		m.UserID = u
		if m.Custom == nil {
			m.Custom = map[string]any{}
		}
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b Member) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		if a.UserID < b.UserID {
			return -1
		}
		if a.UserID > b.UserID {
			return 1
		}
		return 0
	})
	snap.State = State{Call: call, Members: members}
	return snap, nil
}

// callingState is what a user's app shows for the call (useCalls): ringing for an incoming or outgoing ring,
// joined, idle or ended.
func (snap snapshot) callingState(user string, now time.Time) string {
	switch {
	case snap.Call.EndedAt != nil:
		return StateEnded
	case snap.ringing[user] > now.UnixMilli():
		return StateRinging
	case user == snap.ringCaller && snap.Call.Ringing && !snap.ringAccepted:
		return StateRinging
	}
	for _, p := range snap.Call.Session.Participants {
		if p.UserID == user {
			return StateJoined
		}
	}
	return StateIdle
}

// List returns the actor's calls, newest first, at most 100, filtered by calling state when one is given.
func (s *Store) List(ctx context.Context, a Actor, callingState string) ([]ListItem, error) {
	cids, err := s.rdb.ZRevRange(ctx, userCallsKey(a.UserID), 0, maxUserCalls-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list calls of %s: %w", a.UserID, err)
	}
	now := s.now()
	items := []ListItem{}
	var gone []any
	const batch = 100
	for start := 0; start < len(cids) && len(items) < 100; start += batch {
		chunk := cids[start:min(start+batch, len(cids))]
		pipe := s.rdb.Pipeline()
		cmds := make([]readCmds, len(chunk))
		for i, cid := range chunk {
			cmds[i] = queueRead(ctx, pipe, cid)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("list calls of %s: %w", a.UserID, err)
		}
		for i, cid := range chunk {
			snap, err := s.snapshot(ctx, cid, cmds[i].data())
			if errors.Is(err, ErrNotFound) {
				gone = append(gone, cid) // the call lapsed (retention, max age)
				continue
			}
			if err != nil {
				return nil, err
			}
			if checkTeam(a, snap.Call.Team) != nil {
				continue
			}
			state := snap.callingState(a.UserID, now)
			if callingState != "" && state != callingState {
				continue
			}
			items = append(items, ListItem{Call: snap.Call, Members: snap.Members, CallingState: state, CreatedByMe: snap.Call.CreatedBy.ID == a.UserID})
			if len(items) == 100 {
				break
			}
		}
	}
	if len(gone) > 0 {
		// The list keeps only calls that still exist; a failure here only leaves them for the next List.
		if err := s.rdb.ZRem(ctx, userCallsKey(a.UserID), gone...).Err(); err != nil {
			s.log.Warn("lapsed calls not dropped from the call list", "user", a.UserID, "err", err)
		}
	}
	return items, nil
}

// displayName is the first string among the call's custom display_name, name and title (API.md).
func displayName(custom map[string]any) string {
	for _, k := range []string{"display_name", "name", "title"} {
		if v, ok := custom[k].(string); ok {
			return v
		}
	}
	return ""
}

// callInfo is what pushes about the call show; the caller is who rang (or notified).
func callInfo(c Call, callerID, callerName string) queue.CallInfo {
	if callerID == "" {
		callerID, callerName = c.CreatedBy.ID, c.CreatedBy.Name
	}
	video, _ := c.Custom["video"].(bool)
	return queue.CallInfo{
		CID: c.CID, Type: c.Type, ID: c.ID, DisplayName: displayName(c.Custom),
		CreatedByID: callerID, CreatedByName: callerName, Video: video, Custom: c.Custom,
	}
}
