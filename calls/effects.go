package calls

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
)

// evt is one event to publish: seq is its number in the call's outbox (0 for an event no script wrote, a
// notification), at its time (zero: now).
type evt struct {
	typ, user string
	seq       int64
	at        time.Time
}

// finish carries out what a transition owes, given its outcome and the call as its script left it: ring
// pushes and their timeouts, stop and missed-call pushes, events, and what also asks (the call lists of
// members it added, a create's reminder and notification). The transition has already happened; an error
// here is returned so the client can retry, and the deterministic task ids keep a retried effect single.
// Only runKeys calls it.
func (s *Store) finish(ctx context.Context, a Actor, out outcome, snap snapshot, also *owedBeyond) error {
	// The transition is stored when finish runs: its tasks, call lists and events must follow whatever is left
	// of the request's own deadline, or a slow moment (a 100,000-member call's lists) leaves a stored change
	// without them and answers 503 for a change that happened. They get a bound of their own instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), effectsTimeout)
	defer cancel()
	if also == nil {
		also = &owedBeyond{}
	}
	cid := snap.Call.CID
	info := callInfo(snap.Call, snap.ringCaller, snap.ringCallerName)
	if err := s.enqueueEffects(ctx, cid, info, snap, out); err != nil {
		s.log.Error("call effects not enqueued", "cid", cid, "ring_id", out.RingID, "err", err)
		// The call lists are written all the same: a retry finds the call made and would not write them.
		if ierr := s.publish(ctx, snap.State, nil, also.index); ierr != nil {
			s.log.Error("call lists not written", "cid", cid, "err", ierr)
		}
		return fmt.Errorf("call %s: effects: %w", cid, err)
	}
	stopped := slices.Clone([]string(out.Missed))
	for _, st := range out.Stops {
		stopped = append(stopped, st.Member)
	}
	s.waitForRingSends(ctx, cid, out.StopRingID, stopped)
	evs := make([]evt, len(out.Events))
	for i, e := range out.Events {
		u := e.User
		if u == "" {
			u = a.UserID
		}
		evs[i] = evt{typ: e.Type, user: u, seq: e.Seq, at: time.UnixMilli(out.Now)}
	}
	if !also.notify {
		if err := s.publish(ctx, snap.State, evs, also.index); err != nil {
			return err
		}
		return s.remindIfAsked(ctx, also.remind, snap.Call)
	}
	// A create that notifies sends its notification before its events: publishing them takes a pass over
	// every member, which a big call's pushes must not wait for, and the notification's event shares that
	// pass. The reminder comes first, since the client's retry of a request that failed after its
	// notification would notify again; the notification writes the call lists as it goes (sendNotification).
	err := s.remindIfAsked(ctx, also.remind, snap.Call)
	if err == nil {
		var ev evt
		if ev, err = s.sendNotification(ctx, a, snap.State, also.index); err == nil {
			evs = append(evs, ev)
		}
	}
	// Without call lists to write, publish answers no error.
	_ = s.publish(ctx, snap.State, evs, nil)
	return err
}

// effectsTimeout bounds the effects of one stored transition (finish).
const effectsTimeout = 30 * time.Second

// waitForRingSends returns once no worker is still sending a ring push of ringID to members, or after
// gate.AnswerWait. The transition closed their gate atomically, so none can start after it; waiting for those
// already in flight means that, once the client has the answer, no ring push reaches these members' phones
// any more.
func (s *Store) waitForRingSends(ctx context.Context, cid, ringID string, members []string) {
	_, _ = s.gate.WaitIdle(ctx, cid, ringID, members, gate.AnswerWait)
}

func (s *Store) enqueueEffects(ctx context.Context, cid string, info queue.CallInfo, snap snapshot, out outcome) error {
	// Stops first: a phone must stop ringing before anything else is sent.
	byEvent := map[string][]string{}
	for _, st := range out.Stops {
		byEvent[st.Event] = append(byEvent[st.Event], st.Member)
	}
	if len(out.Missed) > 0 {
		byEvent[queue.EventMissed] = append(byEvent[queue.EventMissed], out.Missed...)
	}
	for _, ev := range slices.Sorted(maps.Keys(byEvent)) {
		if err := s.queue.EnqueueStop(ctx, info, out.StopRingID, ev, byEvent[ev]); err != nil {
			return err
		}
	}
	if len(out.Rung) == 0 {
		return nil
	}
	members := make([]queue.RingMember, len(out.Rung))
	// Members rung by one script share its now, so their deadlines take at most two values (now plus the
	// incoming timeout, or the ring's end).
	var deadlines []int64
	for i, r := range out.Rung {
		d := r.Deadline
		members[i] = queue.RingMember{UserID: r.Member, EndsAt: time.UnixMilli(d)}
		if !slices.Contains(deadlines, d) {
			deadlines = append(deadlines, d)
		}
	}
	// The ring tasks, the watchdog and the timeouts are independent Asynq enqueues (Asynq has no batch
	// enqueue): issued together rather than one after another, they share a pipelined round trip (see
	// queue.NewClient) instead of taking one each.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.queue.EnqueueRing(gctx, info, out.RingID, members) })
	for _, d := range deadlines {
		g.Go(func() error {
			return s.queue.ScheduleTimeout(gctx, cid, out.RingID, time.UnixMilli(d), d == snap.ringEndsAt)
		})
	}
	return g.Wait()
}

