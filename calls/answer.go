package calls

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// luaList decodes a Lua table that cjson wrote as {} when empty.
type luaList[T any] []T

func (l *luaList[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "{}" {
		*l = nil
		return nil
	}
	var v []T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*l = v
	return nil
}

// outcome is what a transition script returns (see scripts.go).
type outcome struct {
	Status        status          `json:"status"`
	RingID        string          `json:"ring_id"`
	StopRingID    string          `json:"stop_ring_id"`
	Rung          luaList[rung]   `json:"rung"`   // members newly rung
	Stops         luaList[stop]   `json:"stops"`  // members whose ring stops, each with why
	Missed        luaList[string] `json:"missed"` // members missed: their missed-call push is their stop
	Events        luaList[event]  `json:"events"` // events owed, in order
	Now           int64           `json:"now"`    // the script's now, unix ms: the events' created_at
	Ended         bool            `json:"ended"`
	FirstAccept   bool            `json:"first_accept"`
	NewRing       bool            `json:"new_ring"`
	MembersAfter  int             `json:"members_after"`   // the member count a too_many update would have made
	StartsAtMoved bool            `json:"starts_at_moved"` // updateScript changed starts_at
	Callee        string          `json:"callee"`          // callee_not_member: the first user named who is no member
	CalleeAt      int             `json:"callee_at"`       // callee_not_member: its index among those named
}

// rung is a member a transition rang, and the unix ms its ring ends.
type rung struct {
	Member   string `json:"member"`
	Deadline int64  `json:"deadline"`
}

// stop is a member whose ring a transition stopped, and the event its stop push carries.
type stop struct {
	Member string `json:"member"`
	Event  string `json:"event"`
}

// event is an event a transition owes: User is who it is about ("" for the actor), Seq its number in the
// call's outbox.
type event struct {
	Type string `json:"type"`
	User string `json:"user"`
	Seq  int64  `json:"seq"`
}

func (o outcome) hasEffects() bool {
	return len(o.Rung)+len(o.Stops)+len(o.Missed)+len(o.Events) > 0
}

// scriptAnswer splits a transition script's answer (done in scripts.go) into the call's keys and the outcome
// JSON.
func scriptAnswer(res []any) (callData, string, error) {
	if len(res) != 9 {
		return callData{}, "", fmt.Errorf("script answered %d values, want 9", len(res))
	}
	raw, ok := res[0].(string)
	if !ok {
		return callData{}, "", fmt.Errorf("script answered an outcome of type %T", res[0])
	}
	d := callData{
		call: pairs(res[1]), members: memberPairs(res[2]), ring: pairs(res[3]),
		accepted: pairs(res[5]), rejected: pairs(res[6]), missed: pairs(res[7]), joined: pairs(res[8]),
	}
	zs, _ := res[4].([]any)
	d.ringing = make([]ringingMember, 0, len(zs)/2)
	for i := 0; i+1 < len(zs); i += 2 {
		m, _ := zs[i].(string)
		// Lua hands scores back as strings; a ring's end is whole milliseconds.
		score, _ := zs[i+1].(string)
		f, err := strconv.ParseFloat(score, 64)
		if err != nil {
			return callData{}, "", fmt.Errorf("ringing score %q of %s: %w", score, m, err)
		}
		d.ringing = append(d.ringing, ringingMember{member: m, endsAt: int64(f)})
	}
	return d, raw, nil
}

// memberPairs is pairs of a member hash as a script answers it (members in scripts.go, membersScript): nil
// when the answer is only the count of a call too big to answer whole, for the store to read by HSCAN.
func memberPairs(v any) map[string]string {
	if _, counted := v.(int64); counted {
		return nil
	}
	return pairs(v)
}

// pairs turns a flat [field, value, ...] reply (HGETALL from Lua) into a map.
func pairs(v any) map[string]string {
	flat, _ := v.([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		m[k] = val
	}
	return m
}
