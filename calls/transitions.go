package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/wire"
)

// run runs a transition script on the call's keys as actor a and applies what it owes (see runKeys).
func (s *Store) run(ctx context.Context, a Actor, sc *redis.Script, cid string, args ...any) (outcome, snapshot, error) {
	return s.runKeys(ctx, a, sc, callKeys(cid), cid, nil, args...)
}

// owedBeyond is what a transition owes beyond its script's outcome, only once it has happened (statusOK):
// the call lists to write (index), and, for a create, the reminder its request asked for (remind, see
// remindIfAsked) and its notification (notify). finish carries them out.
type owedBeyond struct {
	index  *memberIndex
	remind *time.Time
	notify bool
	// known is the members a create wrote, in their order (sortMembers), when it is too big for its script to
	// answer them: the call it made has them, and they need not be read back.
	known []Member
}

// runKeys is the one path of every transition: it runs script sc on keys (the call's keys, then any a script
// takes beyond them), applies every effect its outcome owes (finish), and only then maps a status that
// refuses the transition to an error. A refused transition may still owe effects: the script settled what
// was due (a ring whose time passed) before it refused. also (may be nil) is carried out only for a
// transition that happened (statusOK). It returns the outcome and the call as the script left it.
func (s *Store) runKeys(ctx context.Context, a Actor, sc *redis.Script, keys []string, cid string, also *owedBeyond, args ...any) (outcome, snapshot, error) {
	var out outcome
	if len(s.webhooks) > 0 {
		// Written before the transition, so that an event it puts in the outbox is found by the sweeper
		// even if this process dies before it enqueues the event's webhooks (Store.SweepOutbox).
		if err := s.rdb.ZAdd(ctx, outboxCallsKey, redis.Z{Score: float64(s.now().UnixMilli()), Member: cid}).Err(); err != nil {
			return out, snapshot{}, fmt.Errorf("call %s: outbox index: %w", cid, err)
		}
	}
	// Events go to the outbox only for a process that delivers webhooks: the outbox exists for them alone.
	outbox := 0
	if len(s.webhooks) > 0 {
		outbox = 1
	}
	argv := append([]any{fmt.Sprintf("%d:%d:%d:%d", s.now().UnixMilli(), s.retention.Milliseconds(), s.maxAge.Milliseconds(), outbox)}, args...)
	res, err := sc.Run(ctx, s.rdb, keys, argv...).Slice()
	if err != nil {
		return out, snapshot{}, fmt.Errorf("call %s: %w", cid, err)
	}
	data, raw, err := scriptAnswer(res)
	if err != nil {
		return out, snapshot{}, fmt.Errorf("call %s: %w", cid, err)
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return out, snapshot{}, fmt.Errorf("call %s: decode outcome: %w", cid, err)
	}
	// Counted whatever the status: a script that answers ended or not_rung may still have missed members.
	s.metrics.observe(out)
	if out.Status == statusNotFound {
		return out, snapshot{}, out.Status.err(cid, out)
	}
	if out.Status == statusOK && also != nil && also.known != nil {
		data.known = also.known
	}
	snap, err := s.snapshot(ctx, cid, data)
	if err != nil {
		return out, snap, err
	}
	if out.Status != statusOK {
		// What a refused transition owes was settled on the way, by nobody in particular; and a transition
		// that did not happen added nobody to a call list, and asked for nothing more.
		a, also = Actor{}, nil
	}
	if out.Status.applied() || out.hasEffects() {
		if err := s.finish(ctx, a, out, snap, also); err != nil {
			return out, snap, err
		}
	}
	return out, snap, out.Status.err(cid, out)
}

func ringTimeouts(o *SettingsOverride) RingSettings {
	rs := RingSettings{AutoCancelTimeoutMs: DefaultRingTimeoutMs, IncomingCallTimeoutMs: DefaultRingTimeoutMs}
	if o != nil && o.Ring != nil {
		if o.Ring.AutoCancelTimeoutMs != 0 {
			rs.AutoCancelTimeoutMs = o.Ring.AutoCancelTimeoutMs
		}
		if o.Ring.IncomingCallTimeoutMs != 0 {
			rs.IncomingCallTimeoutMs = o.Ring.IncomingCallTimeoutMs
		}
	}
	return rs
}

