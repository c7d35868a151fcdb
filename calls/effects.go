package calls

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ringer-dev/ringer/queue"
)

type evt struct{ typ, user string }

// finish reads the call back after a transition and carries out what the transition owes: ring pushes and
// their timeouts, stop and missed-call pushes, events. The transition has already happened; an error here
// is returned so the client can retry, and the deterministic task ids keep a retried effect single.
func (s *Store) finish(ctx context.Context, cid string, a Actor, out outcome) (State, error) {
	snap, err := s.read(ctx, cid)
	if err != nil {
		return State{}, err
	}
	info := callInfo(snap.Call, snap.ringCaller, snap.ringCallerName)
	if err := s.enqueueEffects(ctx, cid, info, snap, out); err != nil {
		s.log.Error("call effects not enqueued", "cid", cid, "ring_id", out.RingID, "err", err)
		return snap.State, fmt.Errorf("call %s: effects: %w", cid, err)
	}
	s.waitForRingSends(ctx, cid, out.StopRingID, append(slices.Clone([]string(out.StopMembers)), out.Missed...))
	evs := make([]evt, len(out.EventTypes))
	for i, t := range out.EventTypes {
		u := ""
		if i < len(out.EventUsers) {
			u = out.EventUsers[i]
		}
		if u == "" {
			u = a.UserID
		}
		evs[i] = evt{typ: t, user: u}
	}
	s.publish(ctx, snap.State, evs)
	return snap.State, nil
}

// ringSendWait bounds how long a transition's answer waits for ring pushes already in flight.
const ringSendWait = 250 * time.Millisecond

// waitForRingSends returns once no worker is still sending a ring push of ringID to members. The transition
// closed their gate atomically, so none can start after it; waiting for those already in flight means that,
// once the client has the answer, no ring push reaches these members' phones any more.
func (s *Store) waitForRingSends(ctx context.Context, cid, ringID string, members []string) {
	if len(members) == 0 || ringID == "" {
		return
	}
	keys := make([]string, len(members))
	for i, m := range members {
		keys[i] = queue.LeaseKey(cid, ringID, m)
	}
	deadline := time.Now().Add(ringSendWait)
	for time.Now().Before(deadline) {
		holders, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return
		}
		busy := false
		for _, h := range holders {
			if v, _ := h.(string); v != "" && v != "wait" {
				busy = true
				break
			}
		}
		if !busy {
			return
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

func (s *Store) enqueueEffects(ctx context.Context, cid string, info queue.CallInfo, snap snapshot, out outcome) error {
	// Stops first: a phone must stop ringing before anything else is sent.
	byEvent := map[string][]string{}
	for i, m := range out.StopMembers {
		byEvent[out.StopEvents[i]] = append(byEvent[out.StopEvents[i]], m)
	}
	if len(out.Missed) > 0 {
		byEvent[queue.EventMissed] = append(byEvent[queue.EventMissed], out.Missed...)
	}
	for _, ev := range slices.Sorted(maps.Keys(byEvent)) {
		if err := s.queue.EnqueueStop(ctx, info, out.StopRingID, ev, byEvent[ev]); err != nil {
			return err
		}
	}
	if len(out.RungMembers) == 0 {
		return nil
	}
	members := make([]queue.RingMember, len(out.RungMembers))
	deadlines := map[int64]bool{}
	for i, m := range out.RungMembers {
		d := int64(out.RungDeadlines[i])
		members[i] = queue.RingMember{UserID: m, EndsAt: time.UnixMilli(d)}
		deadlines[d] = true
	}
	if err := s.queue.EnqueueRing(ctx, info, out.RingID, members); err != nil {
		return err
	}
	for d := range deadlines {
		if err := s.queue.ScheduleTimeout(ctx, cid, out.RingID, time.UnixMilli(d), d == snap.ringEndsAt); err != nil {
			return err
		}
	}
	return nil
}

// publish sends each event to every member's channel. Events are best effort (SSE clients re-read the call
// on reconnect); a failure is logged, never returned.
func (s *Store) publish(ctx context.Context, st State, evs []evt) {
	if len(evs) == 0 {
		return
	}
	now := s.now().UTC()
	pipe := s.rdb.Pipeline()
	for _, e := range evs {
		b, err := json.Marshal(Event{Type: e.typ, CallCID: st.Call.CID, Call: st.Call, User: UserRef{ID: e.user}, CreatedAt: now})
		if err != nil {
			s.log.Error("event not encoded", "cid", st.Call.CID, "event", e.typ, "err", err)
			continue
		}
		for _, m := range st.Members {
			pipe.Publish(ctx, EventChannel(m.UserID), b)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("events not published", "cid", st.Call.CID, "err", err)
	}
}

// Subscribe streams the events of every call the user is a member of until ctx ends.
func (s *Store) Subscribe(ctx context.Context, user string) (<-chan Event, error) {
	ps := s.rdb.Subscribe(ctx, EventChannel(user))
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribe %s: %w", user, err)
	}
	ch := make(chan Event, 64)
	go func() {
		defer close(ch)
		defer ps.Close()
		msgs := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				var ev Event
				if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
					continue
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}
