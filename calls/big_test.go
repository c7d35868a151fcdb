package calls_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

// A big notification is enqueued in parts, each once the call lists of its members are written: a member the
// notification reaches finds the call in its list, and the first pushes do not wait for every member's list.
// Redis's MONITOR shows the order in which the commands ran.
func TestABigNotificationGoesOutInPartsEachAfterItsMembersLists(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	ctx := context.Background()
	const n = 2500 // the caller and three parts of callees: 1,000, 1,000 and 499
	req := calls.CreateRequest{Notify: true}
	for i := range n - 1 {
		req.Members = append(req.Members, calls.MemberInput{UserID: fmt.Sprintf("m%04d", i)})
	}

	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(conn)
	if ok, err := lines.ReadString('\n'); err != nil || ok != "+OK\r\n" {
		t.Fatalf("MONITOR answered %q, %v", ok, err)
	}
	st, _, err := s.GetOrCreate(ctx, alice, "default", "big-notify", req)
	if err != nil {
		t.Fatal(err)
	}
	const done = "monitor-done"
	if err := rdb.Echo(ctx, done).Err(); err != nil {
		t.Fatal(err)
	}

	var callees []string
	for _, m := range st.Members {
		if m.UserID != alice.UserID {
			callees = append(callees, m.UserID)
		}
	}
	listed := map[string]bool{}  // users whose call list has the call
	missed := map[int][]string{} // batch → its callees whose lists did not have the call when it was enqueued
	listedAtFirstTask := -1      // how many lists had the call when the first task was enqueued
	listKey := regexp.MustCompile(`^"zadd" "ringer:\{u:([^}]+)\}:calls"`)
	taskKey := regexp.MustCompile(`^"evalsha" "[0-9a-f]+" "\d+" "asynq:\{notify\}:t:notify:[0-9a-f]+:(\d+)"`)
	for {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		_, cmd, _ := strings.Cut(line, "] ")
		if strings.HasPrefix(cmd, `"echo" "`+done+`"`) {
			break
		}
		if m := listKey.FindStringSubmatch(cmd); m != nil {
			listed[m[1]] = true
		} else if m := taskKey.FindStringSubmatch(cmd); m != nil {
			b, _ := strconv.Atoi(m[1])
			if _, again := missed[b]; again {
				continue // the first enqueue of a task is the one that counts
			}
			missed[b] = []string{}
			for _, u := range callees[b*queue.NotifyBatch : min((b+1)*queue.NotifyBatch, len(callees))] {
				if !listed[u] {
					missed[b] = append(missed[b], u)
				}
			}
			if listedAtFirstTask < 0 {
				listedAtFirstTask = len(listed)
			}
		}
	}
	if len(listed) != n {
		t.Errorf("%d call lists written, want every member's %d", len(listed), n)
	}
	if want := queue.NotifyTasks(len(callees)); len(missed) != want {
		t.Errorf("%d notification tasks enqueued, want %d", len(missed), want)
	}
	for b, users := range missed {
		if len(users) > 0 {
			t.Errorf("batch %d enqueued before the call lists of %d of its members had the call (%s, ...)", b, len(users), users[0])
		}
	}
	if listedAtFirstTask == n {
		t.Errorf("the first notification task enqueued once every member's call list was written: the first pushes waited for them all")
	}
}
