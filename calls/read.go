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

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/wire"
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
	// known, when set, is the members as the caller wrote them, in their order (sortMembers), in place of
	// members: a big call's create need not read back and decode what it just wrote.
	known []Member
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
// members, which are then read in chunks (scanMembers): one big HGETALL would hold Redis, and every ring
// behind it, for long.
//
// KEYS[1] -> ringer:{<cid>}:members
var membersScript = redis.NewScript(luaMembers + "return members(KEYS[1])")

// listMembersScript answers what GET /v1/calls reads of a call's members: how many there are, the user's
// own member JSON (nil when the user is no member), and some of them: all of a call of at most
// listReadWhole members, else about ARGV[2] from HSCAN steps, so that listing a user's calls never reads a
// big call's members whole.
//
// KEYS[1] -> ringer:{<cid>}:members
// ARGV[1] -> user id
// ARGV[2] -> how many members to answer of a big call (ListMembers)
//
// Returns {count, own member JSON or nil, {field, value, ...}}.
var listMembersScript = redis.NewScript(`
local n = redis.call('HLEN', KEYS[1])
local mine = redis.call('HGET', KEYS[1], ARGV[1])
if n <= ` + strconv.Itoa(listReadWhole) + ` then
  return {n, mine, redis.call('HGETALL', KEYS[1])}
end
local some, cursor, want = {}, '0', tonumber(ARGV[2])
repeat
  local r = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', want)
  cursor = r[1]
  for _, v in ipairs(r[2]) do some[#some + 1] = v end
until cursor == '0' or #some >= 2 * want
return {n, mine, some}
`)

// listReadWhole is the most members of a call that GET /v1/calls reads whole, to show the first ListMembers
// in the order get shows them; of a bigger call it shows some ListMembers members.
const listReadWhole = 100

func queueRead(ctx context.Context, p redis.Pipeliner, cid string) readCmds {
	c := queueState(ctx, p, cid)
	// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and Redis caches the script by its body.
	c.members = membersScript.Eval(ctx, p, []string{gate.CallKey(cid, "members")})
	return c
}

// queueState queues the reads of a call but those of its members.
func queueState(ctx context.Context, p redis.Pipeliner, cid string) readCmds {
	return readCmds{
		call:     p.HGetAll(ctx, gate.CallKey(cid, "call")),
		ring:     p.HGetAll(ctx, gate.RingKey(cid)),
		ringing:  p.ZRangeWithScores(ctx, gate.RingingKey(cid), 0, -1),
		accepted: p.HGetAll(ctx, gate.CallKey(cid, "accepted")),
		rejected: p.HGetAll(ctx, gate.CallKey(cid, "rejected")),
		missed:   p.HGetAll(ctx, gate.CallKey(cid, "missed")),
		joined:   p.HGetAll(ctx, gate.CallKey(cid, "joined")),
	}
}

func (c readCmds) data() callData {
	d := c.stateData()
	d.members = memberPairs(c.members.Val())
	return d
}

// stateData is what queueState read.
func (c readCmds) stateData() callData {
	d := callData{
		call: c.call.Val(), ring: c.ring.Val(),
		accepted: c.accepted.Val(), rejected: c.rejected.Val(), missed: c.missed.Val(), joined: c.joined.Val(),
	}
	for _, z := range c.ringing.Val() {
		m, _ := z.Member.(string)
		d.ringing = append(d.ringing, ringingMember{member: m, endsAt: int64(z.Score)})
	}
	return d
}

// listCmds are the replies of what GET /v1/calls reads of one call for one user.
type listCmds struct {
	state   readCmds
	members *redis.Cmd // listMembersScript
	user    string
}

func queueListRead(ctx context.Context, p redis.Pipeliner, cid, user string) listCmds {
	return listCmds{
		state:   queueState(ctx, p, cid),
		members: listMembersScript.Eval(ctx, p, []string{gate.CallKey(cid, "members")}, user, ListMembers),
		user:    user,
	}
}

// data is the call as read, with the members listMembersScript answered (the user's own among them), how
// many members the call has, and whether the user is one of them.
func (c listCmds) data() (d callData, count int, member bool) {
	d = c.state.stateData()
	d.members = map[string]string{}
	res, _ := c.members.Val().([]any)
	if len(res) != 3 {
		return d, 0, false
	}
	n, _ := res[0].(int64)
	d.members = pairs(res[2])
	mine, ok := res[1].(string)
	if ok {
		d.members[c.user] = mine
	}
	return d, int(n), ok
}

// trimMembers is the first ListMembers of ms, with user's own entry in place of the last when it would not
// be among them.
func trimMembers(ms []Member, user string) []Member {
	if len(ms) <= ListMembers {
		return ms
	}
	out := slices.Clone(ms[:ListMembers])
	if !slices.ContainsFunc(out, func(m Member) bool { return m.UserID == user }) {
		if i := slices.IndexFunc(ms, func(m Member) bool { return m.UserID == user }); i >= 0 {
			out[ListMembers-1] = ms[i]
		}
	}
	return out
}

