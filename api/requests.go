package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

// Limits api enforces beyond those of calls' model.
const (
	// MaxMembersIDs bounds members_ids of /ring: no more can be rung at once anyway (calls.MaxRingMembers).
	MaxMembersIDs = calls.MaxRingMembers
	// maxTeamBytes bounds data.team; API.md leaves its shape open, but it is a name, not a document.
	maxTeamBytes = 128
)

// validReason tells the reasons a reject may give, API.md.
func validReason(r string) bool {
	switch r {
	case wire.ReasonDecline, wire.ReasonBusy, wire.ReasonCancel, wire.ReasonTimeout:
		return true
	}
	return false
}

// validCallingState tells the calling states GET /v1/calls filters on, API.md.
func validCallingState(s string) bool {
	switch s {
	case wire.StateRinging, wire.StateJoined, wire.StateIdle, wire.StateEnded:
		return true
	}
	return false
}

// createInput is a decoded and checked get-or-create: who acts, and what it asks.
type createInput struct {
	Actor calls.Actor
	Req   calls.CreateRequest
}

// decodeCreate decodes and checks the body of POST /v1/call/{type}/{id} for the bearer of tok.
func decodeCreate(body []byte, tok TokenClaims) (createInput, error) {
	var top struct {
		Ring   bool            `json:"ring"`
		Notify bool            `json:"notify"`
		Data   json.RawMessage `json:"data"`
	}
	if err := decodeStrict("", body, &top); err != nil {
		return createInput{}, err
	}
	var data struct {
		CreatedByID      string            `json:"created_by_id"`
		Members          []json.RawMessage `json:"members"`
		Custom           json.RawMessage   `json:"custom"`
		SettingsOverride json.RawMessage   `json:"settings_override"`
		StartsAt         *string           `json:"starts_at"`
		Team             string            `json:"team"`
	}
	if !isNull(top.Data) {
		if err := decodeStrict("data", top.Data, &data); err != nil {
			return createInput{}, err
		}
	}
	a, err := actor(tok, data.CreatedByID, "data.created_by_id", false)
	if err != nil {
		return createInput{}, err
	}
	in := createInput{Actor: a, Req: calls.CreateRequest{Ring: top.Ring, Notify: top.Notify, Team: data.Team}}

	if len(data.Members) > calls.MaxMembers {
		return createInput{}, fieldErr(wire.CodeLimitExceeded, "data.members", "has %d members, more than the limit of %d", len(data.Members), calls.MaxMembers)
	}
	if top.Ring && len(data.Members) == 0 {
		return createInput{}, fieldErr(wire.CodeInvalidField, "data.members", "is required when ring is true: name the members to ring")
	}
	if in.Req.Members, err = decodeMembers("data.members", data.Members); err != nil {
		return createInput{}, err
	}
	if top.Ring {
		// Only the callees are rung: the creator is a member but never rings itself.
		callees := 0
		for _, m := range in.Req.Members {
			if m.UserID != a.UserID {
				callees++
			}
		}
		if callees > calls.MaxRingMembers {
			return createInput{}, fieldErr(wire.CodeLimitExceeded, "data.members", "would ring %d members, more than the limit of %d at once", callees, calls.MaxRingMembers)
		}
	}
	if in.Req.Custom, err = decodeCustom("data.custom", data.Custom); err != nil {
		return createInput{}, err
	}
	if in.Req.SettingsOverride, err = decodeSettingsOverride("data.settings_override", data.SettingsOverride); err != nil {
		return createInput{}, err
	}
	if data.StartsAt != nil && *data.StartsAt != "" {
		t, err := parseStartsAt("data.starts_at", *data.StartsAt)
		if err != nil {
			return createInput{}, err
		}
		in.Req.StartsAt = &t
	}
	if len(data.Team) > maxTeamBytes {
		return createInput{}, fieldErr(wire.CodeInvalidField, "data.team", "is longer than %d bytes", maxTeamBytes)
	}
	return in, nil
}

// parseStartsAt reads a starts_at value at path.
func parseStartsAt(path, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fieldErr(wire.CodeInvalidField, path, "must be an RFC 3339 time like 2026-12-01T10:00:00Z, not %q", v)
	}
	return t, nil
}

// updateBody is the body of PATCH /v1/call/{type}/{id}. starts_at is kept raw: null clears it, while a
// field left out leaves it as it is.
type updateBody struct {
	StartsAt         json.RawMessage `json:"starts_at"`
	Custom           json.RawMessage `json:"custom"`
	SettingsOverride json.RawMessage `json:"settings_override"`
	UserID           string          `json:"user_id"`
}

