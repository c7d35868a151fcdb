package e2e

// Access and abuse (API.md, "Who may read a call", "Teams", and the limits of "Calls"): who may read, ring and
// notify a call, who hears of a team call, what the call list shows, and how big a call may grow.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/tests/harness"
)

// accessList is the acting user's GET /v1/calls: cid -> item.
func accessList(t *testing.T, e *harness.Env, token, query string) map[string]map[string]any {
	t.Helper()
	r := e.MustCall(200, "GET", "/v1/calls"+query, token, nil)
	return r.Items(t, "calls", func(m map[string]any) string { return m["call"].(map[string]any)["cid"].(string) })
}

// accessMemberIDs is the user ids of a members list as answered.
func accessMemberIDs(t *testing.T, v any) []string {
	t.Helper()
	ms, ok := v.([]any)
	if !ok {
		t.Fatalf("members %v is not a list", v)
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i], _ = m.(map[string]any)["user_id"].(string)
	}
	return out
}

// accessFirstEventAbout reads s until an event about one of cids comes and returns it: whatever s would get
// about another call published before comes first.
func accessFirstEventAbout(t *testing.T, s *harness.Events, cids ...string) harness.Event {
	t.Helper()
	seen, ok := s.Await(eventsWait, func(ev harness.Event) bool {
		for _, c := range cids {
			if ev.Data["call_cid"] == c {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no event about %v within %s", cids, eventsWait)
	}
	return seen[len(seen)-1]
}

func TestANonMemberCannotReadRingOrNotifyACall(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob", "alice")
	bobEvents := e.Events(e.Token("bob"), "")
	e.MustCall(201, "POST", rulesPath("private"), e.Token("alice"), map[string]any{"data": map[string]any{
		"members": rulesMembers("bob"), "custom": map[string]any{"display_name": "Standup"},
	}})
	if ev := accessFirstEventAbout(t, bobEvents, "default:private"); ev.Name != "call.created" {
		t.Fatalf("bob's first event about the call is %s, want call.created", ev.Name)
	}

	eve := e.Token("eve")
	for _, c := range []struct {
		what, method, path string
		body               any
	}{
		{"get", "GET", rulesPath("private"), nil},
		{"get with notify", "GET", rulesPath("private") + "?notify=true", nil},
		{"get with ring", "GET", rulesPath("private") + "?ring=true", nil},
		{"get-or-create of the existing call", "POST", rulesPath("private"), map[string]any{}},
		{"get-or-create with notify", "POST", rulesPath("private"), map[string]any{"notify": true}},
		{"get-or-create with notify and members", "POST", rulesPath("private"), map[string]any{"notify": true, "data": map[string]any{"members": rulesMembers("eve", "bob")}}},
		{"ring", "POST", rulesPath("private", "ring"), map[string]any{}},
	} {
		contractErr(t, "eve, no member: "+c.what, e.Call(c.method, c.path, eve, c.body), 403, "forbidden", "")
	}

	// A member's notify is the first thing bob hears after eve's refused requests: neither a push nor an event
	// came of them.
	e.MustCall(200, "GET", rulesPath("private")+"?notify=true", e.Token("alice"), nil)
	if ev := accessFirstEventAbout(t, bobEvents, "default:private"); ev.Name != rulesNotif || ev.Data["user"].(map[string]any)["id"] != "alice" {
		t.Errorf("bob's next event about the call: %s by %v, want alice's call.notification", ev.Name, ev.Data["user"])
	}
	rulesFields(t, "bob's one notification", rulesFCM(t, e, "bob-android", rulesNotif)[0].Data, map[string]string{"created_by_id": "alice"})
	rulesFCM(t, e, "alice-android")
	r := e.MustCall(200, "GET", rulesPath("private"), e.Token("alice"), nil)
	if got := accessMemberIDs(t, r.Body["members"]); len(got) != 2 {
		t.Errorf("members after eve's requests: %v, want alice and bob", got)
	}

	// Members read and get-or-create the call.
	e.MustCall(200, "GET", rulesPath("private"), e.Token("bob"), nil)
	e.MustCall(200, "POST", rulesPath("private"), e.Token("bob"), map[string]any{})
}

func TestAnAdminTokenReadsACallOnlyWithinItsTeam(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	srv := e.ServerToken()
	e.MustCall(201, "POST", rulesPath("open"), e.Token("alice"), map[string]any{"data": map[string]any{"members": rulesMembers("bob")}})
	e.MustCall(201, "POST", rulesPath("blue"), srv, map[string]any{"data": map[string]any{
		"created_by_id": "alice", "team": "blue", "members": rulesMembers("alice", "bob"),
	}})
	admin := e.TokenWith(api.TokenClaims{UserID: "root", Role: api.RoleAdmin})
	adminRed := e.TokenWith(api.TokenClaims{UserID: "root", Role: api.RoleAdmin, Teams: []string{"red"}})
	adminBlue := e.TokenWith(api.TokenClaims{UserID: "root", Role: api.RoleAdmin, Teams: []string{"blue"}})
	userBlue := e.TokenWith(api.TokenClaims{UserID: "mallory", Teams: []string{"blue"}})

	e.MustCall(200, "GET", rulesPath("open"), admin, nil)
	e.MustCall(200, "POST", rulesPath("open"), admin, map[string]any{})
	e.MustCall(200, "GET", rulesPath("blue"), adminBlue, nil)
	contractErr(t, "admin without the team", e.Call("GET", rulesPath("blue"), admin, nil), 403, "forbidden", "")
	contractErr(t, "admin of another team", e.Call("GET", rulesPath("blue"), adminRed, nil), 403, "forbidden", "")
	contractErr(t, "a non-member of the team who is no admin", e.Call("GET", rulesPath("blue"), userBlue, nil), 403, "forbidden", "")
	contractErr(t, "the same, with notify", e.Call("POST", rulesPath("blue"), userBlue, map[string]any{"notify": true}), 403, "forbidden", "")
}

func TestATeamCallIsHeardOnlyWithATokenOfItsTeam(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	srv := e.ServerToken()
	aliceBlue := e.TokenWith(api.TokenClaims{UserID: "alice", Name: "Alice", Teams: []string{"blue"}})
	bobBlue := e.TokenWith(api.TokenClaims{UserID: "bob", Teams: []string{"blue"}})
	bobNone := e.Token("bob")
	e.Android("bob", "carol")

	// Refused at the source: ringer knows a user's teams only from that user's own token, so a user token
	// adds nobody but itself to a team call, at create or later.
	contractErr(t, "a user token creating a team call with another member", e.Call("POST", rulesPath("t1"), aliceBlue, map[string]any{
		"ring": true, "data": map[string]any{"team": "blue", "members": rulesMembers("alice", "carol")},
	}), 403, "forbidden", "")
	e.MustCall(404, "GET", rulesPath("t1"), srv, nil)
	e.MustCall(201, "POST", rulesPath("t2"), aliceBlue, map[string]any{"data": map[string]any{"team": "blue"}})
	contractErr(t, "a user token adding another member to its team call", e.Call("POST", rulesPath("t2", "members"), aliceBlue,
		map[string]any{"update_members": rulesMembers("carol")}), 403, "forbidden", "")
	r := e.MustCall(200, "GET", rulesPath("t2"), srv, nil)
	if got := accessMemberIDs(t, r.Body["members"]); len(got) != 1 || got[0] != "alice" {
		t.Errorf("members after the refused add: %v, want alice alone", got)
	}
	rulesFCM(t, e, "carol-android")

	// The backend puts bob into a team call; bob hears of it only through a token of the team.
	noTeam := e.Events(bobNone, "")
	inTeam := e.Events(bobBlue, "")
	e.MustCall(201, "POST", rulesPath("t3"), srv, map[string]any{"ring": true, "data": map[string]any{
		"created_by_id": "alice", "team": "blue", "members": rulesMembers("alice", "bob"),
	}})
	if ev := accessFirstEventAbout(t, inTeam, "default:t3"); ev.Name != "call.created" {
		t.Errorf("bob with the team: first event %s, want call.created", ev.Name)
	}
	e.MustCall(201, "POST", rulesPath("plain"), e.Token("alice"), map[string]any{"data": map[string]any{"members": rulesMembers("bob")}})
	if ev := accessFirstEventAbout(t, noTeam, "default:t3", "default:plain"); ev.Data["call_cid"] != "default:plain" {
		t.Errorf("bob without the team heard %s about the team call", ev.Name)
	}
	if _, ok := accessList(t, e, bobNone, "")["default:t3"]; ok {
		t.Errorf("bob without the team lists the team call")
	}
	if _, ok := accessList(t, e, bobBlue, "")["default:t3"]; !ok {
		t.Errorf("bob with the team does not list the team call")
	}
	contractErr(t, "bob without the team reads it", e.Call("GET", rulesPath("t3"), bobNone, nil), 403, "forbidden", "")
	// The backend vouched for bob: his devices ring.
	rulesFCM(t, e, "bob-android", rulesRing)
}

func TestARemovedMemberNoLongerSeesTheCallInItsList(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice, bob := e.Token("alice"), e.Token("bob")
	e.MustCall(201, "POST", rulesPath("kept"), alice, map[string]any{"data": map[string]any{"members": rulesMembers("bob")}})
	e.MustCall(201, "POST", rulesPath("gone"), alice, map[string]any{"data": map[string]any{"members": rulesMembers("bob", "carol")}})
	if l := accessList(t, e, bob, ""); l["default:gone"] == nil || l["default:kept"] == nil {
		t.Fatalf("bob's calls before the removal: %v", l)
	}
	e.MustCall(200, "POST", rulesPath("gone", "members"), alice, map[string]any{"remove_members": []string{"bob"}})
	l := accessList(t, e, bob, "")
	if l["default:gone"] != nil || l["default:kept"] == nil || len(l) != 1 {
		t.Errorf("bob's calls after his removal from gone: %v, want kept alone", l)
	}
	contractErr(t, "bob reads the call he was removed from", e.Call("GET", rulesPath("gone"), bob, nil), 403, "forbidden", "")
	if l := accessList(t, e, e.Token("carol"), ""); l["default:gone"] == nil {
		t.Errorf("carol, still a member, lost the call: %v", l)
	}
	// Added again, bob finds it again.
	e.MustCall(200, "POST", rulesPath("gone", "members"), alice, map[string]any{"update_members": rulesMembers("bob")})
	if l := accessList(t, e, bob, ""); l["default:gone"] == nil {
		t.Errorf("bob, added again, does not list the call: %v", l)
	}
}

func TestAServerTokenNamingNobodyGetsRingsAndNotifiesAsTheCreator(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	srv := e.ServerToken()
	for _, u := range []string{"alice", "bob", "carol"} {
		e.Device(u, u+"-android", "firebase", false)
	}
	for _, id := range []string{"by-get", "by-ring", "by-notify"} {
		e.MustCall(201, "POST", rulesPath(id), e.Token("alice"), map[string]any{"data": map[string]any{"members": rulesMembers("bob", "carol")}})
	}

	r := e.MustCall(200, "GET", rulesPath("by-get"), srv, nil)
	if got := accessMemberIDs(t, r.Body["members"]); len(got) != 3 {
		t.Errorf("members through the server token: %v", got)
	}
	if r := e.MustCall(200, "POST", rulesPath("by-get"), srv, map[string]any{}); r.Body["created"] != false {
		t.Errorf("get-or-create of an existing call by the server: created %v", r.Body["created"])
	}
	// Nobody named and no call: a call needs a creator.
	contractErr(t, "get-or-create of no call, naming nobody", e.Call("POST", rulesPath("nobody"), srv, map[string]any{}), 400, "invalid_field", "data.created_by_id")

	e.MustCall(200, "GET", rulesPath("by-get")+"?ring=true", srv, nil)
	e.MustCall(200, "POST", rulesPath("by-ring", "ring"), srv, map[string]any{})
	e.MustCall(200, "GET", rulesPath("by-notify")+"?notify=true", srv, nil)
	// Three calls, three pushes each for bob and carol, in whatever order the ring and notify workers send them.
	for _, u := range []string{"bob", "carol"} {
		got := e.WaitFCM(u+"-android", 3)
		byCall := map[string]string{}
		for _, m := range got {
			byCall[m.Data["call_id"]] = m.Data["type"]
			if m.Data["created_by_id"] != "alice" {
				t.Errorf("%s's %s about %s names %q as the caller, want the creator alice", u, m.Data["type"], m.Data["call_id"], m.Data["created_by_id"])
			}
		}
		if len(got) != 3 || byCall["by-get"] != rulesRing || byCall["by-ring"] != rulesRing || byCall["by-notify"] != rulesNotif {
			t.Errorf("%s's pushes by call: %v (%d pushes)", u, byCall, len(got))
		}
	}
	// The creator is the caller: its own devices get nothing, and it may cancel the ring.
	rulesFCM(t, e, "alice-android")
	call := rulesCallOf(t, e.MustCall(200, "POST", rulesPath("by-ring", "reject"), e.Token("alice"), map[string]any{"reason": "cancel"}))
	if !rulesHasEnded(call) {
		t.Errorf("the creator's cancel of the server's ring did not end the call")
	}
}

// accessBigCall creates call id as alice through the server token with others members besides alice.
func accessBigCall(t *testing.T, e *harness.Env, id string, others int) {
	t.Helper()
	ids := make([]string, others)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%06d", i)
	}
	e.MustCall(201, "POST", rulesPath(id), e.ServerToken(), map[string]any{"data": map[string]any{
		"created_by_id": "alice", "members": rulesMembers(ids...),
	}})
}

// accessFullCall makes a call of alice and m000000 through the API, then fills it to alice and others members
// straight in Redis, as the members script stores them: one create of 100,000 members outlasts the API's
// request timeout in a race build on a loaded machine, and what is under test is the limit, not that request.
func accessFullCall(t *testing.T, e *harness.Env, id string, others int) {
	t.Helper()
	accessBigCall(t, e, id, 1)
	ctx := context.Background()
	member := fmt.Sprintf(`{"role":"user","custom":{},"created_at":%q}`, time.Now().UTC().Format(time.RFC3339Nano))
	key := "ringer:{default:" + id + "}:members"
	const chunk = 5_000
	for start := 1; start < others; start += chunk {
		pairs := make([]any, 0, 2*chunk)
		for i := start; i < min(start+chunk, others); i++ {
			pairs = append(pairs, fmt.Sprintf("m%06d", i), member)
		}
		if err := e.RDB.HSet(ctx, key, pairs...).Err(); err != nil {
			t.Fatalf("fill %s: %v", key, err)
		}
	}
}

// Not parallel: two requests over a 100,000-member call take seconds under -race, and beside the rest of the
// suite on two cores the refused one could outlast its request timeout.
func TestMembersUpdateCannotTakeACallPastTheMemberLimit(t *testing.T) {
	e := harness.Start(t)
	alice := e.Token("alice")
	accessFullCall(t, e, "full", 99_998) // 99,999 members with alice

	// Two updates at once, each adding one member where one place is left: exactly one is taken.
	var wg sync.WaitGroup
	statuses := make([]harness.Resp, 2)
	for i := range statuses {
		wg.Go(func() {
			statuses[i] = e.Call("POST", rulesPath("full", "members"), alice, map[string]any{"update_members": rulesMembers(fmt.Sprintf("late%d", i))})
		})
	}
	wg.Wait()
	ok := 0
	for _, r := range statuses {
		if r.Status == 200 {
			ok++
			continue
		}
		contractErr(t, "the second add at the limit", r, 400, "limit_exceeded", "update_members")
	}
	if ok != 1 {
		t.Fatalf("%d of two adds at the limit answered 200, want 1", ok)
	}
	count := func() float64 {
		t.Helper()
		it := accessList(t, e, alice, "")["default:full"]
		n, _ := it["member_count"].(float64)
		return n
	}
	if n := count(); n != 100_000 {
		t.Fatalf("member_count %v, want 100000", n)
	}
	t.Logf("alice's list with the 100,000-member call: %d bytes", len(e.MustCall(200, "GET", "/v1/calls", alice, nil).Raw))

	// Past the limit nothing of the update is stored, not even the members that would have fitted.
	contractErr(t, "two more", e.Call("POST", rulesPath("full", "members"), alice, map[string]any{
		"update_members": rulesMembers("over1", "over2"),
	}), 400, "limit_exceeded", "update_members")
	contractErr(t, "a refused member reads the call", e.Call("GET", rulesPath("full"), e.Token("over1"), nil), 403, "forbidden", "")
	// One in for one out stays within it, and changing a member adds nobody.
	e.MustCall(200, "POST", rulesPath("full", "members"), alice, map[string]any{
		"update_members": []any{map[string]any{"user_id": "swap"}, map[string]any{"user_id": "m000001", "role": "host"}},
		"remove_members": []string{"m000000"},
	})
	if n := count(); n != 100_000 {
		t.Fatalf("member_count after a swap %v, want 100000", n)
	}
}

func TestCallsListShowsAtMost20MembersOfEachCallAndTheirCount(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	accessBigCall(t, e, "small", 5)
	accessBigCall(t, e, "fifty", 49)
	accessBigCall(t, e, "big", 5_000)
	e.MustCall(200, "POST", rulesPath("big", "members"), e.ServerToken(), map[string]any{"update_members": rulesMembers("zed")})
	e.MustCall(200, "POST", rulesPath("fifty", "members"), e.ServerToken(), map[string]any{"update_members": rulesMembers("zed")})

	started := time.Now()
	r := e.MustCall(200, "GET", "/v1/calls", e.Token("alice"), nil)
	t.Logf("alice's list of a 6-, 51- and 5,002-member call: %d bytes in %s", len(r.Raw), time.Since(started))
	for _, who := range []string{"alice", "zed"} {
		l := accessList(t, e, e.Token(who), "")
		for cid, want := range map[string]int{"default:small": 6, "default:fifty": 51, "default:big": 5_002} {
			it := l[cid]
			if who == "zed" && cid == "default:small" {
				if it != nil {
					t.Errorf("zed lists %s, a call he is not in", cid)
				}
				continue
			}
			if it == nil {
				t.Errorf("%s does not list %s", who, cid)
				continue
			}
			if n, _ := it["member_count"].(float64); int(n) != want {
				t.Errorf("%s's %s: member_count %v, want %d", who, cid, it["member_count"], want)
			}
			ids := accessMemberIDs(t, it["members"])
			if len(ids) != min(want, 20) {
				t.Errorf("%s's %s shows %d members, want %d", who, cid, len(ids), min(want, 20))
			}
			found := false
			for _, id := range ids {
				found = found || id == who
			}
			if !found {
				t.Errorf("%s's %s shows members %v, without %s", who, cid, ids, who)
			}
		}
	}
	full := e.MustCall(200, "GET", rulesPath("big"), e.Token("alice"), nil)
	if got := accessMemberIDs(t, full.Body["members"]); len(got) != 5_002 {
		t.Errorf("get shows %d members of the big call, want every one, 5002", len(got))
	}
	t.Logf("get of the 5,002-member call: %d bytes", len(full.Raw))
}