// eventWire is Event with its call already encoded; it encodes to the same JSON.
type eventWire struct {
	Type      string          `json:"type"`
	CallCID   string          `json:"call_cid"`
	Call      json.RawMessage `json:"call"`
	User      UserRef         `json:"user"`
	CreatedAt time.Time       `json:"created_at"`
}

// publish sends each event to every member's channel (and replay stream), enqueues its webhooks and takes
// it out of the call's outbox, and writes index (may be nil) into its members' call lists. Events to SSE are
// best effort (clients re-read the call on reconnect, or replay what they missed): a failure to publish is
// logged; a failure to enqueue webhooks leaves the events in the outbox for the sweeper; a failure to write
// the call lists is returned.
func (s *Store) publish(ctx context.Context, st State, evs []evt, index *memberIndex) error {
	if len(evs) == 0 && index.empty() {
		return nil
	}
	now := s.now().UTC()
	cid := st.Call.CID
	var call json.RawMessage
	if len(evs) > 0 {
		// Every event of a transition carries the same call: encoded once, not once per event.
		var err error
		if call, err = json.Marshal(st.Call); err != nil {
			s.log.Error("events not encoded", "cid", cid, "err", err)
			evs = nil
		}
	}
	bodies := make([][]byte, len(evs))
	for i, e := range evs {
		at := e.at
		if at.IsZero() {
			at = now
		}
		b, err := json.Marshal(eventWire{Type: e.typ, CallCID: cid, Call: call, User: UserRef{ID: e.user}, CreatedAt: at.UTC()})
		if err != nil {
			s.log.Error("event not encoded", "cid", cid, "event", e.typ, "err", err)
			continue
		}
		bodies[i] = b
	}
	pipe := s.rdb.Pipeline()
	indexCmds := index.queue(ctx, pipe, cid, s.maxAge+s.retention)
	hooks := make(chan struct{})
	if len(s.webhooks) > 0 {
		go func() {
			defer close(hooks)
			s.deliver(ctx, cid, evs, bodies)
		}()
	} else {
		// No webhooks: the outbox entries go with this round trip.
		close(hooks)
		if seqs := outboxSeqs(evs); len(seqs) > 0 {
			pipe.HDel(ctx, outboxKey(cid), seqs...)
		}
	}
	minID := strconv.FormatInt(now.Add(-s.replay).UnixMilli(), 10)
	var replays []replayed
	// bodies stays as it is: deliver reads it beside evs.
	if sent := slices.DeleteFunc(slices.Clone(bodies), func(b []byte) bool { return b == nil }); len(sent) > 0 {
		if s.replay > 0 {
			users := memberUserIDs(st.Members)
			if len(users) > replayCallMax {
				users = s.publishToAbsent(ctx, pipe, users, sent)
			}
			for users := range slices.Chunk(users, s.replayBatch(len(users))) {
				r := replayed{users: users, bodies: sent}
				r.cmd = s.replayTo(ctx, pipe, minID, r)
				replays = append(replays, r)
			}
		} else if users := memberUserIDs(st.Members); len(users) > replayCallMax {
			s.publishMany(ctx, pipe, users, sent)
		} else {
			for _, u := range users {
				for _, b := range sent {
					pipe.Publish(ctx, EventChannel(u), b)
				}
			}
		}
	}
	_, err := pipe.Exec(ctx)
	if err != nil && len(replays) > 0 {
		err = s.replayAgain(ctx, minID, replays, err)
	}
	<-hooks
	for _, c := range indexCmds {
		if c.Err() != nil {
			return fmt.Errorf("index members of %s: %w", cid, c.Err())
		}
	}
	if err != nil {
		s.log.Warn("events not published", "cid", cid, "err", err)
	}
	return nil
}