// decodeUpdate checks a PATCH body: starts_at an RFC 3339 time, or null or "" to clear it; custom and
// settings_override as in get-or-create (null leaves them as they are).
func decodeUpdate(b updateBody) (calls.UpdateRequest, error) {
	var req calls.UpdateRequest
	if b.StartsAt != nil {
		var v *string
		if err := decodeStrict("starts_at", b.StartsAt, &v); err != nil {
			return req, err
		}
		if v == nil || *v == "" {
			req.ClearStartsAt = true
		} else {
			t, err := parseStartsAt("starts_at", *v)
			if err != nil {
				return req, err
			}
			req.StartsAt = &t
		}
	}
	var err error
	if req.Custom, err = decodeCustom("custom", b.Custom); err != nil {
		return req, err
	}
	if req.SettingsOverride, err = decodeSettingsOverride("settings_override", b.SettingsOverride); err != nil {
		return req, err
	}
	return req, nil
}

// decodeMembers decodes a list of members at path, each strictly, refusing duplicate user ids.
func decodeMembers(path string, raws []json.RawMessage) ([]calls.MemberInput, error) {
	if len(raws) == 0 {
		return nil, nil
	}
	out := make([]calls.MemberInput, 0, len(raws))
	seen := make(map[string]int, len(raws))
	for i, raw := range raws {
		at := fmt.Sprintf("%s[%d]", path, i)
		m, err := decodeMember(at, raw)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[m.UserID]; dup {
			return nil, fieldErr(wire.CodeInvalidField, at+".user_id", "%q is already named by %s[%d]", m.UserID, path, j)
		}
		seen[m.UserID] = i
		out = append(out, m)
	}
	return out, nil
}

func decodeMember(path string, raw json.RawMessage) (calls.MemberInput, error) {
	if isNull(raw) {
		return calls.MemberInput{}, fieldErr(wire.CodeInvalidField, path, "must be a member object, not null")
	}
	if id, ok := plainMember(raw); ok {
		return calls.MemberInput{UserID: id}, nil
	}
	var m struct {
		UserID string          `json:"user_id"`
		Role   string          `json:"role"`
		Custom json.RawMessage `json:"custom"`
	}
	if err := decodeStrict(path, raw, &m); err != nil {
		return calls.MemberInput{}, err
	}
	if m.UserID == "" {
		return calls.MemberInput{}, fieldErr(wire.CodeInvalidField, path+".user_id", "is required")
	}
	if !userIDRe.MatchString(m.UserID) {
		return calls.MemberInput{}, fieldErr(wire.CodeInvalidField, path+".user_id", "must match %s", userIDRe)
	}
	if m.Role != "" && !roleRe.MatchString(m.Role) {
		return calls.MemberInput{}, fieldErr(wire.CodeInvalidField, path+".role", "must match %s", roleRe)
	}
	custom, err := decodeCustom(path+".custom", m.Custom)
	if err != nil {
		return calls.MemberInput{}, err
	}
	return calls.MemberInput{UserID: m.UserID, Role: m.Role, Custom: custom}, nil
}

// plainMember is the user id of a member sent as {"user_id":"<id>"}, exactly so, with an id that userIDRe
// allows (so nothing in it to unescape), or false. That is how most members of a big call come, and for them it
// is what decodeStrict and the checks after it give, without a JSON decoder for each member.
func plainMember(raw json.RawMessage) (string, bool) {
	id, ok := bytes.CutPrefix(raw, []byte(`{"user_id":"`))
	if !ok {
		return "", false
	}
	if id, ok = bytes.CutSuffix(id, []byte(`"}`)); !ok || !userIDRe.Match(id) {
		return "", false
	}
	return string(id), true
}

// decodeCustom decodes a free-form custom object at path: an object (or null), at most calls.MaxCustomBytes
// as sent and again once marshalled, which is how calls stores it.
func decodeCustom(path string, raw json.RawMessage) (map[string]any, error) {
	if isNull(raw) {
		return nil, nil
	}
	// Measured before decoding: decoding a big object into a map costs far more CPU and memory than its
	// bytes, so an oversized custom is refused unread.
	if len(raw) > calls.MaxCustomBytes {
		return nil, fieldErr(wire.CodeLimitExceeded, path, "is %d bytes as sent, larger than the limit of %d (5 KiB)", len(raw), calls.MaxCustomBytes)
	}
	if t := strings.TrimSpace(string(raw)); !strings.HasPrefix(t, "{") {
		return nil, fieldErr(wire.CodeInvalidJSON, path, "must be an object")
	}
	var m map[string]any
	if err := decodeStrict(path, raw, &m); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fieldErr(wire.CodeInvalidField, path, "cannot be stored: %v", err)
	}
	if len(b) > calls.MaxCustomBytes {
		return nil, fieldErr(wire.CodeLimitExceeded, path, "is %d bytes, larger than the limit of %d (5 KiB)", len(b), calls.MaxCustomBytes)
	}
	return m, nil
}

