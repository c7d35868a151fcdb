package calls_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
)

func newStore(t *testing.T) (*calls.Store, *asynq.Inspector) {
	t.Helper()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	return calls.New(rdb, queue.NewClient(rdb), nil), asynq.NewInspectorFromRedisClient(rdb)
}

var (
	alice = calls.Actor{UserID: "alice", Name: "Alice"}
	bob   = calls.Actor{UserID: "bob"}
	carol = calls.Actor{UserID: "carol"}
)

func ring(t *testing.T, s *calls.Store, id string, callees ...string) calls.State {
	t.Helper()
	req := calls.CreateRequest{Ring: true}
	for _, c := range callees {
		req.Members = append(req.Members, calls.MemberInput{UserID: c})
	}
	st, created, err := s.GetOrCreate(context.Background(), alice, "default", id, req)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	return st
}

func pendingTaskIDs(t *testing.T, in *asynq.Inspector, q string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	tasks, err := in.ListPendingTasks(q, asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	for _, ti := range tasks {
		ids[ti.ID] = true
	}
	scheduled, _ := in.ListScheduledTasks(q, asynq.PageSize(1000))
	for _, ti := range scheduled {
		ids[ti.ID] = true
	}
	return ids
}

func TestCreateWithRingAddsCallerAndEnqueuesOneRingPerCallee(t *testing.T) {
	s, in := newStore(t)
	st := ring(t, s, "c1", "bob", "carol")
	if len(st.Members) != 3 || !st.Call.Ringing || st.Call.RingID == "" {
		t.Fatalf("state: %+v", st)
	}
	ids := pendingTaskIDs(t, in, queue.QueueRing)
	for _, m := range []string{"bob", "carol"} {
		if !ids[queue.RingTaskID(st.Call.RingID, m)] {
			t.Errorf("no ring task for %s in %v", m, ids)
		}
	}
	if ids[queue.RingTaskID(st.Call.RingID, "alice")] {
		t.Error("the caller was rung")
	}
	if !ids[queue.TimeoutTaskID(st.Call.RingID, 0, true)] {
		t.Errorf("no timeout task in %v", ids)
	}
	// A second ring:true get-or-create rings nobody again.
	st2, created, err := s.GetOrCreate(context.Background(), alice, "default", "c1", calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "bob"}}})
	if err != nil || created || st2.Call.RingID != st.Call.RingID {
		t.Fatalf("second create: created=%v err=%v ring %s vs %s", created, err, st2.Call.RingID, st.Call.RingID)
	}
}

func TestFirstAcceptJoinsCallerAndOnlyOneWins(t *testing.T) {
	s, _ := newStore(t)
	ring(t, s, "c2", "bob", "carol")
	var wg sync.WaitGroup
	for _, a := range []calls.Actor{bob, carol} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Accept(context.Background(), a, "default", "c2"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st, err := s.Get(context.Background(), alice, "default", "c2", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Call.Session.AcceptedBy) != 2 || len(st.Call.Session.Participants) != 1 || st.Call.Session.Participants[0].UserID != "alice" {
		t.Fatalf("session: %+v", st.Call.Session)
	}
	if st.Call.Ringing || st.Call.EndedAt != nil {
		t.Fatalf("ringing=%v ended=%v", st.Call.Ringing, st.Call.EndedAt)
	}
}

func TestAllCalleesRejectingEndsTheCall(t *testing.T) {
	s, _ := newStore(t)
	ring(t, s, "c3", "bob", "carol")
	if _, err := s.Reject(context.Background(), bob, "default", "c3", "decline"); err != nil {
		t.Fatal(err)
	}
	st, err := s.Reject(context.Background(), carol, "default", "c3", "busy")
	if err != nil {
		t.Fatal(err)
	}
	if st.Call.EndedAt == nil || st.Call.Ringing {
		t.Fatalf("call not ended: %+v", st.Call)
	}
	if _, ok := st.Call.Session.MissedBy["carol"]; !ok {
		t.Error("busy did not count as missed")
	}
	if _, ok := st.Call.Session.MissedBy["bob"]; ok {
		t.Error("decline counted as missed")
	}
	if _, err := s.Accept(context.Background(), bob, "default", "c3"); !errors.Is(err, calls.ErrEnded) {
		t.Fatalf("accept after end: %v", err)
	}
}

func TestCallerCancelMissesEveryCallee(t *testing.T) {
	s, _ := newStore(t)
	ring(t, s, "c4", "bob", "carol")
	st, err := s.Leave(context.Background(), alice, "default", "c4")
	if err != nil {
		t.Fatal(err)
	}
	if st.Call.EndedAt == nil || len(st.Call.Session.MissedBy) != 2 {
		t.Fatalf("cancel: %+v", st.Call)
	}
}

func TestRingEndsOnTimeEvenBeforeTheTimeoutTaskRuns(t *testing.T) {
	s, _ := newStore(t)
	req := calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "bob"}},
		SettingsOverride: &calls.SettingsOverride{Ring: &calls.RingSettings{AutoCancelTimeoutMs: 1000}}}
	if _, _, err := s.GetOrCreate(context.Background(), alice, "default", "c5", req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := s.Get(context.Background(), alice, "default", "c5", false, false)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Call.Ringing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still ringing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Accept(context.Background(), bob, "default", "c5"); !errors.Is(err, calls.ErrEnded) {
		t.Fatalf("accept after the ring's end: %v", err)
	}
}