// memberOf is the member m makes at time at, its defaults filled in. at is in UTC without a monotonic reading,
// so that it is the time a read of the member decodes.
func memberOf(m MemberInput, at time.Time) Member {
	if m.Role == "" {
		m.Role = "user"
	}
	if m.Custom == nil {
		m.Custom = map[string]any{}
	}
	return Member{UserID: m.UserID, Role: m.Role, Custom: m.Custom, CreatedAt: at.UTC().Round(0)}
}

// memberJSON is m as a call's members hash stores it, under its user id.
func memberJSON(m MemberInput, at time.Time) (string, error) {
	stored := memberOf(m, at)
	stored.UserID = ""
	b, err := json.Marshal(stored)
	return string(b), err
}

// createSpec is createScript's ARGV[2]. Its slices are never nil: the script reads them as Lua tables, and
// cjson would decode null as a sentinel value instead.
type createSpec struct {
	Fields     []string `json:"fields"`
	Members    []string `json:"members"`
	Ring       bool     `json:"ring"`
	RingID     string   `json:"ring_id"`
	Caller     string   `json:"caller"`
	CallerName string   `json:"caller_name"`
	Callees    []string `json:"callees"`
}

// GetOrCreate creates the call as the actor, or returns it when it exists. ring rings every other member of a
// call it created; notify notifies every other member either way.
func (s *Store) GetOrCreate(ctx context.Context, a Actor, typ, id string, req CreateRequest) (State, bool, error) {
	cid := CID(typ, id)
	if a.UserID == "" {
		// The backend naming nobody can only get a call that exists: a new call needs a creator.
		if !a.Server {
			return State{}, false, &FieldError{Field: "data.created_by_id", Message: "a call needs a creator"}
		}
		st, err := s.Get(ctx, a, typ, id, false, req.Notify)
		if errors.Is(err, ErrNotFound) {
			return State{}, false, &FieldError{Field: "data.created_by_id", Message: "is required with a server token to create a call"}
		}
		return st, false, err
	}
	if req.Team != "" && !a.Server && !slices.Contains(a.Teams, req.Team) {
		return State{}, false, fmt.Errorf("create %s in team %q: %w", cid, req.Team, ErrForbidden)
	}
	if err := checkTeamMembers(a, cid, req.Team, req.Members); err != nil {
		return State{}, false, err
	}
	now := s.now()
	members := req.Members
	if !slices.ContainsFunc(members, func(m MemberInput) bool { return m.UserID == a.UserID }) {
		members = append([]MemberInput{{UserID: a.UserID, Role: "admin"}}, members...)
	}
	if len(members) > MaxMembers {
		return State{}, false, &FieldError{Field: "data.members", Message: fmt.Sprintf("has %d members with the creator, more than the limit of %d", len(members), MaxMembers), Limit: true}
	}
	custom := req.Custom
	if custom == nil {
		custom = map[string]any{}
	}
	customJSON, err := json.Marshal(custom)
	if err != nil {
		return State{}, false, &FieldError{Field: "data.custom", Message: err.Error()}
	}
	rs := ringTimeouts(req.SettingsOverride)
	startsAt := ""
	if req.StartsAt != nil {
		startsAt = strconv.FormatInt(req.StartsAt.UnixMilli(), 10)
	}
	fields := []string{
		"type", typ, "id", id, "created_by", a.UserID, "created_by_name", a.Name, "created_by_image", a.Image,
		"created_at", strconv.FormatInt(now.UnixMilli(), 10), "custom", string(customJSON),
		"auto_ms", strconv.Itoa(rs.AutoCancelTimeoutMs), "incoming_ms", strconv.Itoa(rs.IncomingCallTimeoutMs),
		"starts_at", startsAt, "team", req.Team,
	}
	memberPairs := make([]string, 0, 2*len(members))
	callees := make([]string, 0, len(members))
	// A member with no role or custom object of its own is stored as the same JSON as every other such member of
	// the call, as most members of a big call are: encoded once.
	var plainJSON string
	for _, m := range members {
		plain := m.Role == "" && len(m.Custom) == 0
		mj := plainJSON
		if !plain || plainJSON == "" {
			if mj, err = memberJSON(m, now); err != nil {
				return State{}, false, &FieldError{Field: "data.members", Message: err.Error()}
			}
			if plain {
				plainJSON = mj
			}
		}
		memberPairs = append(memberPairs, m.UserID, mj)
		if req.Ring && m.UserID != a.UserID {
			// Only a ring needs them: decoding a big call's every callee would cost the script milliseconds.
			callees = append(callees, m.UserID)
		}
	}
	if req.Ring {
		if err := s.admitRing(ctx, a, cid); err != nil {
			return State{}, false, err
		}
	}
	keys := callKeys(cid)
	var known []Member
	if len(members) > inlineMembers {
		if keys, memberPairs, err = s.stageBig(ctx, cid, keys, memberPairs); err != nil {
			return State{}, false, err
		}
		known = make([]Member, len(members))
		for i, m := range members {
			known[i] = memberOf(m, now)
		}
		sortMembers(known)
	}
	spec, err := json.Marshal(createSpec{
		Fields: fields, Members: memberPairs, Ring: req.Ring, RingID: newID(),
		Caller: a.UserID, CallerName: a.Name, Callees: callees,
	})
	if err != nil {
		return State{}, false, fmt.Errorf("create %s: %w", cid, err)
	}
	also := &owedBeyond{index: &memberIndex{at: now, users: memberIDs(members)}, remind: req.StartsAt, notify: req.Notify, known: known}
	out, snap, err := s.runKeys(ctx, a, createScript, keys, cid, also, string(spec))
	created := out.Status == statusOK
	if err != nil {
		return State{}, created, err
	}
	if !created {
		// The call existed: the script changed nothing, owed nothing, and answered it as it is, so the access
		// checks that loadFor makes before other transitions are made on that answer, without another round
		// trip.
		if err := checkTeam(a, snap.Call.Team); err != nil {
			return State{}, false, err
		}
		if err := checkRead(a, cid, slices.ContainsFunc(snap.Members, func(m Member) bool { return m.UserID == a.UserID })); err != nil {
			return State{}, false, err
		}
	}
	st := snap.State
	if created {
		// Its reminder and its notification went with its effects (finish).
		return st, true, nil
	}
	// A retry of a request whose first try created the call but failed before its reminder was scheduled
	// schedules it now (the task id keeps it single).
	if err := s.remindIfAsked(ctx, req.StartsAt, st.Call); err != nil {
		return st, false, err
	}
	if req.Notify {
		if err := s.notify(ctx, a, st); err != nil {
			return st, false, err
		}
	}
	return st, false, nil
}