// replayed is a transition's events sent to some members' replay streams, and the command that sent them.
type replayed struct {
	users  []string
	bodies [][]byte
	cmd    *redis.Cmd
}

// publishToAbsent queues on pipe each event for every one of users who is not present (presenceKey), on
// manyChannel (publishMany), and answers the others. A big call's members are mostly absent: a message for a
// thousand of them costs Redis far less than a script call each that finds them so. A member who turns present
// after the check hears the events live all the same; it is only its replay stream that misses them, and its
// stream opened after they happened. When the check fails every member is answered present, since the script
// checks again.
func (s *Store) publishToAbsent(ctx context.Context, pipe redis.Pipeliner, users []string, bodies [][]byte) []string {
	here, err := s.arePresent(ctx, users)
	if err != nil {
		s.log.Warn("presence of members not read; every member's events go through the replay script", "err", err)
		return users
	}
	var present, absent []string
	for i, u := range users {
		if here[i] {
			present = append(present, u)
		} else {
			absent = append(absent, u)
		}
	}
	s.publishMany(ctx, pipe, absent, bodies)
	return present
}

// presenceBatch is how many presence keys one MGET of arePresent reads.
const presenceBatch = 1000

// arePresent tells for each of users whether it is present (presenceKey), in one pipeline: on a single Redis an
// MGET of presenceBatch marks a command, where a command a member was most of the check's cost; on a Cluster,
// where the marks fall in many slots, an EXISTS each.
func (s *Store) arePresent(ctx context.Context, users []string) ([]bool, error) {
	check := s.rdb.Pipeline()
	here := make([]bool, 0, len(users))
	if _, single := s.rdb.(*redis.Client); single {
		var cmds []*redis.SliceCmd
		for batch := range slices.Chunk(users, presenceBatch) {
			keys := make([]string, len(batch))
			for i, u := range batch {
				keys[i] = presenceKey(u)
			}
			cmds = append(cmds, check.MGet(ctx, keys...))
		}
		if _, err := check.Exec(ctx); err != nil {
			return nil, err
		}
		for _, c := range cmds {
			for _, v := range c.Val() {
				here = append(here, v != nil)
			}
		}
		return here, nil
	}
	cmds := make([]*redis.IntCmd, len(users))
	for i, u := range users {
		cmds[i] = check.Exists(ctx, presenceKey(u))
	}
	if _, err := check.Exec(ctx); err != nil {
		return nil, err
	}
	for _, c := range cmds {
		here = append(here, c.Val() == 1)
	}
	return here, nil
}

// manyChannel is the pub/sub channel every hub hears: the events of a big call for those of its members who keep
// no replay stream of them, many members a message (manyMessage). No user's channel is named so: EventChannel
// puts a colon after "events".
const manyChannel = "ringer:events-many"

// manyMessage is a message on manyChannel: Event for each of Users.
type manyMessage struct {
	Users []string        `json:"users"`
	Event json.RawMessage `json:"event"`
}

// manyBatch is how many users one message on manyChannel names: a few kilobytes of names beside the event.
const manyBatch = 1000

// publishMany queues on pipe each event for users on manyChannel, manyBatch users a message; every hub hands it
// to the streams it holds of the users named (Hub.deliverMany). It takes the place of a PUBLISH a member and an
// event on the members' own channels, which for a big call was most of the commands of its events, each
// carrying the whole event, and on a Redis Cluster each went to every node.
func (s *Store) publishMany(ctx context.Context, pipe redis.Pipeliner, users []string, bodies [][]byte) {
	for _, b := range bodies {
		for batch := range slices.Chunk(users, manyBatch) {
			msg, err := json.Marshal(manyMessage{Users: batch, Event: b})
			if err != nil {
				s.log.Error("event for many members not encoded", "err", err)
				continue
			}
			pipe.Publish(ctx, manyChannel, msg)
		}
	}
}

// replayBatch is how many of a call's members one replay script call serves: all of them on a single Redis,
// where their streams share the node, when they are few (replayCallMax); else one, the only stream sure to
// share a Cluster slot with itself. A big call's events go one call a member, since calls that each serve
// many members, run back to back, were seen to hold up the rings sent while they ran (BENCHMARKS.md).
func (s *Store) replayBatch(members int) int {
	if _, single := s.rdb.(*redis.Client); single && members <= replayCallMax {
		return max(members, 1)
	}
	return 1
}

func memberUserIDs(ms []Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	return ids
}

