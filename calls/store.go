// Package calls owns the call model and its state machine: who is rung, who accepted, rejected or was
// missed, when the ring and the call end. Every transition is one Lua script on the call's keys
// (ARCHITECTURE.md, invariant 1); its outcome says which pushes and events it owes, and the Store enqueues
// and publishes them.
//
// A transition reads as a state machine: its method (transitions.go) checks who may act (access.go), runs its
// script (scripts.go) through runKeys, the one path that decodes the answer into a typed status and outcome
// (status.go, answer.go), applies every effect the outcome owes (effects.go) and maps the status to an error.
// A big call's members are staged and read in chunks (big.go); each user's call list is index.go's.
package calls

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/queue"
)

// Store keeps calls in Redis and drives their rings through the queue.
type Store struct {
	rdb   redis.UniversalClient
	queue *queue.Client
	gate  *gate.Gate
	log   *slog.Logger
	now   func() time.Time

	metrics *Metrics // ring outcomes; nil counts nothing (SetMetrics)

	admission         RingAdmitter  // nil admits every ring (SetRingAdmission)
	limiter           RingLimiter   // nil limits nobody (SetRingLimiter)
	retention, maxAge time.Duration // how long calls are kept (SetRetention)
	webhooks          []string      // receiver URLs (SetWebhooks); none: events go to SSE only
	replay            time.Duration // how long each user's events are kept for a reconnect (SetEventReplay); 0: not kept
	reminderLead      time.Duration // how long before starts_at members are reminded (SetReminderLead)
}

// DefaultReminderLead is how long before a scheduled call's starts_at its members are reminded.
const DefaultReminderLead = 5 * time.Minute

// SetReminderLead reminds the members of a scheduled call d before its starts_at (API.md, "Reminders").
func (s *Store) SetReminderLead(d time.Duration) { s.reminderLead = d }

// SetWebhooks makes every event also go to each of urls (API.md, "Webhooks"), through the outbox.
func (s *Store) SetWebhooks(urls []string) { s.webhooks = slices.Clone(urls) }

// SetEventReplay keeps each user's events for d in a stream of their own, for a client that reconnects with
// Last-Event-ID (Hub.Replay).
func (s *Store) SetEventReplay(d time.Duration) { s.replay = d }

// New returns a Store on rdb that enqueues pushes through q.
func New(rdb redis.UniversalClient, q *queue.Client, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{rdb: rdb, queue: q, gate: gate.New(rdb), log: log, now: time.Now, retention: DefaultRetention, maxAge: DefaultMaxAge,
		reminderLead: DefaultReminderLead}
}

// CID is "{type}:{id}".
func CID(typ, id string) string { return typ + ":" + id }

func callKeys(cid string) []string {
	return []string{
		gate.CallKey(cid, "call"), gate.CallKey(cid, "members"), gate.RingKey(cid), gate.RingingKey(cid),
		gate.CallKey(cid, "rung"), gate.CallKey(cid, "accepted"), gate.CallKey(cid, "rejected"),
		gate.CallKey(cid, "missed"), gate.CallKey(cid, "joined"), outboxKey(cid),
	}
}

// outboxKey is the call's outbox (KEYS[10] of every transition, scripts.go).
func outboxKey(cid string) string { return gate.CallKey(cid, "outbox") }

// outboxTTL bounds how long an event nobody drained stays in an outbox: the sweeper drains it within seconds
// when webhooks are on; with them off, only a process killed mid-transition leaves one behind.
const outboxTTL = 24 * time.Hour

// EventChannel is the pub/sub channel of one user's events.
func EventChannel(user string) string { return "ringer:events:" + user }

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
