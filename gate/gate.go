// Package gate owns the ring gate: the Redis state a worker checks before every ring push (ARCHITECTURE.md,
// invariant 4). Per call it is the ring hash and the ringing set (who is still rung, until when); per ring
// and member, the lease a worker holds while it sends that member's ring push, the release signal waiters
// block on, the delivered set (members whose push is done) and the ledgers of the devices each push reached.
//
// Every key is built in keys.go and every script is a named var below whose comment lists its KEYS, ARGV and
// each answer; the Go side turns answers into typed results. The calls package moves members in and out of
// the ringing set inside its own transition scripts, atomically with the call's state, on the keys built
// here; a call service that keeps its own call state does so through Open and Close (queue.Client.Ring and
// StopRinging).
//
// The package imports nothing of ringer's, so queue, which outside call services import, can use it.
package gate

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// LeaseTTL is how long a ring push's lease outlives its worker: a dead worker's member is rescued, and its
	// stop let through, that long after it died. Live workers renew it every LeaseTTL/4 (KeepAlive).
	LeaseTTL = 2 * time.Second
	// AnswerWait bounds how long a transition's answer (calls) waits for ring pushes already in flight to
	// its members, so that once the client has the answer no ring push reaches their phones any more.
	AnswerWait = 250 * time.Millisecond
	// StopWait bounds how long a stop push's handler waits for a ring push in flight to the same member, so
	// that it sees every device the ring reached; past it the stop goes back to Asynq and runs again.
	StopWait = 2 * time.Second

	// leaseWaiting is a lease's value while the push waits for a retry: no live worker sends it, but the
	// watchdog must not take it for a dead one.
	leaseWaiting = "wait"
	// recheck bounds how long a waiter trusts the release signal alone: a lease that lapsed because its
	// worker died signals nothing.
	recheck = 50 * time.Millisecond
	// releasedKeep is how long a release signal is kept: past every wait for it.
	releasedKeep = 10 * time.Second
)

// Gate reads and changes the ring gate on one Redis (or Redis Cluster).
type Gate struct{ rdb redis.UniversalClient }

// New returns the gate on rdb.
func New(rdb redis.UniversalClient) *Gate { return &Gate{rdb: rdb} }

// Member is one member of a ring and when its ring ends.
type Member struct {
	ID     string
	EndsAt time.Time
}

// ErrRingLive is Open's answer when another ring of the call is still live.
var ErrRingLive = errors.New("another ring of this call is live")

// openScript puts members into the ring gate of a ring, for callers that keep no call state of their own.
//
// KEYS[1] -> ringer:{<cid>}:ring     ring hash
// KEYS[2] -> ringer:{<cid>}:ringing  members still ringing, scored by their ring's end (unix ms)
// ARGV[1] -> ring id
// ARGV[2] -> ring end, unix ms
// ARGV[3] -> how long the gate is kept past the ring's end, ms
// ARGV[4..] -> member, end (unix ms) pairs
//
// Answers 1 when the gate is open for the members, 0 when another ring is live on the call. The gate lapses
// ARGV[3] after the last member's ring ends: a call service's calls are its own to keep, but their gates are
// ringer's.
var openScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'id')
if cur and cur ~= ARGV[1] and redis.call('ZCARD', KEYS[2]) > 0 then
  return 0
