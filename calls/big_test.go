package calls_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// A call with more members than a script answers inline (1,000) is staged before its create and read in
// chunks; every path must still show all of its members, and leave no staged key behind.
func TestABigCallShowsEveryMemberOnEveryPath(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	ctx := context.Background()
	const n = 2500
	req := calls.CreateRequest{}
	for i := range n - 1 {
		req.Members = append(req.Members, calls.MemberInput{UserID: fmt.Sprintf("m%04d", i)})
	}
	req.Members[0].UserID = "bob"
	req.Members[1].Role = "host"

	// Two creates at once: one creates, the other gets the call; the loser's staged members are dropped.
	var wg sync.WaitGroup
	results := make([]bool, 2)
	for i := range results {
		wg.Go(func() {
			st, created, err := s.GetOrCreate(ctx, alice, "default", "big", req)
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			results[i] = created
			if len(st.Members) != n {
				t.Errorf("create %d (created %v): %d members, want %d", i, created, len(st.Members), n)
			}
		})
	}
	wg.Wait()
	if results[0] == results[1] {
		t.Fatalf("created: %v, want exactly one create", results)
	}

	check := func(what string, st calls.State, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(st.Members) != n {
			t.Fatalf("%s: %d members, want %d", what, len(st.Members), n)
		}
		for _, m := range st.Members {
			if m.UserID == "m0001" && m.Role != "host" {
				t.Fatalf("%s: member m0001 has role %q, want host", what, m.Role)
			}
		}
	}
	st, err := s.Get(ctx, alice, "default", "big", false, false)
	check("get", st, err)
	st, err = s.Ring(ctx, alice, "default", "big", []string{"bob"})
	check("ring bob", st, err)
	st, err = s.Accept(ctx, bob, "default", "big")
	check("bob accepts", st, err)
	if _, ok := st.Call.Session.AcceptedBy["bob"]; !ok {
		t.Fatalf("bob accepted, accepted_by: %v", st.Call.Session.AcceptedBy)
	}
	// The list is the exception: it shows a few members and how many there are.
	items, err := s.List(ctx, bob, "")
	if err != nil || len(items) != 1 || len(items[0].Members) != calls.ListMembers || items[0].MemberCount != n {
		t.Fatalf("bob's list: %d items, err %v", len(items), err)
	}
	if !slices.ContainsFunc(items[0].Members, func(m calls.Member) bool { return m.UserID == "bob" }) {
		t.Fatalf("bob's list shows members %v, without bob", items[0].Members)
	}

	staged, err := rdb.Keys(ctx, "*staged*").Result()
	if err != nil || len(staged) != 0 {
		t.Fatalf("staged keys left: %v (err %v)", staged, err)
	}
	// The members live as long as the call, not as long as their staging.
	ttl, err := rdb.PTTL(ctx, gate.CallKey(calls.CID("default", "big"), "members")).Result()
	callTTL, cerr := rdb.PTTL(ctx, gate.CallKey(calls.CID("default", "big"), "call")).Result()
	if err != nil || cerr != nil || ttl < time.Hour || (ttl-callTTL).Abs() > time.Second {
		t.Fatalf("members key ttl %v (err %v), call ttl %v (err %v): a call's members must live as long as the call", ttl, err, callTTL, cerr)
	}
}

// A big call's create answers its members as it wrote them, without reading them back: the answer is the one
// a read of the call gives, defaults, roles and exact custom numbers included.
func TestABigCallsCreateAnswersTheMembersAReadGives(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	ctx := context.Background()
	req := calls.CreateRequest{}
	for i := range 1500 {
		req.Members = append(req.Members, calls.MemberInput{UserID: fmt.Sprintf("m%04d", i)})
	}
	req.Members[7].Role = "host"
	req.Members[9].Custom = map[string]any{"seat": json.Number("12345678901234567890"), "tags": []any{"a"}}
	created, ok, err := s.GetOrCreate(ctx, alice, "default", "big-answer", req)
	if err != nil || !ok {
		t.Fatalf("create: created=%v err=%v", ok, err)
	}
	read, err := s.Get(ctx, alice, "default", "big-answer", false, false)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(created.Members)
	want, _ := json.Marshal(read.Members)
	if string(got) != string(want) {
		t.Fatalf("the create answered members\n%.600s\nwhere a read gives\n%.600s", got, want)
	}
}