// decodeSettingsOverride decodes data.settings_override; a zero timeout keeps the default.
func decodeSettingsOverride(path string, raw json.RawMessage) (*calls.SettingsOverride, error) {
	if isNull(raw) {
		return nil, nil
	}
	var so struct {
		Ring json.RawMessage `json:"ring"`
	}
	if err := decodeStrict(path, raw, &so); err != nil {
		return nil, err
	}
	if isNull(so.Ring) {
		return &calls.SettingsOverride{}, nil
	}
	var ring calls.RingSettings
	if err := decodeStrict(path+".ring", so.Ring, &ring); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"auto_cancel_timeout_ms", ring.AutoCancelTimeoutMs},
		{"incoming_call_timeout_ms", ring.IncomingCallTimeoutMs},
	} {
		field, v := f.name, f.v
		if v != 0 && (v < calls.MinRingTimeoutMs || v > calls.MaxRingTimeoutMs) {
			return nil, fieldErr(wire.CodeInvalidField, path+".ring."+field, "must be %d to %d ms, not %d", calls.MinRingTimeoutMs, calls.MaxRingTimeoutMs, v)
		}
	}
	return &calls.SettingsOverride{Ring: &ring}, nil
}

// decodeUserIDs decodes a list of user ids at path (members_ids, remove_members), refusing bad and repeated ids.
func decodeUserIDs(path string, ids []string, limit int) error {
	if len(ids) > limit {
		return fieldErr(wire.CodeLimitExceeded, path, "has %d ids, more than the limit of %d", len(ids), limit)
	}
	seen := make(map[string]int, len(ids))
	for i, id := range ids {
		at := fmt.Sprintf("%s[%d]", path, i)
		if !userIDRe.MatchString(id) {
			return fieldErr(wire.CodeInvalidField, at, "must match %s", userIDRe)
		}
		if j, dup := seen[id]; dup {
			return fieldErr(wire.CodeInvalidField, at, "%q is already named by %s[%d]", id, path, j)
		}
		seen[id] = i
	}
	return nil
}

// actingBody is the body of /accept, /join, /leave and /mark_ended: only who acts, for server tokens.
type actingBody struct {
	UserID string `json:"user_id"`
}

func (b *actingBody) actingUser() string  { return b.UserID }
func (b *updateBody) actingUser() string  { return b.UserID }
func (b *ringBody) actingUser() string    { return b.UserID }
func (b *rejectBody) actingUser() string  { return b.UserID }
func (b *membersBody) actingUser() string { return b.UserID }

type ringBody struct {
	MembersIDs []string `json:"members_ids"`
	UserID     string   `json:"user_id"`
}

type rejectBody struct {
	Reason string `json:"reason"`
	UserID string `json:"user_id"`
}

type membersBody struct {
	UpdateMembers []json.RawMessage `json:"update_members"`
	RemoveMembers []string          `json:"remove_members"`
	UserID        string            `json:"user_id"`
}

// membersInput is a decoded and checked POST /members.
type membersInput struct {
	Update []calls.MemberInput
	Remove []string
}

func decodeMembersUpdate(b membersBody) (membersInput, error) {
	if len(b.UpdateMembers) > calls.MaxMembers {
		return membersInput{}, fieldErr(wire.CodeLimitExceeded, "update_members", "has %d members, more than the limit of %d", len(b.UpdateMembers), calls.MaxMembers)
	}
	update, err := decodeMembers("update_members", b.UpdateMembers)
	if err != nil {
		return membersInput{}, err
	}
	if err := decodeUserIDs("remove_members", b.RemoveMembers, calls.MaxMembers); err != nil {
		return membersInput{}, err
	}
	// Adding and removing the same member in one request has no single meaning: refuse it.
	updating := make(map[string]bool, len(update))
	for _, m := range update {
		updating[m.UserID] = true
	}
	for i, id := range b.RemoveMembers {
		if updating[id] {
			return membersInput{}, fieldErr(wire.CodeInvalidField, fmt.Sprintf("remove_members[%d]", i), "%q is also in update_members", id)
		}
	}
	return membersInput{Update: update, Remove: b.RemoveMembers}, nil
}