func TestAnAcceptAfterTheRingEndedStillOwesTheMissedPushes(t *testing.T) {
	s, in := newStore(t)
	req := calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "bob"}},
		SettingsOverride: &calls.SettingsOverride{Ring: &calls.RingSettings{AutoCancelTimeoutMs: 1000}}}
	st, _, err := s.GetOrCreate(context.Background(), alice, "default", "late", req)
	if err != nil {
		t.Fatal(err)
	}
	// Get only reads: the ring's end is seen without settling it, as when the timeout task is late.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Get(context.Background(), alice, "default", "late", false, false)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Call.Ringing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ring never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Accept(context.Background(), bob, "default", "late"); !errors.Is(err, calls.ErrEnded) {
		t.Fatalf("accept after the ring's end: %v, want ErrEnded", err)
	}
	if !pendingTaskIDs(t, in, queue.QueueRing)[queue.StopTaskID(st.Call.RingID, "bob")] {
		t.Fatal("the late accept settled the ring but its missed-call push was never enqueued")
	}
}

// replayingStore is a store that keeps each member's events for replay, on a private redis-server.
func replayingStore(t *testing.T) (*testredis.Server, *redis.Client, *calls.Store) {
	t.Helper()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	s.SetEventReplay(time.Minute)
	return srv, rdb, s
}

// present opens an event stream for each user through a Hub, as GET /v1/events does, so that their events are
// kept for replay from then on. The streams are left unread: the hub closes them as slow, and the users stay
// present for the replay window after.
func present(t *testing.T, rdb *redis.Client, users ...string) {
	t.Helper()
	listen(t, rdb, time.Minute, users)
}

// replayStream is what user's replay stream holds: each event's type and stream id, in order.
func replayStream(t *testing.T, rdb *redis.Client, user string) (types, ids []string) {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), "ringer:{u:"+user+"}:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var ev struct{ Type string }
		if err := json.Unmarshal([]byte(e.Values["e"].(string)), &ev); err != nil {
			t.Fatal(err)
		}
		types, ids = append(types, ev.Type), append(ids, e.ID)
	}
	return types, ids
}

