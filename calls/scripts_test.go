package calls

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// runScript runs transition script sc on call cid at now, as runKeys does in a process that delivers webhooks
// (the events go to the outbox) but with nothing applied after it, and answers its outcome.
func runScript(t *testing.T, rdb *redis.Client, sc *redis.Script, cid string, now time.Time, args ...any) outcome {
	t.Helper()
	argv := append([]any{fmt.Sprintf("%d:%d:%d:1", now.UnixMilli(), time.Hour.Milliseconds(), 24*time.Hour.Milliseconds())}, args...)
	res, err := sc.Run(context.Background(), rdb, callKeys(cid), argv...).Slice()
	if err != nil {
		t.Fatal(err)
	}
	_, raw, err := scriptAnswer(res)
	if err != nil {
		t.Fatal(err)
	}
	var out outcome
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestATransitionNumbersItsEventsInOrderAndOutboxesEachOnce: the scripts write a transition's events and its
// callees with one command per key, in chunks; what they leave must be what one command per event and per
// callee left. A call of the most callees one ring may have (two chunks of the ringing set's score and member
// pairs, three of the members' pairs), one of them named twice, is created with a ring and then cancelled
// by its caller, which owes an event per callee. Each transition's events are numbered on from the last,
// in the order owed, and the outbox holds each under its number; each callee is rung once, with its ring
// time; every key of the call lives as long as the call.
func TestATransitionNumbersItsEventsInOrderAndOutboxesEachOnce(t *testing.T) {
	ctx := context.Background()
	rdb := testredis.Start(t).Client(t)
	cid := CID("default", "chunks")
	now := time.Now()
	callees := make([]string, MaxRingMembers)
	members := []string{"alice", `{"role":"admin"}`}
	for i := range callees {
		callees[i] = "m" + strconv.Itoa(i)
		members = append(members, callees[i], `{}`)
	}
	named := append(slices.Clone(callees), callees[7])
	spec, err := json.Marshal(createSpec{
		Fields:  []string{"type", "default", "id", "chunks", "created_by", "alice", "auto_ms", "30000", "incoming_ms", "20000"},
		Members: members, Ring: true, RingID: "r1", Caller: "alice", Callees: named,
	})
	if err != nil {
		t.Fatal(err)
	}

	created := runScript(t, rdb, createScript, cid, now, string(spec))
	if created.Status != statusOK {
		t.Fatalf("create: %s", created.Status)
	}
	wantEvents := []event{{Type: EventCreated, User: "alice", Seq: 1}, {Type: queue.EventRing, User: "alice", Seq: 2}}
	if !slices.Equal(created.Events, wantEvents) {
		t.Errorf("create's events %+v, want %+v", created.Events, wantEvents)
	}
	if len(created.Rung) != len(callees) {
		t.Fatalf("create rang %d members, want each of the %d callees once", len(created.Rung), len(callees))
	}
	deadline := now.UnixMilli() + 20000
	for i, r := range created.Rung {
		if r.Member != callees[i] || r.Deadline != deadline {
			t.Fatalf("rung[%d] = %+v, want %s until %d", i, r, callees[i], deadline)
		}
	}
	ringing, err := rdb.ZRangeWithScores(ctx, callKeys(cid)[3], 0, -1).Result()
	if err != nil || len(ringing) != len(callees) {
		t.Fatalf("ringing set: %d members (err %v), want %d", len(ringing), err, len(callees))
	}
	for _, z := range ringing {
		if int64(z.Score) != deadline {
			t.Fatalf("%v rings until %d, want %d", z.Member, int64(z.Score), deadline)
		}
	}
	if n := rdb.SCard(ctx, callKeys(cid)[4]).Val(); n != int64(len(callees)) {
		t.Errorf("rung set holds %d, want %d", n, len(callees))
	}
	if at := rdb.HGet(ctx, callKeys(cid)[2], "at:m999").Val(); at != strconv.FormatInt(now.UnixMilli(), 10) {
		t.Errorf("the last callee's ring started at %q, want %d", at, now.UnixMilli())
	}
	if n := rdb.HLen(ctx, callKeys(cid)[1]).Val(); n != int64(len(callees)+1) {
		t.Errorf("members hash holds %d, want %d", n, len(callees)+1)
	}

	cancelled := runScript(t, rdb, rejectScript, cid, now.Add(time.Second), "alice", "cancel")
	if cancelled.Status != statusOK || !cancelled.Ended {
		t.Fatalf("cancel: status %s, ended %v", cancelled.Status, cancelled.Ended)
	}
	want := []event{{Type: queue.EventRejected, User: "alice", Seq: 3}}
	// A cancel misses the callees in the ringing set's order: by ring time, then by name.
	for i, c := range slices.Sorted(slices.Values(callees)) {
		want = append(want, event{Type: queue.EventMissed, User: c, Seq: int64(4 + i)})
	}
	want = append(want, event{Type: queue.EventEnded, User: "alice", Seq: int64(4 + len(callees))})
	if !slices.Equal(cancelled.Events, want) {
		t.Fatalf("cancel owed %d events (first %+v), want %d numbered 3 on", len(cancelled.Events), cancelled.Events[:min(3, len(cancelled.Events))], len(want))
	}

	outbox, err := rdb.HGetAll(ctx, outboxKey(cid)).Result()
	if err != nil {
		t.Fatal(err)
	}
	all := append(wantEvents, want...)
	if len(outbox) != len(all) {
		t.Fatalf("outbox holds %d events, want %d", len(outbox), len(all))
	}
	for _, e := range all {
		var got outboxEntry
		if err := json.Unmarshal([]byte(outbox[strconv.FormatInt(e.Seq, 10)]), &got); err != nil {
			t.Fatalf("outbox entry %d: %v", e.Seq, err)
		}
		if got.Type != e.Type || got.User != e.User {
			t.Fatalf("outbox entry %d is %+v, want %s of %s", e.Seq, got, e.Type, e.User)
		}
	}
	if ttl := rdb.PTTL(ctx, outboxKey(cid)).Val(); ttl <= 0 {
		t.Errorf("outbox has no time to live (%v)", ttl)
	}
	// Ended: every key the call has left lives for the retention (an hour here), no longer.
	for _, k := range callKeys(cid)[:9] {
		ttl := rdb.PTTL(ctx, k).Val()
		if rdb.Exists(ctx, k).Val() == 1 && (ttl <= 0 || ttl > time.Hour) {
			t.Errorf("%s lives %v, want at most the retention of an hour", k, ttl)
		}
	}
}

// TestACreateTakesNothingFromTheKeysOfAVanishedCall: a create writes a new call without reading its other keys
// back, so it must not find a vanished call's leftovers there either (keys evicted one by one under memory
// pressure leave a ring, a ringing set, answers and an outbox without the call hash). The new call rings only
// its own callee, with nobody accepted, rejected, missed or joined, its outbox holds its own events alone, and
// its ring hash only its own ring; each key it wrote lives the max age past the ring's end.
func TestACreateTakesNothingFromTheKeysOfAVanishedCall(t *testing.T) {
	ctx := context.Background()
	rdb := testredis.Start(t).Client(t)
	cid := CID("default", "reborn")
	keys := callKeys(cid)
	stale := rdb.Pipeline()
	stale.HSet(ctx, keys[2], "id", "old", "live", "1", "accepted", "1", "at:mallory", "1")
	stale.ZAdd(ctx, keys[3], redis.Z{Score: 1e15, Member: "mallory"})
	stale.SAdd(ctx, keys[4], "mallory", "bob")
	for _, k := range keys[5:9] {
		stale.HSet(ctx, k, "bob", "1", "eve", "1")
	}
	stale.HSet(ctx, keys[9], "7", `{"type":"call.ended","user":"eve","at":1}`)
	if _, err := stale.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	spec, err := json.Marshal(createSpec{
		Fields: []string{"type", "default", "id", "reborn", "created_by", "alice", "auto_ms", "30000",
			"incoming_ms", "20000", "starts_at", ""},
		Members: []string{"alice", `{}`, "bob", `{}`}, Ring: true, RingID: "r1", Caller: "alice", Callees: []string{"bob"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := runScript(t, rdb, createScript, cid, now, string(spec))
	if out.Status != statusOK || len(out.Rung) != 1 || out.Rung[0].Member != "bob" {
		t.Fatalf("create: status %s, rang %+v; want ok, bob", out.Status, out.Rung)
	}
	if got := rdb.ZRange(ctx, keys[3], 0, -1).Val(); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("ringing %v, want [bob]", got)
	}
	if got := rdb.SMembers(ctx, keys[4]).Val(); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("rung %v, want [bob]", got)
	}
	ring := rdb.HGetAll(ctx, keys[2]).Val()
	if ring["id"] != "r1" || ring["accepted"] != "0" || ring["at:mallory"] != "" {
		t.Errorf("ring hash %v, want ring r1 alone, nobody accepted", ring)
	}
	for _, k := range keys[5:9] {
		if n := rdb.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s survived the create: %v", k, rdb.HGetAll(ctx, k).Val())
		}
	}
	if outbox := rdb.HGetAll(ctx, keys[9]).Val(); len(outbox) != 2 || outbox["7"] != "" {
		t.Errorf("outbox %v, want the new call's call.created and call.ring alone", outbox)
	}
	// keep's figures without its reads: 24 h of max age (runScript's) past the ring's end, 30 s away.
	for _, k := range keys[:5] {
		ttl := rdb.PTTL(ctx, k).Val()
		if ttl <= 24*time.Hour || ttl > 24*time.Hour+30*time.Second {
			t.Errorf("%s lives %v, want the max age past the ring's end", k, ttl)
		}
	}
}

// TestACreateAnswersWhatItsKeysHold: a create answers the call it wrote without reading it back; that answer
// must be what a read of the call's keys right after finds, field for field, whatever the create rang and
// whether its events went to the outbox.
func TestACreateAnswersWhatItsKeysHold(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	ctx := context.Background()
	now := time.UnixMilli(1_796_658_247_298)
	fields := []string{"type", "default", "id", "x", "created_by", "alice", "created_by_name", "Alice", "created_by_image", "",
		"created_at", strconv.FormatInt(now.UnixMilli(), 10), "custom", `{"a":1}`, "auto_ms", "30000", "incoming_ms", "20000",
		"starts_at", "", "team", ""}
	members := []string{"alice", `{"role":"admin"}`, "bob", `{}`, "carol", `{"custom":{"x":"<y>"}}`}
	cases := []struct {
		name    string
		outbox  int
		spec    createSpec
		ringing int
	}{
		{"a ring of two, one named twice, events in the outbox", 1,
			createSpec{Fields: fields, Members: members, Ring: true, RingID: "r1", Caller: "alice", CallerName: "Alice", Callees: []string{"bob", "carol", "bob"}}, 2},
		{"a ring of nobody, no outbox", 0,
			createSpec{Fields: fields, Members: members[:2], Ring: true, RingID: "r2", Caller: "alice", Callees: []string{}}, 0},
		{"no ring, events in the outbox", 1,
			createSpec{Fields: fields, Members: members, Caller: "alice", Callees: []string{}}, 0},
	}
	for i, c := range cases {
		cid := "default:answer" + strconv.Itoa(i)
		spec, err := json.Marshal(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		argv := fmt.Sprintf("%d:%d:%d:%d", now.UnixMilli(), time.Hour.Milliseconds(), 24*time.Hour.Milliseconds(), c.outbox)
		res, err := createScript.Run(ctx, rdb, callKeys(cid), argv, string(spec)).Slice()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		answered, _, err := scriptAnswer(res)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p := rdb.Pipeline()
		read := queueRead(ctx, p, cid)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("%s: read back: %v", c.name, err)
		}
		stored := read.data()
		for _, d := range []*callData{&answered, &stored} {
			// In any order, and none as an empty list.
			d.ringing = append([]ringingMember{}, d.ringing...)
			slices.SortFunc(d.ringing, func(a, b ringingMember) int { return strings.Compare(a.member, b.member) })
		}
		if len(stored.ringing) != c.ringing {
			t.Errorf("%s: %d members ringing, want %d", c.name, len(stored.ringing), c.ringing)
		}
		if !reflect.DeepEqual(answered, stored) {
			t.Errorf("%s: the create answered\n%+v\nits keys hold\n%+v", c.name, answered, stored)
		}
	}
}