// Get returns the call; ring rings its members like POST .../ring with no names, notify notifies them.
func (s *Store) Get(ctx context.Context, a Actor, typ, id string, ring, notify bool) (State, error) {
	cid := CID(typ, id)
	acc, err := s.loadFor(ctx, a, cid, false)
	if err != nil {
		return State{}, err
	}
	if err := checkRead(a, cid, acc.member != nil); err != nil {
		return State{}, err
	}
	var st State
	if ring {
		rung, err := s.Ring(ctx, a, typ, id, nil)
		if err != nil {
			return State{}, err
		}
		st = rung
	} else {
		snap, err := s.read(ctx, cid)
		if err != nil {
			return State{}, err
		}
		st = snap.State
	}
	if notify {
		if err := s.notify(ctx, a, st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// speaker is who a ring or a notification shows as calling: the actor, or, for the backend naming nobody,
// the call's creator.
func speaker(a Actor, c Call) (id, name string) {
	if a.UserID == "" {
		return c.CreatedBy.ID, c.CreatedBy.Name
	}
	return a.UserID, a.Name
}

// notify notifies every member of the call but its speaker, and publishes the notification's event.
func (s *Store) notify(ctx context.Context, a Actor, st State) error {
	ev, err := s.sendNotification(ctx, a, st, nil)
	if err != nil {
		return err
	}
	return s.publish(ctx, st, []evt{ev}, nil)
}

// notifyListChunk is how many members' call lists a notification writes before it enqueues their part of it
// (sendNotification): a multiple of queue.NotifyBatch, so a part is whole tasks.
const notifyListChunk = 10 * queue.NotifyBatch

// sendNotification enqueues the notification of every member but its speaker, and its webhooks, and answers
// its event, for the caller to publish. lists (may be nil) are the call lists to write first, so that a
// member the notification reaches finds the call in its list: they are written notifyListChunk members at a
// time, each part of the notification enqueued once its members' lists are, so that a big call's first
// pushes wait for a part's lists rather than for every member's.
func (s *Store) sendNotification(ctx context.Context, a Actor, st State, lists *memberIndex) (evt, error) {
	who, name := speaker(a, st.Call)
	var to []string
	for _, m := range st.Members {
		if m.UserID != who {
			to = append(to, m.UserID)
		}
	}
	info := callInfo(st.Call, who, name)
	notifyID := newID()
	for k, part := range listParts(lists, to) {
		if !part.empty() {
			if err := s.publish(ctx, st, nil, part); err != nil {
				return evt{}, err
			}
		}
		start := k * notifyListChunk
		from, until := start/queue.NotifyBatch, queue.NotifyTasks(min(start+notifyListChunk, len(to)))
		if err := s.queue.NotifyBatches(ctx, info, notifyID, queue.EventNotification, to, from, until); err != nil {
			return evt{}, fmt.Errorf("notify %s: %w", st.Call.CID, err)
		}
	}
	if err := s.notifyWebhooks(ctx, st, who, notifyID); err != nil {
		return evt{}, err
	}
	return evt{typ: queue.EventNotification, user: who}, nil
}

// Ring rings the named members (every member but the caller when none are named). The caller is the actor,
// who must be a member; the backend naming nobody rings as the call's creator. Who may ring whom is worked
// out by ringScript on the call as it is, in the step that rings. The ring is admitted (admitRing) before it,
// since the script stores the ring as soon as those checks pass.
func (s *Store) Ring(ctx context.Context, a Actor, typ, id string, memberIDs []string) (State, error) {
	cid := CID(typ, id)
	if err := s.admitRing(ctx, a, cid); err != nil {
		return State{}, err
	}
	spec, err := json.Marshal(ringSpec{teamAccess: accessOf(a), RingID: newID(), User: a.UserID, Name: a.Name,
		Members: nonNil(memberIDs), Max: MaxRingMembers})
	if err != nil {
		return State{}, fmt.Errorf("ring %s: %w", cid, err)
	}
	_, snap, err := s.run(ctx, a, ringScript, cid, string(spec))
	return snap.State, err
}

// ringSpec is ringScript's ARGV[2]. Its slices are never nil (see createSpec).
type ringSpec struct {
	teamAccess
	RingID  string   `json:"ring_id"`
	User    string   `json:"user"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Max     int      `json:"max"`
}

// listParts splits lists by the part of the notification to whose members it belongs (sendNotification):
// the lists of to[k*notifyListChunk:(k+1)*notifyListChunk] in part k, and those of anyone else (the speaker),
// and the removals, in part 0. There is always a part 0; a part may be nil.
func listParts(lists *memberIndex, to []string) []*memberIndex {
	parts := make([]*memberIndex, max((len(to)+notifyListChunk-1)/notifyListChunk, 1))
	if lists.empty() {
		return parts
	}
	part := make(map[string]int, len(to))
	for i, u := range to {
		part[u] = i / notifyListChunk
	}
	parts[0] = &memberIndex{at: lists.at, removed: lists.removed}
	for _, u := range lists.users {
		k := part[u]
		if parts[k] == nil {
			parts[k] = &memberIndex{at: lists.at}
		}
		parts[k].users = append(parts[k].users, u)
	}
	return parts
}

// nonNil is s, or an empty slice for nil: cjson decodes null as a sentinel, not as a table.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Accept accepts the ring for the actor.
func (s *Store) Accept(ctx context.Context, a Actor, typ, id string) (State, error) {
	return s.transition(ctx, a, typ, id, acceptScript, a.UserID)
}

// Reject rejects the ring for the actor, or cancels it when the actor is the ring's caller.
func (s *Store) Reject(ctx context.Context, a Actor, typ, id, reason string) (State, error) {
	if reason == "" {
		reason = wire.ReasonDecline
	}
	return s.transition(ctx, a, typ, id, rejectScript, a.UserID, reason)
}

// Ringing records that the actor's device rings for the ring (POST .../ringing): the first time, a
// call.ringing event; again, nothing. A member not being rung is ErrNotRung.
func (s *Store) Ringing(ctx context.Context, a Actor, typ, id string) (State, error) {
	return s.transition(ctx, a, typ, id, ringingScript, a.UserID)
}

// Join joins the actor, accepting first if it is being rung.
func (s *Store) Join(ctx context.Context, a Actor, typ, id string) (State, error) {
	return s.transition(ctx, a, typ, id, joinScript, a.UserID)
}

// Leave takes the actor out; the caller leaving before any accept cancels the ring.
func (s *Store) Leave(ctx context.Context, a Actor, typ, id string) (State, error) {
	return s.transition(ctx, a, typ, id, leaveScript, a.UserID)
}

// MarkEnded ends the call for everyone. It needs the end-call right: the creator, a member with role admin,
// a user token with role admin, or the backend.
func (s *Store) MarkEnded(ctx context.Context, a Actor, typ, id string) (State, error) {
	cid := CID(typ, id)
	if err := s.checkEndRight(ctx, a, cid, "end"); err != nil {
		return State{}, err
	}
	_, snap, err := s.run(ctx, a, markEndedScript, cid, a.UserID)
	return snap.State, err
}

// Update changes a call's starts_at, custom and ring settings (PATCH /v1/call/{type}/{id}). It needs the
// end-call right, as MarkEnded does. A change sends call.updated; an update that changes nothing sends none.
func (s *Store) Update(ctx context.Context, a Actor, typ, id string, req UpdateRequest) (State, error) {
	cid := CID(typ, id)
	if err := s.checkEndRight(ctx, a, cid, "update"); err != nil {
		return State{}, err
	}
	var fields []string
	switch {
	case req.ClearStartsAt:
		fields = append(fields, "starts_at", "")
	case req.StartsAt != nil:
		fields = append(fields, "starts_at", strconv.FormatInt(req.StartsAt.UnixMilli(), 10))
	}
	if req.Custom != nil {
		b, err := json.Marshal(req.Custom)
		if err != nil {
			return State{}, &FieldError{Field: "custom", Message: err.Error()}
		}
		fields = append(fields, "custom", string(b))
	}
	if o := req.SettingsOverride; o != nil && o.Ring != nil {
		if o.Ring.AutoCancelTimeoutMs != 0 {
			fields = append(fields, "auto_ms", strconv.Itoa(o.Ring.AutoCancelTimeoutMs))
		}
		if o.Ring.IncomingCallTimeoutMs != 0 {
			fields = append(fields, "incoming_ms", strconv.Itoa(o.Ring.IncomingCallTimeoutMs))
		}
	}
	spec, err := json.Marshal(struct {
		Fields []string `json:"fields"`
	}{Fields: append([]string{}, fields...)})
	if err != nil {
		return State{}, fmt.Errorf("update %s: %w", cid, err)
	}
	_, snap, err := s.run(ctx, a, updateScript, cid, string(spec), a.UserID)
	st := snap.State
	if err != nil {
		return st, err
	}
	if err := s.remindIfAsked(ctx, req.StartsAt, st.Call); err != nil {
		return st, err
	}
	return st, nil
}

// remindIfAsked schedules the reminder of call c when the request gave the starts_at c now has and it is
// ahead: for the request that set it, and again for a retry of that request, whose first try may have failed
// before its reminder was scheduled (the task id keeps the two single). A starts_at the request did not give
// was scheduled by the request that gave it.
func (s *Store) remindIfAsked(ctx context.Context, asked *time.Time, c Call) error {
	if asked == nil || c.StartsAt == nil || c.EndedAt != nil || asked.UnixMilli() != c.StartsAt.UnixMilli() {
		return nil
	}
	now := s.now()
	if !c.StartsAt.After(now) {
		return nil
	}
	at := c.StartsAt.Add(-s.reminderLead)
	if at.Before(now) {
		at = now // the lead has passed while starts_at is ahead: remind at once
	}
	if err := s.queue.ScheduleReminder(ctx, c.CID, *c.StartsAt, at); err != nil {
		return fmt.Errorf("call %s: %w", c.CID, err)
	}
	return nil
}

// Reminder is what the reminder of call cid for startsAt (unix ms) owes (API.md, "Reminders"): the call as
// pushes show it, with its creator as the caller, and the members to remind, every one but the creator who
// has not joined. due is false, and nobody is reminded, when the call is gone or ended, or its starts_at is
// no longer startsAt or no longer ahead.
func (s *Store) Reminder(ctx context.Context, cid string, startsAt int64) (info queue.CallInfo, members []string, due bool, err error) {
	snap, err := s.read(ctx, cid)
	if errors.Is(err, ErrNotFound) {
		return queue.CallInfo{}, nil, false, nil
	}
	if err != nil {
		return queue.CallInfo{}, nil, false, fmt.Errorf("reminder of %s: %w", cid, err)
	}
	c := snap.Call
	if c.EndedAt != nil || c.StartsAt == nil || c.StartsAt.UnixMilli() != startsAt || !c.StartsAt.After(s.now()) {
		return queue.CallInfo{}, nil, false, nil
	}
	joined := make(map[string]bool, len(c.Session.Participants))
	for _, p := range c.Session.Participants {
		joined[p.UserID] = true
	}
	for _, m := range snap.Members {
		if m.UserID != c.CreatedBy.ID && !joined[m.UserID] {
			members = append(members, m.UserID)
		}
	}
	return callInfo(c, c.CreatedBy.ID, c.CreatedBy.Name), members, true, nil
}

func (s *Store) transition(ctx context.Context, a Actor, typ, id string, sc *redis.Script, args ...any) (State, error) {
	cid := CID(typ, id)
	// The script checks the actor's access itself (begin in scripts.go), in the same step as the transition.
	access, err := json.Marshal(accessOf(a))
	if err != nil {
		return State{}, fmt.Errorf("call %s: %w", cid, err)
	}
	_, snap, err := s.run(ctx, a, sc, cid, append(args, string(access))...)
	if err != nil {
		return State{}, err
	}
	return snap.State, nil
}

// teamAccess is what the scripts' team rule (in_team in scripts.go) knows of the actor: the access argument
// of a member's own transition (begin), and part of the ring's spec. Teams is never nil (see createSpec).
type teamAccess struct {
	Server bool     `json:"server"`
	Teams  []string `json:"teams"`
}

func accessOf(a Actor) teamAccess { return teamAccess{Server: a.Server, Teams: nonNil(a.Teams)} }

// UpdateMembers adds or changes members and removes others: the creator, an admin member or the backend.
func (s *Store) UpdateMembers(ctx context.Context, a Actor, typ, id string, update []MemberInput, remove []string) (State, error) {
	cid := CID(typ, id)
	acc, err := s.loadFor(ctx, a, cid, false)
	if err != nil {
		return State{}, err
	}
	if !(a.Server || a.UserID == acc.createdBy || (acc.member != nil && acc.member.Role == "admin")) {
		return State{}, fmt.Errorf("update members of %s by %q: %w", cid, a.UserID, ErrForbidden)
	}
	now := s.now()
	existing, err := s.rdb.HMGet(ctx, gate.CallKey(cid, "members"), memberIDs(update)...).Result()
	if err != nil && len(update) > 0 {
		return State{}, fmt.Errorf("update members of %s: %w", cid, err)
	}
	pairs := make([]string, 0, 2*len(update))
	var added []string
	for i, m := range update {
		created := now
		if i < len(existing) && existing[i] != nil {
			var old Member
			if json.Unmarshal([]byte(str(existing[i])), &old) == nil {
				created = old.CreatedAt
				if m.Role == "" {
					m.Role = old.Role
				}
				if m.Custom == nil {
					m.Custom = old.Custom
				}
			}
		} else {
			added = append(added, m.UserID)
		}
		mj, err := memberJSON(m, created)
		if err != nil {
			return State{}, &FieldError{Field: fmt.Sprintf("update_members[%d]", i), Message: err.Error()}
		}
		pairs = append(pairs, m.UserID, mj)
	}
	if remove == nil {
		remove = []string{}
	}
	// The team rule and the member limit are checked by the script, on the members as they are when it
	// runs: checked here, on what HMGET read, a concurrent update could slip past either.
	adder := a.UserID
	if a.Server {
		adder = ""
	}
	spec, err := json.Marshal(updateSpec{Update: pairs, Remove: remove, Adder: adder, Max: MaxMembers})
	if err != nil {
		return State{}, fmt.Errorf("update members of %s: %w", cid, err)
	}
	_, snap, err := s.runKeys(ctx, a, updateMembersScript, callKeys(cid), cid, &owedBeyond{index: &memberIndex{at: now, users: added, removed: remove}}, string(spec))
	return snap.State, err
}

// updateSpec is updateMembersScript's ARGV[2]. Its slices are never nil (see createSpec).
type updateSpec struct {
	Update []string `json:"update"` // user, member JSON, ...
	Remove []string `json:"remove"`
	// Adder is the user token's user, who alone may be added to a team call by it; "" for the backend.
	Adder string `json:"adder"`
	Max   int    `json:"max"`
}

// Expire settles a ring's timeouts: it misses the members whose ring time has passed, and ends the ring (and
// the call, when nobody accepted) at the ring's end. The timeout task and the watchdog both call it; every
// other transition settles the same way first (begin in scripts.go), so a timeout is settled in one place
// whoever comes first.
func (s *Store) Expire(ctx context.Context, cid, ringID string) error {
	_, _, err := s.run(ctx, Actor{}, expireScript, cid, ringID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