// Events reach the replay streams by the script's hash: on a Redis that never had the script, and again after
// Redis lost it (a restart, SCRIPT FLUSH), the publish loads it and sends what failed.
func TestEventsReachTheReplayStreamWhenRedisHasLostTheScript(t *testing.T) {
	_, rdb, s := replayingStore(t)
	ctx := context.Background()
	stream := "ringer:{u:bob}:events"
	present(t, rdb, "bob")
	ring(t, s, "replay-1", "bob")
	first, err := rdb.XLen(ctx, stream).Result()
	if err != nil || first == 0 {
		t.Fatalf("bob's replay stream after the first ring: %d entries, %v", first, err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ring(t, s, "replay-2", "bob")
	if n, err := rdb.XLen(ctx, stream).Result(); err != nil || n != 2*first {
		t.Fatalf("bob's replay stream after a ring on a flushed script cache: %d entries (%v), want %d", n, err, 2*first)
	}
}

// A transition's events reach each member's replay stream in their order, and each is published on the
// member's channel under the id of its stream entry, so a live stream and a replay agree.
func TestATransitionsEventsReachEachMembersStreamInOrderUnderTheirStreamIDs(t *testing.T) {
	_, rdb, s := replayingStore(t)
	ctx := context.Background()
	present(t, rdb, "bob", "carol")
	sub := rdb.Subscribe(ctx, calls.EventChannel("bob"), calls.EventChannel("carol"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	ring(t, s, "ordered", "bob", "carol")
	for _, user := range []string{"bob", "carol"} {
		if types, _ := replayStream(t, rdb, user); !slices.Equal(types, []string{"call.created", "call.ring"}) {
			t.Fatalf("%s's replay stream holds %v; want call.created then call.ring", user, types)
		}
	}
	got := map[string][]string{}
	for range 4 {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id, _, _ := strings.Cut(msg.Payload, " ")
		got[msg.Channel] = append(got[msg.Channel], id)
	}
	for _, user := range []string{"bob", "carol"} {
		if _, want := replayStream(t, rdb, user); !slices.Equal(got[calls.EventChannel(user)], want) {
			t.Errorf("%s's channel carried ids %v; want the stream's %v, in order", user, got[calls.EventChannel(user)], want)
		}
	}
}

// A create that notifies enqueues its notification before it publishes its events, which take a pass over
// every member that a big call's pushes must not wait for; and its events and the notification's reach each
// member's replay stream in that one pass, call.created then call.notification, a call this small's in one
// script call. Redis' MONITOR shows the order in which the commands ran.
func TestACreateThatNotifiesEnqueuesItsNotificationBeforeItPublishesItsEvents(t *testing.T) {
	srv, rdb, s := replayingStore(t)
	ctx := context.Background()
	present(t, rdb, "alice", "bob", "carol")
	// Redis has the scripts from here on, so each runs once by its hash (see replayAgain).
	if _, _, err := s.GetOrCreate(ctx, calls.Actor{UserID: "dave"}, "default", "warm",
		calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "erin"}}}); err != nil {
		t.Fatal(err)
	}

	// MONITOR over a connection of its own: go-redis' Monitor reads its stream under the connection's read
	// deadline, and its replies are one simple string a command.
	mon, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	if _, err := mon.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	go func() {
		r := bufio.NewReader(mon)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, l)
			mu.Unlock()
		}
	}()
	monitored := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(seen, func(l string) bool { return strings.Contains(l, want) })
	}
	// MONITOR shows what runs once it has answered: wait for a command of the test's own.
	for deadline := time.Now().Add(10 * time.Second); !monitored("monitor-ready"); {
		if time.Now().After(deadline) {
			t.Fatal("MONITOR showed nothing")
		}
		rdb.Get(ctx, "monitor-ready")
		time.Sleep(time.Millisecond)
	}

	req := calls.CreateRequest{Notify: true, Members: []calls.MemberInput{{UserID: "bob"}, {UserID: "carol"}}}
	if _, created, err := s.GetOrCreate(ctx, alice, "default", "notified", req); err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	rdb.Get(ctx, "monitor-done")
	for deadline := time.Now().Add(10 * time.Second); !monitored("monitor-done"); {
		if time.Now().After(deadline) {
			t.Fatal("MONITOR did not show the create's last command")
		}
		time.Sleep(time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	first := func(want string) int {
		return slices.IndexFunc(seen, func(l string) bool { return strings.Contains(l, want) })
	}
	enqueued, firstEvent := first(`"asynq:{notify}:pending"`), first(`"XADD"`)
	if enqueued < 0 || firstEvent < 0 || enqueued > firstEvent {
		t.Fatalf("the notification was enqueued at command %d and the first event published at %d; want the notification first", enqueued, firstEvent)
	}
	// A call this small has its events published to all its members' streams in one script call.
	var scriptCalls []string
	for _, l := range seen {
		if strings.Contains(strings.ToLower(l), `"evalsha"`) && strings.Contains(l, ":events") {
			scriptCalls = append(scriptCalls, l)
		}
	}
	if len(scriptCalls) != 1 {
		t.Fatalf("the events were published by %d script calls; want 1:\n%s", len(scriptCalls), strings.Join(scriptCalls, ""))
	}
	for _, user := range []string{"alice", "bob", "carol"} {
		if !strings.Contains(scriptCalls[0], `"ringer:{u:`+user+`}:events"`) {
			t.Errorf("the script call that published the events left out %s's stream", user)
		}
		if types, _ := replayStream(t, rdb, user); !slices.Equal(types, []string{"call.created", "call.notification"}) {
			t.Errorf("%s's replay stream holds %v; want call.created then call.notification", user, types)
		}
	}
}

// A create that notifies and asks for a reminder schedules the reminder before it notifies: when the reminder
// fails (a Redis ACL keeps the process off Asynq's scheduled set), the request fails with nobody notified,
// and its retry, which finds the call made, schedules the reminder and notifies once.
func TestACreateWhoseReminderFailsNotifiesNobodyAndItsRetryNotifiesOnce(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	if err := rdb.Do(ctx, "ACL", "SETUSER", "no-schedule", "on", ">pw", "~ringer:*", "~asynq:queues",
		"~asynq:{ring}:*", "~asynq:{watch}:*", "~asynq:{notify}:t:*", "~asynq:{notify}:pending", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	limited := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "no-schedule", Password: "pw"})
	t.Cleanup(func() { limited.Close() })
	in := asynq.NewInspectorFromRedisClient(rdb)
	startsAt := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	req := calls.CreateRequest{Notify: true, StartsAt: &startsAt, Members: []calls.MemberInput{{UserID: "bob"}}}

	failing := calls.New(limited, queue.NewClient(limited), nil)
	if _, created, err := failing.GetOrCreate(ctx, alice, "default", "reminded", req); err == nil || !created {
		t.Fatalf("create without the scheduled set: created=%v err=%v; want the call created and an error", created, err)
	}
	if tasks, _ := in.ListPendingTasks(queue.QueueNotify); len(tasks) != 0 {
		t.Fatalf("%d notifications pending after the failed reminder; want none", len(tasks))
	}

	s := calls.New(rdb, queue.NewClient(rdb), nil)
	if _, created, err := s.GetOrCreate(ctx, alice, "default", "reminded", req); err != nil || created {
		t.Fatalf("retry: created=%v err=%v; want the call found", created, err)
	}
	tasks, err := in.ListPendingTasks(queue.QueueNotify)
	if err != nil || len(tasks) != 1 || tasks[0].Type != queue.TypeNotify {
		t.Fatalf("pending after the retry: %v (%v); want one notification", tasks, err)
	}
	scheduled, err := in.ListScheduledTasks(queue.QueueNotify)
	if err != nil || len(scheduled) != 1 || scheduled[0].Type != queue.TypeReminder {
		t.Fatalf("scheduled after the retry: %v (%v); want the reminder", scheduled, err)
	}
}