end
if cur ~= ARGV[1] then
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'ends_at', ARGV[2], 'live', '1')
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
for i = 4, #ARGV, 2 do
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[i+1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], 'at:' .. ARGV[i], ms)
  end
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
local lapse = math.max(tonumber(ARGV[2]), tonumber(last or 0)) + tonumber(ARGV[3])
redis.call('PEXPIREAT', KEYS[1], lapse)
redis.call('PEXPIREAT', KEYS[2], lapse)
return 1
`)

// Open opens the gate of ringID for members, kept keep past the last member's ring end; ErrRingLive when
// another ring of the call is live. Opening it twice for the same ring adds nobody twice.
func (g *Gate) Open(ctx context.Context, cid, ringID string, keep time.Duration, members []Member) error {
	if len(members) == 0 {
		return nil
	}
	end := members[0].EndsAt
	args := []any{ringID, 0, keep.Milliseconds()}
	for _, m := range members {
		if m.EndsAt.After(end) {
			end = m.EndsAt
		}
		args = append(args, m.ID, m.EndsAt.UnixMilli())
	}
	args[1] = end.UnixMilli()
	opened, err := openScript.Run(ctx, g.rdb, []string{RingKey(cid), RingingKey(cid)}, args...).Int()
	if err != nil {
		return fmt.Errorf("open gate of %s: %w", cid, err)
	}
	if opened == 0 {
		return ErrRingLive
	}
	return nil
}

// closeScript takes members out of the ring gate of a ring.
//
// KEYS[1] -> ringer:{<cid>}:ring
// KEYS[2] -> ringer:{<cid>}:ringing
// ARGV[1] -> ring id
// ARGV[2..] -> members
//
// Answers the number of members taken out (0 when the ring is not the call's current one).
var closeScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return 0
end
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZREM', KEYS[2], ARGV[i])
end
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'live', '0')
end
return n
`)

// Close takes members out of the gate of ringID and answers how many were in it.
func (g *Gate) Close(ctx context.Context, cid, ringID string, members []string) (int, error) {
	if len(members) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(members)+1)
	args = append(args, ringID)
	for _, m := range members {
		args = append(args, m)
	}
	n, err := closeScript.Run(ctx, g.rdb, []string{RingKey(cid), RingingKey(cid)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("close gate of %s: %w", cid, err)
	}
	return n, nil
}

// Admission is the gate's answer to a ring push about to leave.
type Admission int

const (
	// Over: the member's ring is over (stopped, timed out, or another ring is current): drop the push.
	Over Admission = iota
	// Admitted: the push may go; the caller holds the lease.
	Admitted
	// Held: another live worker holds the lease: this task is a duplicate.
	Held
	// Delivered: the push is done already: this task is a duplicate.
	Delivered
)

func (a Admission) String() string {
	switch a {
	case Over:
		return "over"
	case Admitted:
		return "admitted"
	case Held:
		return "held"
	case Delivered:
		return "delivered"
	}
	return "admission(" + strconv.Itoa(int(a)) + ")"
}

