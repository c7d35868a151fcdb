package calls

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

func newAccessStore(t *testing.T) (*Store, redis.UniversalClient) {
	t.Helper()
	rdb := testredis.Start(t).Client(t)
	return New(rdb, queue.NewClient(rdb), nil), rdb
}

// A removal whose index write was lost leaves the call in the user's index: the list still leaves it out.
func TestListShowsOnlyCallsTheUserIsStillAMemberOf(t *testing.T) {
	s, rdb := newAccessStore(t)
	ctx := context.Background()
	a := Actor{UserID: "alice"}
	for _, id := range []string{"kept", "left"} {
		if _, _, err := s.GetOrCreate(ctx, a, "default", id, CreateRequest{Members: []MemberInput{{UserID: "bob"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateMembers(ctx, a, "default", "left", nil, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.ZScore(ctx, userCallsKey("bob"), CID("default", "left")).Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("bob's index still holds the call he left (score %v, err %v)", n, err)
	}
	// As if the removal had not reached the index, and as if another user's index named the call.
	for _, u := range []string{"bob", "mallory"} {
		if err := rdb.ZAdd(ctx, userCallsKey(u), redis.Z{Score: 1, Member: CID("default", "left")}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.List(ctx, Actor{UserID: "bob"}, "")
	if err != nil || len(items) != 1 || items[0].Call.ID != "kept" {
		t.Fatalf("bob's list: %+v, err %v; want kept alone", items, err)
	}
	if items, err := s.List(ctx, Actor{UserID: "mallory"}, ""); err != nil || len(items) != 0 {
		t.Fatalf("mallory's list: %+v, err %v; want none", items, err)
	}
}

// The script checks a whole update before writing any of it: past the limit, or adding another user to a team
// call with a user token, nothing of the update is stored, and a removal in the same update does not happen.
func TestUpdateMembersScriptStoresNothingOfARefusedUpdate(t *testing.T) {
	s, rdb := newAccessStore(t)
	ctx := context.Background()
	a := Actor{UserID: "alice", Teams: []string{"blue"}}
	for _, id := range []string{"plain", "team"} {
		req := CreateRequest{}
		if id == "team" {
			req.Team = "blue"
		}
		if _, _, err := s.GetOrCreate(ctx, a, "default", id, req); err != nil {
			t.Fatal(err)
		}
	}
	member := `{"role":"user","custom":{},"created_at":"2026-01-02T03:04:05Z"}`
	spec := func(adder string, max int, update ...string) string {
		var pairs []string
		for _, u := range update {
			pairs = append(pairs, u, member)
		}
		b, err := json.Marshal(updateSpec{Update: append([]string{}, pairs...), Remove: []string{"alice"}, Adder: adder, Max: max})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name, id, spec string
		want           error
	}{
		{"past the limit", "plain", spec("", 2, "bob", "carol", "dave"), nil},
		{"another user into a team call", "team", spec("alice", 100, "alice", "bob"), ErrForbidden},
	} {
		cid := CID("default", c.id)
		out, _, err := s.run(ctx, Actor{}, updateMembersScript, cid, c.spec)
		var fe *FieldError
		switch {
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		case c.want == nil && (!errors.As(err, &fe) || !fe.Limit || fe.Field != "update_members" || out.MembersAfter != 3):
			t.Errorf("%s: err %v, members_after %d; want a limit error on update_members, 3", c.name, err, out.MembersAfter)
		}
		got, err := rdb.HKeys(ctx, gate.CallKey(cid, "members")).Result()
		if err != nil || !slices.Equal(got, []string{"alice"}) {
			t.Errorf("%s: members %v (err %v), want alice alone", c.name, got, err)
		}
	}
	// Within the limit, and by the backend into the team call, the same updates are stored.
	if _, _, err := s.run(ctx, Actor{}, updateMembersScript, CID("default", "plain"), spec("", 3, "bob", "carol", "dave")); err != nil {
		t.Errorf("three for one within a limit of 3: %v", err)
	}
	if _, _, err := s.run(ctx, Actor{}, updateMembersScript, CID("default", "team"), spec("", 100, "bob")); err != nil {
		t.Errorf("the backend adding bob to the team call: %v", err)
	}
}

func TestReadNeedsMembershipTheBackendOrAnAdminToken(t *testing.T) {
	s, _ := newAccessStore(t)
	ctx := context.Background()
	if _, _, err := s.GetOrCreate(ctx, Actor{UserID: "alice"}, "default", "c", CreateRequest{Members: []MemberInput{{UserID: "bob"}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a    Actor
		ok   bool
	}{
		{"member", Actor{UserID: "bob"}, true},
		{"backend naming nobody", Actor{Server: true}, true},
		{"backend naming a non-member", Actor{UserID: "eve", Server: true}, true},
		{"admin token", Actor{UserID: "root", Role: "admin"}, true},
		{"non-member", Actor{UserID: "eve", Role: "user"}, false},
	} {
		_, errGet := s.Get(ctx, c.a, "default", "c", false, false)
		_, _, errPost := s.GetOrCreate(ctx, c.a, "default", "c", CreateRequest{Notify: true})
		for what, err := range map[string]error{"get": errGet, "get-or-create": errPost} {
			if c.ok && err != nil {
				t.Errorf("%s by %s: %v", what, c.name, err)
			}
			if !c.ok && !errors.Is(err, ErrNotMember) {
				t.Errorf("%s by %s: err %v, want ErrNotMember", what, c.name, err)
			}
		}
	}
}

// The ring script works out who may ring whom on the call as it is: the team rule, the caller's membership,
// the members named, and the most callees; a refused ring rings nobody.
func TestRingChecksWhoMayRingWhomInItsScript(t *testing.T) {
	s, _ := newAccessStore(t)
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
	s, _ := newAccessStore(t)
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

// TestAMembersOwnTransitionChecksAccessInItsScript: accept, reject, ringing, join and leave make the access
// checks (the team rule, then membership) in the script that makes the transition, with nothing read before
// it. Each refuses a token without the call's team, a non-member (the backend naming one too) and a call that
// does not exist, and a refused actor settles nothing: a ring whose time has passed is still there for the
// next allowed transition to settle.
func TestAMembersOwnTransitionChecksAccessInItsScript(t *testing.T) {
	s, _ := newAccessStore(t)
	ctx := context.Background()
	blue := []string{"blue"}
	alice := Actor{UserID: "alice", Teams: blue}
	if _, _, err := s.GetOrCreate(ctx, alice, "default", "t", CreateRequest{Team: "blue", Ring: true,
		Members: []MemberInput{{UserID: "alice"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateMembers(ctx, Actor{Server: true}, "default", "t", []MemberInput{{UserID: "bob"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ring(ctx, alice, "default", "t", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	// Past the ring's end: the first transition that settles anything misses bob and ends the call.
	s.now = func() time.Time { return time.Now().Add(time.Duration(DefaultRingTimeoutMs+1000) * time.Millisecond) }
	transitions := map[string]func(Actor, string) error{
		"accept":  func(a Actor, id string) error { _, err := s.Accept(ctx, a, "default", id); return err },
		"reject":  func(a Actor, id string) error { _, err := s.Reject(ctx, a, "default", id, ""); return err },
		"ringing": func(a Actor, id string) error { _, err := s.Ringing(ctx, a, "default", id); return err },
		"join":    func(a Actor, id string) error { _, err := s.Join(ctx, a, "default", id); return err },
		"leave":   func(a Actor, id string) error { _, err := s.Leave(ctx, a, "default", id); return err },
	}
	for name, do := range transitions {
		for _, c := range []struct {
			who  string
			a    Actor
			id   string
			want error
		}{
			{"bob without the team", Actor{UserID: "bob"}, "t", ErrForbidden},
			{"eve, no member", Actor{UserID: "eve", Teams: blue}, "t", ErrNotMember},
			{"the backend naming eve", Actor{UserID: "eve", Server: true}, "t", ErrNotMember},
			{"bob on no call", Actor{UserID: "bob", Teams: blue}, "none", ErrNotFound},
		} {
			if err := do(c.a, c.id); !errors.Is(err, c.want) {
				t.Errorf("%s by %s: err %v, want %v", name, c.who, err, c.want)
			}
		}
	}
	snap, err := s.read(ctx, CID("default", "t"))
	if err != nil || len(snap.ringing) != 1 || snap.Call.EndedAt != nil {
		t.Fatalf("refused actors settled the ring: ringing %v, ended %v (err %v)", snap.ringing, snap.Call.EndedAt, err)
	}
	// The backend naming a member passes; the ring's time has passed, so the accept finds it over.
	if err := transitions["accept"](Actor{UserID: "bob", Server: true}, "t"); !errors.Is(err, ErrEnded) {
		t.Fatalf("accept by the backend naming bob after the ring's end: err %v, want ErrEnded", err)
	}
	if snap, _ := s.read(ctx, CID("default", "t")); len(snap.ringing) != 0 || snap.Call.EndedAt == nil {
		t.Fatalf("the allowed accept did not settle the ring: ringing %v, ended %v", snap.ringing, snap.Call.EndedAt)
	}
}