// listen opens an event stream for each user through one Hub, as GET /v1/events does, marking them present
// when replay is on, and answers the streams by user.
func listen(t *testing.T, rdb *redis.Client, replay time.Duration, users []string) map[string]<-chan calls.Event {
	t.Helper()
	hub, err := calls.NewHub(rdb, calls.HubConfig{Replay: replay, Max: len(users),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]<-chan calls.Event{}
	for _, u := range users {
		streams[u], _ = subscribe(t, hub, u)
	}
	return streams
}

// heard is the next n events of stream (next): each one's type and id, in order.
func heard(t *testing.T, user string, stream <-chan calls.Event, n int) (types, ids []string) {
	t.Helper()
	for range n {
		ev, ok := next(t, stream)
		if !ok {
			t.Fatalf("%s's stream closed after %v", user, types)
		}
		types, ids = append(types, ev.Type), append(ids, ev.ID)
	}
	return types, ids
}

// A call too big for one replay script call (replayBatch) still gets each event, in order, to every stream of
// its members: under its replay id for a present member, which keeps it, and without one, keeping nothing, for
// a member found absent, on a Redis that has lost the script as on one that has it. A member listening while
// found absent is one whose stream opened after the check, or whose mark was lost: its events come in
// messages for many members (publishMany), which every hub hears.
func TestEveryMemberOfABigCallHearsItsEventsAndThePresentOnesKeepThemForReplay(t *testing.T) {
	_, rdb, s := replayingStore(t)
	ctx := context.Background()
	var members []calls.MemberInput
	var users, here []string
	for i := range 2500 {
		u := "member" + strconv.Itoa(i)
		members = append(members, calls.MemberInput{UserID: u})
		users = append(users, u)
		if i%2 == 0 {
			here = append(here, u)
		}
	}
	streams := listen(t, rdb, time.Minute, users)
	for _, u := range users {
		if !slices.Contains(here, u) {
			if err := rdb.Del(ctx, "ringer:{u:"+u+"}:present").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range []string{"big-1", "big-2"} {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, created, err := s.GetOrCreate(ctx, alice, "default", id, calls.CreateRequest{Notify: true, Members: members}); err != nil || !created {
			t.Fatalf("create %s: created=%v err=%v", id, created, err)
		}
	}
	want := []string{"call.created", "call.notification", "call.created", "call.notification"}
	for _, u := range users {
		types, ids := heard(t, u, streams[u], len(want))
		if !slices.Equal(types, want) {
			t.Fatalf("%s's stream carried %v; want %v", u, types, want)
		}
		if !slices.Contains(here, u) {
			if n := rdb.Exists(ctx, "ringer:{u:"+u+"}:events").Val(); n != 0 {
				t.Fatalf("absent %s has a replay stream", u)
			}
			if !slices.Equal(ids, []string{"", "", "", ""}) {
				t.Fatalf("absent %s's stream carried ids %v; want none", u, ids)
			}
			continue
		}
		kept, streamIDs := replayStream(t, rdb, u)
		if !slices.Equal(kept, want) {
			t.Fatalf("%s's replay stream holds %v; want %v", u, kept, want)
		}
		if !slices.Equal(ids, streamIDs) {
			t.Fatalf("%s's stream carried ids %v; want the replay stream's %v, in order", u, ids, streamIDs)
		}
	}
	// Each of the 2 events of 2 calls went to each present member in a PUBLISH of the replay script, and to the
	// absent members in messages for a thousand of them, not in a PUBLISH each.
	absent := len(users) - len(here)
	if n, want := commandCalls(t, rdb, "publish"), 2*2*(len(here)+(absent+999)/1000); n != want {
		t.Fatalf("%d PUBLISH commands for 2 calls of 2 events each to %d present and %d absent members; want %d", n, len(here), absent, want)
	}
}

// commandCalls is how many times Redis ran the command so far (INFO commandstats), the ones scripts ran
// included.
func commandCalls(t *testing.T, rdb *redis.Client, cmd string) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// A process that keeps no events for replay marks nobody present: a big call's events reach its members'
// streams all the same, in messages for many members, and no stream of anyone else.
func TestABigCallsEventsReachEveryStreamWithoutReplay(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	s := calls.New(rdb, queue.NewClient(rdb), nil)
	var members []calls.MemberInput
	var users []string
	for i := range 30 {
		u := "member" + strconv.Itoa(i)
		members = append(members, calls.MemberInput{UserID: u})
		users = append(users, u)
	}
	streams := listen(t, rdb, 0, append(slices.Clone(users), "outsider"))
	if _, created, err := s.GetOrCreate(context.Background(), alice, "default", "big", calls.CreateRequest{Notify: true, Members: members}); err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	want := []string{"call.created", "call.notification"}
	for _, u := range users {
		if types, ids := heard(t, u, streams[u], len(want)); !slices.Equal(types, want) || !slices.Equal(ids, []string{"", ""}) {
			t.Fatalf("%s's stream carried %v with ids %v; want %v without ids", u, types, ids, want)
		}
	}
	// Published after the call's events on the same Redis: the first event the outsider hears.
	b, _ := json.Marshal(calls.Event{Type: "call.ring", CallCID: "default:other"})
	if err := rdb.Publish(context.Background(), calls.EventChannel("outsider"), b).Err(); err != nil {
		t.Fatal(err)
	}
	if types, _ := heard(t, "outsider", streams["outsider"], 1); !slices.Equal(types, []string{"call.ring"}) {
		t.Fatalf("the outsider heard %v first; want its own call.ring, nothing of the call", types)
	}
}

// A small call's absent member hears its events, without ids, and gets no replay stream, while the member
// present keeps them: both through the one script call that serves them.
func TestASmallCallsAbsentMemberHearsItsEventsAndKeepsNone(t *testing.T) {
	_, rdb, s := replayingStore(t)
	ctx := context.Background()
	present(t, rdb, "bob")
	sub := rdb.Subscribe(ctx, calls.EventChannel("carol"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	ring(t, s, "half-here", "bob", "carol")
	if types, _ := replayStream(t, rdb, "bob"); !slices.Equal(types, []string{"call.created", "call.ring"}) {
		t.Fatalf("bob's replay stream holds %v; want call.created then call.ring", types)
	}
	if n := rdb.Exists(ctx, "ringer:{u:carol}:events").Val(); n != 0 {
		t.Fatal("absent carol has a replay stream")
	}
	for _, want := range []string{"call.created", "call.ring"} {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct{ Type string }
		if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil || ev.Type != want {
			t.Fatalf("carol's channel carried %q (%v); want %s, without an id", msg.Payload, err, want)
		}
	}
}