// admitScript admits a ring push: the member must still be in the gate of this ring with time left and its
// push not yet delivered; then the caller takes the member's lease, unless another live worker holds it, and
// the release signal of an earlier holder is taken down. With the lease it answers the push's ledger, which
// only the lease's holder adds to: the sender needs it before its first push, and reading it here saves that
// round trip on the way to the member's phone.
//
// KEYS[1] -> ringer:{<cid>}:ring                          current ring hash (field id)
// KEYS[2] -> ringer:{<cid>}:ringing                       members still ringing, scored by their end (unix ms)
// KEYS[3] -> ringer:{<cid>}:lease:<ring_id>:<member>      the member's lease
// KEYS[4] -> ringer:{<cid>}:delivered:<ring_id>           members whose ring push is done
// KEYS[5] -> ringer:{<cid>}:released:<ring_id>:<member>   the lease's release signal
// KEYS[6] -> ringer:{<cid>}:sent:<push id>                 the push's ledger (LedgerKey)
// ARGV[1] -> ring id
// ARGV[2] -> member
// ARGV[3] -> now, unix ms
// ARGV[4] -> lease, ms
// ARGV[5] -> this worker's lease owner id
//
// Answers {1, ledger's tokens} when the push may go (lease taken: Admitted), {0} when the ring is over for the
// member (Over), {2} when another live worker holds the lease (Held), {3} when the push was delivered already
// (Delivered).
var admitScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return {0} end
local ends = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not ends or tonumber(ends) <= tonumber(ARGV[3]) then return {0} end
if redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 1 then return {3} end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= '` + leaseWaiting + `' and holder ~= ARGV[5] then return {2} end
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[4])
redis.call('DEL', KEYS[5])
return {1, redis.call('SMEMBERS', KEYS[6])}
`)

// admissions maps admitScript's answers.
var admissions = map[int]Admission{0: Over, 1: Admitted, 2: Held, 3: Delivered}

// Lease is a worker's hold on one member's ring push (Admit).
type Lease struct {
	g                          *Gate
	cid, ringID, member, owner string
	// Reached is the push's ledger as the lease was taken: the device tokens an earlier holder's pushes
	// reached. It stays current while the lease is held, since only the holder adds to the ledger.
	Reached []string
}

// Admit asks whether member's ring push of ringID, whose ledger is pushID's (LedgerKey), may leave now; when
// Admitted, the caller holds the lease, with the ledger's tokens in Lease.Reached, and must Release it.
func (g *Gate) Admit(ctx context.Context, cid, ringID, member, pushID string, now time.Time) (Admission, *Lease, error) {
	l := &Lease{g: g, cid: cid, ringID: ringID, member: member, owner: newOwnerID()}
	res, err := admitScript.Run(ctx, g.rdb, []string{RingKey(cid), RingingKey(cid), l.key(), DeliveredKey(cid, ringID),
		ReleasedKey(cid, ringID, member), LedgerKey(cid, pushID)}, ringID, member, now.UnixMilli(), LeaseTTL.Milliseconds(), l.owner).Slice()
	if err != nil {
		return Over, nil, fmt.Errorf("admit ring %s to %s: %w", ringID, member, err)
	}
	var a Admission
	ok := len(res) > 0
	if ok {
		n, _ := res[0].(int64)
		a, ok = admissions[int(n)]
	}
	if !ok {
		return Over, nil, fmt.Errorf("admit ring %s to %s: unknown answer %v", ringID, member, res)
	}
	if a != Admitted {
		return a, nil, nil
	}
	if len(res) > 1 {
		tokens, _ := res[1].([]any)
		for _, t := range tokens {
			if tok, ok := t.(string); ok {
				l.Reached = append(l.Reached, tok)
			}
		}
	}
	return a, l, nil
}

func (l *Lease) key() string { return LeaseKey(l.cid, l.ringID, l.member) }

// renewScript extends a lease its owner still holds.
//
// KEYS[1] -> ringer:{<cid>}:lease:<ring_id>:<member>
// ARGV[1] -> owner id
// ARGV[2] -> lease, ms
//
// Answers 1 when renewed, 0 when the lease is no longer the owner's.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// Renew extends the lease by LeaseTTL; false when it is no longer the caller's.
func (l *Lease) Renew(ctx context.Context) (bool, error) {
	n, err := renewScript.Run(ctx, l.g.rdb, []string{l.key()}, l.owner, LeaseTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease of ring %s to %s: %w", l.ringID, l.member, err)
	}
	return n == 1, nil
}

// KeepAlive renews the lease every LeaseTTL/4 until the returned stop is called, so that a stop waits for
// the worker and the watchdog can tell a live worker from a dead one.
func (l *Lease) KeepAlive(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(LeaseTTL / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = l.Renew(context.WithoutCancel(ctx))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// releaseScript ends a ring push's lease: done marks the member delivered; otherwise the lease becomes
// leaseWaiting for the retry's delay, so the watchdog does not take a waiting retry for a dead worker. Either
// way the release signal is raised for whoever waits on the lease.
//
// KEYS[1] -> ringer:{<cid>}:lease:<ring_id>:<member>
// KEYS[2] -> ringer:{<cid>}:delivered:<ring_id>
// KEYS[3] -> ringer:{<cid>}:released:<ring_id>:<member>
// ARGV[1] -> owner id
// ARGV[2] -> member
// ARGV[3] -> "done" or "wait"
// ARGV[4] -> the retry's delay, ms
// ARGV[5] -> delivered set's time to live, seconds
// ARGV[6] -> release signal's time to live, ms
//
// Answers 1 when released, 0 when the lease was no longer the owner's (it lapsed; nothing else changes but
// the delivered set).
var releaseScript = redis.NewScript(`
if ARGV[3] == 'done' then
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == 'done' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], '` + leaseWaiting + `', 'PX', ARGV[4])
end
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], '1')
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return 1
`)

// Release lets the lease go. done marks the member's push delivered (kept keepDelivered); otherwise its retry
// waits retryWait. It runs on a context of its own: the task's may have reached the ring's deadline, and the
// lease must still be let go.
func (l *Lease) Release(ctx context.Context, done bool, retryWait, keepDelivered time.Duration) error {
	mode := "done"
	if !done {
		mode = leaseWaiting
	}
	err := releaseScript.Run(context.WithoutCancel(ctx), l.g.rdb,
		[]string{l.key(), DeliveredKey(l.cid, l.ringID), ReleasedKey(l.cid, l.ringID, l.member)},
		l.owner, l.member, mode, max(retryWait.Milliseconds(), 1), int(keepDelivered.Seconds()), releasedKeep.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("release lease of ring %s to %s: %w", l.ringID, l.member, err)
	}
	return nil
}

// WaitIdle returns true once no live worker sends a ring push of ringID to any of members, or false when
// some still does after within. It blocks on the busy lease's release signal, and reads the leases again at
// least every recheck, since a lease whose worker died lapses without a signal.
func (g *Gate) WaitIdle(ctx context.Context, cid, ringID string, members []string, within time.Duration) (bool, error) {
	idle, _, err := g.waitIdle(ctx, cid, ringID, members, within, "")
	return idle, err
}

// WaitIdleThenRead is WaitIdle for one member that also answers, once the member is idle, the ledger of
// pushID (LedgerKey): the device tokens its ring push reached, read in one transaction with the lease that
// shows no push in flight, so a stop needs no round trip of its own for it. The ledger is final by then: a
// stop comes after its member's gate closed, so no ring push to the member starts again (Admit).
func (g *Gate) WaitIdleThenRead(ctx context.Context, cid, ringID, member string, within time.Duration, pushID string) (bool, []string, error) {
	return g.waitIdle(ctx, cid, ringID, []string{member}, within, LedgerKey(cid, pushID))
}

// waitIdle is WaitIdle that also reads the set at ledger (on cid's slot) with the leases, when ledger is not
// empty, and answers it once idle.
func (g *Gate) waitIdle(ctx context.Context, cid, ringID string, members []string, within time.Duration, ledger string) (bool, []string, error) {
	if len(members) == 0 || ringID == "" {
		if ledger == "" {
			return true, nil, nil
		}
		tokens, err := g.rdb.SMembers(ctx, ledger).Result()
		if err != nil {
			return false, nil, fmt.Errorf("ledger %s: %w", ledger, err)
		}
		return true, tokens, nil
	}
	keys := make([]string, len(members))
	for i, m := range members {
		keys[i] = LeaseKey(cid, ringID, m)
	}
	deadline := time.Now().Add(within)
	for {
		holders, tokens, err := g.leases(ctx, keys, ledger)
		if err != nil {
			return false, nil, fmt.Errorf("wait for ring %s: %w", ringID, err)
		}
		busy := -1
		for i, h := range holders {
			if v, _ := h.(string); v != "" && v != leaseWaiting {
				busy = i
				break
			}
		}
		if busy < 0 {
			return true, tokens, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil, nil
		}
		// BLMOVE of the list onto itself waits for the signal without taking it down: every waiter sees it.
		signal := ReleasedKey(cid, ringID, members[busy])
		block := strconv.FormatFloat(max(min(left, recheck), time.Millisecond).Seconds(), 'f', 3, 64)
		if err := g.rdb.Do(ctx, "BLMOVE", signal, signal, "RIGHT", "LEFT", block).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return false, nil, fmt.Errorf("wait for ring %s: release signal: %w", ringID, err)
		}
	}
}

// leases reads the lease keys' holders and, when ledger is not empty, the ledger's tokens in the same
// transaction (the keys share the call's slot).
func (g *Gate) leases(ctx context.Context, keys []string, ledger string) ([]any, []string, error) {
	if ledger == "" {
		holders, err := g.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("leases: %w", err)
		}
		return holders, nil, nil
	}
	var mget *redis.SliceCmd
	var tokens *redis.StringSliceCmd
	if _, err := g.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		mget = pipe.MGet(ctx, keys...)
		tokens = pipe.SMembers(ctx, ledger)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("leases and ledger %s: %w", ledger, err)
	}
	return mget.Val(), tokens.Val(), nil
}

// View is the gate of one ring as the watchdog sees it.
type View struct {
	// Current is false when ringID is no longer the call's ring, or nobody is rung any more.
	Current bool
	// Due is true when some member's ring time has passed (such members are not in Live).
	Due bool
	// Live are the members still rung with time left.
	Live []LiveMember
}

// LiveMember is one member still rung.
type LiveMember struct {
	Member
	// Delivered: the push is done. Leased: a live worker sends it, or a retry waits for it.
	Delivered, Leased bool
	// RungAt is when the member was put in the gate; zero when unknown.
	RungAt time.Time
}

// Inspect reads the gate of ringID at now: two round trips, the second only for live members.
func (g *Gate) Inspect(ctx context.Context, cid, ringID string, now time.Time) (View, error) {
	pipe := g.rdb.Pipeline()
	idCmd := pipe.HGet(ctx, RingKey(cid), "id")
	ringingCmd := pipe.ZRangeWithScores(ctx, RingingKey(cid), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return View{}, fmt.Errorf("inspect ring %s: %w", ringID, err)
	}
	if idCmd.Val() != ringID || len(ringingCmd.Val()) == 0 {
		return View{}, nil
	}
	v := View{Current: true}
	for _, z := range ringingCmd.Val() {
		m, _ := z.Member.(string)
		ends := time.UnixMilli(int64(z.Score))
		if !ends.After(now) {
			v.Due = true
			continue
		}
		v.Live = append(v.Live, LiveMember{Member: Member{ID: m, EndsAt: ends}})
	}
	if len(v.Live) == 0 {
		return v, nil
	}
	pipe = g.rdb.Pipeline()
	names := make([]any, len(v.Live))
	atFields := make([]string, len(v.Live))
	for i, m := range v.Live {
		names[i] = m.ID
		atFields[i] = "at:" + m.ID
	}
	deliveredCmd := pipe.SMIsMember(ctx, DeliveredKey(cid, ringID), names...)
	leaseCmds := make([]*redis.StringCmd, len(v.Live))
	for i, m := range v.Live {
		// One GET each: on a cluster the leases share the call's slot anyway.
		leaseCmds[i] = pipe.Get(ctx, LeaseKey(cid, ringID, m.ID))
	}
	atCmd := pipe.HMGet(ctx, RingKey(cid), atFields...)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return View{}, fmt.Errorf("inspect ring %s: %w", ringID, err)
	}
	delivered, at := deliveredCmd.Val(), atCmd.Val()
	for i := range v.Live {
		v.Live[i].Delivered = i < len(delivered) && delivered[i]
		v.Live[i].Leased = leaseCmds[i].Val() != ""
		if i < len(at) {
			s, _ := at[i].(string)
			if ms, _ := strconv.ParseInt(s, 10, 64); ms != 0 {
				v.Live[i].RungAt = time.UnixMilli(ms)
			}
		}
	}
	return v, nil
}

func newOwnerID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
