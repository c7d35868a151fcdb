package calls

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// The ring script works out who may ring whom on the call as it is: the team rule, the caller's membership,
// the members named, and the most callees; a refused ring rings nobody.
func TestRingChecksWhoMayRingWhomInItsScript(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	s := New(rdb, queue.NewClient(rdb), nil)
	ctx := context.Background()
	alice := Actor{UserID: "alice", Teams: []string{"blue"}}
	if _, _, err := s.GetOrCreate(ctx, alice, "default", "t", CreateRequest{Team: "blue"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateMembers(ctx, Actor{Server: true}, "default", "t", []MemberInput{{UserID: "bob"}}, nil); err != nil {
		t.Fatal(err)
	}
	var fe *FieldError
	for _, c := range []struct {
		name  string
		a     Actor
		named []string
		check func(error) bool
	}{
		{"a token without the team", Actor{UserID: "alice"}, nil, func(err error) bool { return errors.Is(err, ErrForbidden) }},
		{"a non-member", Actor{UserID: "eve", Teams: []string{"blue"}}, nil, func(err error) bool { return errors.Is(err, ErrNotMember) }},
		{"naming a non-member", alice, []string{"bob", "eve"}, func(err error) bool {
			return errors.As(err, &fe) && fe.Field == "members_ids[1]" && fe.Message == `"eve" is not a member of the call` && !fe.Limit
		}},
		{"no such call", alice, nil, func(err error) bool { return errors.Is(err, ErrNotFound) }},
	} {
		id := "t"
		if c.name == "no such call" {
			id = "none"
		}
		if _, err := s.Ring(ctx, c.a, "default", id, c.named); !c.check(err) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	snap, err := s.read(ctx, CID("default", "t"))
	if err != nil || snap.Call.Ringing || len(snap.ringing) != 0 {
		t.Fatalf("a refused ring rang: ringing=%v %v (err %v)", snap.Call.Ringing, snap.ringing, err)
	}
	st, err := s.Ring(ctx, Actor{Server: true}, "default", "t", nil)
	if err != nil || !st.Call.Ringing {
		t.Fatalf("the backend naming nobody: ringing=%v err %v", st.Call.Ringing, err)
	}
	if snap, _ := s.read(ctx, CID("default", "t")); snap.ringCaller != "alice" || len(snap.ringing) != 1 || snap.ringing["bob"] == 0 {
		t.Fatalf("the backend naming nobody rings bob as the creator: caller %q, ringing %v", snap.ringCaller, snap.ringing)
	}
}

// More callees than MaxRingMembers is a limit error, named or not, and rings nobody.
func TestRingOfMoreThanMaxRingMembersIsRefused(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	s := New(rdb, queue.NewClient(rdb), nil)
	ctx := context.Background()
	members := make([]MemberInput, MaxRingMembers+1)
	named := make([]string, len(members))
	for i := range members {
		members[i] = MemberInput{UserID: "m" + strconv.Itoa(i)}
		named[i] = members[i].UserID
	}
	a := Actor{UserID: "boss"}
	if _, _, err := s.GetOrCreate(ctx, a, "default", "big", CreateRequest{Members: members}); err != nil {
		t.Fatal(err)
	}
	for what, ids := range map[string][]string{"every member": nil, "named": named} {
		var fe *FieldError
		if _, err := s.Ring(ctx, a, "default", "big", ids); !errors.As(err, &fe) || !fe.Limit || fe.Field != "members_ids" {
			t.Errorf("%s: %v, want a limit error on members_ids", what, err)
		}
	}
	if snap, err := s.read(ctx, CID("default", "big")); err != nil || len(snap.ringing) != 0 {
		t.Fatalf("a refused ring rang %d (err %v)", len(snap.ringing), err)
	}
}
