package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/gate"
)

// access is what permission checks need, read before a transition.
type access struct {
	exists    bool
	createdBy string
	team      string
	member    *Member
}

func (s *Store) access(ctx context.Context, cid, user string) (access, error) {
	pipe := s.rdb.Pipeline()
	fields := pipe.HMGet(ctx, gate.CallKey(cid, "call"), "created_by", "team")
	var mem *redis.StringCmd
	if user != "" {
		mem = pipe.HGet(ctx, gate.CallKey(cid, "members"), user)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return access{}, fmt.Errorf("call %s: %w", cid, err)
	}
	vals := fields.Val()
	if vals[0] == nil {
		return access{}, nil
	}
	a := access{exists: true, createdBy: str(vals[0]), team: str(vals[1])}
	if mem != nil && mem.Err() == nil {
		var m Member
		if err := json.Unmarshal([]byte(mem.Val()), &m); err == nil {
			m.UserID = user
			a.member = &m
		}
	}
	return a, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// checkTeam: only users whose token lists the call's team, and the backend, may see or act on it.
func checkTeam(a Actor, team string) error {
	if team == "" || a.Server || slices.Contains(a.Teams, team) {
		return nil
	}
	return fmt.Errorf("call of team %q: %w", team, ErrForbidden)
}

// Visible tells whether a may hear of call c at all (API.md, "Teams"): a user whose token lacks the team of
// a team call gets none of its events and does not find it in its call list, even as a member. Whoever
// streams events to a user filters them with it.
func Visible(a Actor, c Call) bool { return checkTeam(a, c.Team) == nil }

// checkRead is the read rule (API.md, "Who may read a call"), made after the team rule: reading a call, and
// notifying its members through a read, needs membership, the backend, or a user token with role admin.
func checkRead(a Actor, cid string, member bool) error {
	if member || a.Server || a.Role == "admin" {
		return nil
	}
	return fmt.Errorf("read %s by %q: %w", cid, a.UserID, ErrNotMember)
}

// checkTeamMembers is the rule of who puts members into a team call (API.md, "Teams"): ringer knows a user's
// teams only from that user's own token, so a user token may name only itself as a new member of a team
// call; the backend, which mints the tokens, adds anyone.
func checkTeamMembers(a Actor, cid, team string, members []MemberInput) error {
	if team == "" || a.Server {
		return nil
	}
	for _, m := range members {
		if m.UserID != a.UserID {
			return fmt.Errorf("add %q to %s of team %q with a user token: %w", m.UserID, cid, team, ErrForbidden)
		}
	}
	return nil
}

// loadFor reads access and applies the team rule; member says whether the actor must be a member.
func (s *Store) loadFor(ctx context.Context, a Actor, cid string, member bool) (access, error) {
	acc, err := s.access(ctx, cid, a.UserID)
	if err != nil {
		return acc, err
	}
	if !acc.exists {
		return acc, fmt.Errorf("call %s: %w", cid, ErrNotFound)
	}
	if err := checkTeam(a, acc.team); err != nil {
		return acc, err
	}
	if member && acc.member == nil {
		return acc, fmt.Errorf("call %s, user %q: %w", cid, a.UserID, ErrNotMember)
	}
	return acc, nil
}

// mayEnd is the end-call right (API.md): the creator, a member with role admin, a user token with role admin,
// or the backend. Updating a call needs it too.
func mayEnd(a Actor, acc access) bool {
	return a.Server || a.Role == "admin" || a.UserID == acc.createdBy || (acc.member != nil && acc.member.Role == "admin")
}

// checkEndRight reads access and applies the team rule and the end-call right (mayEnd), which ending and
// updating a call need; what names the request in the error.
func (s *Store) checkEndRight(ctx context.Context, a Actor, cid, what string) error {
	acc, err := s.loadFor(ctx, a, cid, false)
	if err != nil {
		return err
	}
	if !mayEnd(a, acc) {
		return fmt.Errorf("%s %s by %q: %w", what, cid, a.UserID, ErrForbidden)
	}
	return nil
}