// replayTo queues the replay script for r on pipe by its hash alone: its text is most of the command, and
// Redis keeps it once loaded (replayAgain loads it when Redis has lost it).
// minID is the oldest stream id the publish keeps (the replay window back from its now).
func (s *Store) replayTo(ctx context.Context, pipe redis.Pipeliner, minID string, r replayed) *redis.Cmd {
	keys := make([]string, 0, 2*len(r.users))
	args := make([]any, 0, 3+len(r.bodies)+len(r.users))
	args = append(args, minID, s.replay.Milliseconds(), len(r.bodies))
	for _, b := range r.bodies {
		args = append(args, b)
	}
	for _, u := range r.users {
		keys = append(keys, replayKey(u), presenceKey(u))
		args = append(args, EventChannel(u))
	}
	return streamPublishScript.EvalSha(ctx, pipe, keys, args...)
}

// replayAgain sends again, once the script is loaded, the replays that failed because Redis did not have the
// script (its first use, a restart, SCRIPT FLUSH): a pipeline cannot fall back on NOSCRIPT by itself. It
// answers the error of the publish as it then stands.
func (s *Store) replayAgain(ctx context.Context, minID string, replays []replayed, err error) error {
	var again []replayed
	for _, r := range replays {
		if e := r.cmd.Err(); e != nil && redis.HasErrorPrefix(e, "NOSCRIPT") {
			again = append(again, r)
		}
	}
	if len(again) == 0 {
		return err
	}
	if lerr := streamPublishScript.Load(ctx, s.rdb).Err(); lerr != nil {
		return fmt.Errorf("load the replay script: %w", lerr)
	}
	pipe := s.rdb.Pipeline()
	for _, r := range again {
		s.replayTo(ctx, pipe, minID, r)
	}
	_, err = pipe.Exec(ctx)
	return err
}

// outboxSeqs is the outbox fields of the events a script wrote.
func outboxSeqs(evs []evt) []string {
	var seqs []string
	for _, e := range evs {
		if e.seq != 0 {
			seqs = append(seqs, strconv.FormatInt(e.seq, 10))
		}
	}
	return seqs
}

// deliver enqueues the webhooks of the events the transition put in the outbox, then takes them out of it.
func (s *Store) deliver(ctx context.Context, cid string, evs []evt, bodies [][]byte) {
	seqs := outboxSeqs(evs)
	if len(seqs) == 0 {
		return
	}
	var tasks []queue.WebhookTask
	for i, e := range evs {
		if e.seq != 0 && bodies[i] != nil {
			tasks = append(tasks, s.webhookTasks(cid, e.seq, e.at.UnixMilli(), bodies[i])...)
		}
	}
	if err := s.queue.EnqueueWebhooks(ctx, tasks); err != nil {
		s.log.Error("webhooks not enqueued; the outbox sweeper will", "cid", cid, "err", err)
		return
	}
	if err := s.rdb.HDel(ctx, outboxKey(cid), seqs...).Err(); err != nil {
		s.log.Warn("outbox not cleared; the sweeper will enqueue again, which is a no-op", "cid", cid, "err", err)
	}
}

// webhookTasks is one event's delivery to each receiver URL.
func (s *Store) webhookTasks(cid string, seq, atMs int64, body []byte) []queue.WebhookTask {
	tasks := make([]queue.WebhookTask, len(s.webhooks))
	for i, u := range s.webhooks {
		tasks[i] = queue.WebhookTask{URL: u, ID: queue.WebhookID(cid, seq, atMs, u), Body: body}
	}
	return tasks
}

// notifyWebhooks enqueues the webhooks of a notification, which no transition script records: it is sent
// before the notify request is answered, and a failure fails the request.
func (s *Store) notifyWebhooks(ctx context.Context, st State, who, notifyID string) error {
	if len(s.webhooks) == 0 {
		return nil
	}
	call, err := json.Marshal(st.Call)
	if err != nil {
		return fmt.Errorf("notify %s: encode call: %w", st.Call.CID, err)
	}
	now := s.now().UTC()
	b, err := json.Marshal(eventWire{Type: queue.EventNotification, CallCID: st.Call.CID, Call: call, User: UserRef{ID: who}, CreatedAt: now})
	if err != nil {
		return fmt.Errorf("notify %s: encode event: %w", st.Call.CID, err)
	}
	tasks := make([]queue.WebhookTask, len(s.webhooks))
	for i, u := range s.webhooks {
		tasks[i] = queue.WebhookTask{URL: u, ID: queue.WebhookID(st.Call.CID+":notify:"+notifyID, 0, now.UnixMilli(), u), Body: b}
	}
	if err := s.queue.EnqueueWebhooks(ctx, tasks); err != nil {
		return fmt.Errorf("notify %s: webhooks: %w", st.Call.CID, err)
	}
	return nil
}