// snapshot makes the call's snapshot from what the pipeline read, reading a big call's members first.
func (s *Store) snapshot(ctx context.Context, cid string, d callData) (snapshot, error) {
	if d.members == nil && d.known == nil && len(d.call) > 0 {
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

// sortMembers puts members in the order a call shows them: by when they joined it, then by user id.
func sortMembers(members []Member) {
	slices.SortFunc(members, func(a, b Member) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.UserID, b.UserID)
	})
}

// storedMember is a member as memberJSON stores it, its custom object left encoded.
type storedMember struct {
	Role      string          `json:"role"`
	Custom    json.RawMessage `json:"custom"`
	CreatedAt time.Time       `json:"created_at"`
}

// decodeMember decodes a stored member (without its user id, the field it is stored under). A big call's
// reads decode every member, most with an empty custom object: only a custom object that holds something
// takes the decoder that keeps its numbers exact.
func decodeMember(raw string) (Member, error) {
	var sm storedMember
	if err := json.Unmarshal([]byte(raw), &sm); err != nil {
		return Member{}, fmt.Errorf("decode member: %w", err)
	}
	m := Member{Role: sm.Role, Custom: map[string]any{}, CreatedAt: sm.CreatedAt}
	if custom := string(sm.Custom); custom != "" && custom != "{}" && custom != "null" {
		if err := decodeKeepingNumbers(custom, &m.Custom); err != nil {
			return Member{}, fmt.Errorf("decode member's custom: %w", err)
		}
		if m.Custom == nil {
			m.Custom = map[string]any{}
		}
	}
	return m, nil
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

// ringingBy is the acknowledgements (ack:<user> fields) of the ring hash.
func ringingBy(ring map[string]string) map[string]time.Time {
	out := map[string]time.Time{}
	for k, v := range ring {
		if u, ok := strings.CutPrefix(k, "ack:"); ok {
			out[u] = msTime(v)
		}
	}
	return out
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
		if ringsAt(z.endsAt, now) {
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
			MissedBy: timeMap(c.missed), RingingBy: ringingBy(ring), Participants: []Participant{},
		},
	}
	if err := decodeKeepingNumbers(h["custom"], &call.Custom); err != nil {
		return snapshot{}, fmt.Errorf("call %s: custom: %w", cid, err)
	}
	for _, u := range slices.Sorted(maps.Keys(c.joined)) {
		call.Session.Participants = append(call.Session.Participants, Participant{UserID: u, JoinedAt: msTime(c.joined[u])})
	}
	slices.SortStableFunc(call.Session.Participants, func(a, b Participant) int { return a.JoinedAt.Compare(b.JoinedAt) })
	members := c.known
	if members == nil {
		members = make([]Member, 0, len(c.members))
		for u, raw := range c.members {
			m, err := decodeMember(raw)
			if err != nil {
				return snapshot{}, fmt.Errorf("call %s: member %s: %w", cid, u, err)
			}
			m.UserID = u
			members = append(members, m)
		}
		sortMembers(members)
	}
	snap.State = State{Call: call, Members: members}
	return snap, nil
}

// ringsAt tells whether a member whose ring ends at endsAt (unix ms) is still rung at now. It is how a read
// shows a ring whose time passed before any transition settled it (begin in scripts.go): as over, as the
// next transition will make it.
func ringsAt(endsAt int64, now time.Time) bool { return endsAt > now.UnixMilli() }

// callingState is what a user's app shows for the call (useCalls): ringing for an incoming or outgoing ring,
// joined, idle or ended.
func (snap snapshot) callingState(user string, now time.Time) string {
	switch {
	case snap.Call.EndedAt != nil:
		return wire.StateEnded
	case ringsAt(snap.ringing[user], now):
		return wire.StateRinging
	case user == snap.ringCaller && snap.Call.Ringing && !snap.ringAccepted:
		return wire.StateRinging
	}
	for _, p := range snap.Call.Session.Participants {
		if p.UserID == user {
			return wire.StateJoined
		}
	}
	return wire.StateIdle
}

// List returns the actor's calls, newest first, at most 100, filtered by calling state when one is given.
// It shows only calls the actor is still a member of and may see (Visible), each with at most ListMembers
// members.
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
		cmds := make([]listCmds, len(chunk))
		for i, cid := range chunk {
			cmds[i] = queueListRead(ctx, pipe, cid, a.UserID)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("list calls of %s: %w", a.UserID, err)
		}
		for i, cid := range chunk {
			d, count, member := cmds[i].data()
			if len(d.call) == 0 {
				gone = append(gone, cid) // the call lapsed (retention, max age)
				continue
			}
			if !member {
				// Removed from the call, whether or not the removal reached this list.
				continue
			}
			snap, err := s.snapshot(ctx, cid, d)
			if errors.Is(err, ErrNotFound) {
				gone = append(gone, cid) // the call lapsed (retention, max age)
				continue
			}
			if err != nil {
				return nil, err
			}
			if !Visible(a, snap.Call) {
				continue
			}
			state := snap.callingState(a.UserID, now)
			if callingState != "" && state != callingState {
				continue
			}
			items = append(items, ListItem{Call: snap.Call, Members: trimMembers(snap.Members, a.UserID), MemberCount: count,
				CallingState: state, CreatedByMe: snap.Call.CreatedBy.ID == a.UserID})
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
