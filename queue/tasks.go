// Package queue names ringer's Asynq tasks, carries their payloads and enqueues them. An outside call service
// imports it to ring and notify its users through ringer's workers without going through ringer's HTTP API.
//
// Rings and stops travel on their own queue, served by their own worker concurrency, so a ring never waits
// behind a notification backlog (ARCHITECTURE.md, invariant 6).
package queue

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Queue names. Watchdog ticks have a queue of their own, served by its own server in the worker: a ring push
// or stop never waits behind them, and they come due in bursts at each second (Asynq keeps scheduled tasks
// by whole seconds).
const (
	QueueRing   = "ring"
	QueueWatch  = "watch"
	QueueNotify = "notify"
)

// Task type names.
const (
	TypeRing    = "ring:push"
	TypeStop    = "ring:stop"
	TypeTimeout = "ring:timeout"
	TypeNotify  = "notify:push"
	TypeWatch   = "ring:watch"
	// TypeReminder reminds the members of a scheduled call before its starts_at.
	TypeReminder = "call:reminder"
)

// Push types (the push "type" field) a task may carry.
const (
	EventRing         = "call.ring"
	EventNotification = "call.notification"
	EventMissed       = "call.missed"
	EventAccepted     = "call.accepted"
	EventRejected     = "call.rejected"
	EventEnded        = "call.ended"
	EventReminder     = "call.reminder"
)

// CallInfo is what a push shows about its call. It travels inside each task so a worker renders a push
// without reading the call back.
type CallInfo struct {
	CID           string         `json:"cid"`
	Type          string         `json:"type"`
	ID            string         `json:"id"`
	DisplayName   string         `json:"display_name,omitempty"`
	CreatedByID   string         `json:"created_by_id"`
	CreatedByName string         `json:"created_by_name,omitempty"`
	Video         bool           `json:"video,omitempty"`
	Custom        map[string]any `json:"custom,omitempty"`
}

// RingTask rings every device of one member.
type RingTask struct {
	Call   CallInfo `json:"call"`
	RingID string   `json:"ring_id"`
	Member string   `json:"member"`
	// EndsAt is the end of this member's ring, unix ms: the push expires then and the task is dropped after.
	EndsAt int64 `json:"ends_at"`
	// EnqueuedAt is when the ring was enqueued, unix ms: the start of the ring latency the worker measures.
	EnqueuedAt int64 `json:"enqueued_at,omitempty"`
}

// StopTask tells every device of a member that got the ring to stop ringing. Event is the push type:
// call.accepted, call.rejected or call.ended as a silent stop; call.missed as a missed-call alert.
type StopTask struct {
	Call   CallInfo `json:"call"`
	RingID string   `json:"ring_id"`
	Member string   `json:"member"`
	Event  string   `json:"event"`
}

// TimeoutTask ends what is due of a ring at At (unix ms): members whose own timeout passed, or the whole ring.
type TimeoutTask struct {
	CID    string `json:"cid"`
	RingID string `json:"ring_id"`
	At     int64  `json:"at"`
}

// WatchTask is one tick of a ring's watchdog: it re-enqueues members whose ring push was lost with a dead
// worker, and settles timeouts a dead worker held, while the ring lasts.
type WatchTask struct {
	Call   CallInfo `json:"call"`
	RingID string   `json:"ring_id"`
	Tick   int64    `json:"tick"`
	// First marks the tick the ring's enqueue scheduled: it comes while the ring's pushes are in flight.
	First bool `json:"first,omitempty"`
}

// NotifyTask sends one regular push (call.notification) to every device of each member of one batch. A
// notification fans out to thousands; a task per batch rather than per member keeps the fan-out above what
// Asynq's per-task cost allows (BENCHMARKS.md).
type NotifyTask struct {
	Call     CallInfo `json:"call"`
	NotifyID string   `json:"notify_id"`
	Batch    int      `json:"batch"`
	Members  []string `json:"members"`
	Event    string   `json:"event"`
}

// ReminderTask reminds the members of call CID who have not joined that it starts at StartsAt (unix ms). The
// handler reads the call again: a call that ended, or whose starts_at moved, reminds nobody through this task.
type ReminderTask struct {
	CID      string `json:"cid"`
	StartsAt int64  `json:"starts_at"`
}

// ReminderTaskID names the reminder of one call for one starts_at: scheduling it again is a no-op, and a
// starts_at moved gets a task of its own while the old one finds the call changed.
func ReminderTaskID(cid string, startsAt int64) string {
	return fmt.Sprintf("reminder:%s:%d", cid, startsAt)
}

// ReminderNotifyID is the notification a reminder sends, so that a reminder task run twice enqueues the same
// notification tasks, whose ledgers keep each device to one push.
func ReminderNotifyID(cid string, startsAt int64) string {
	return fmt.Sprintf("reminder:%s:%d", cid, startsAt)
}

// Deterministic task ids (ARCHITECTURE.md, invariant 3): enqueueing the same work twice is a no-op.
func RingTaskID(ringID, member string) string { return "ring:" + ringID + ":" + member }
func StopTaskID(ringID, member string) string { return "stop:" + ringID + ":" + member }
func NotifyTaskID(notifyID string, batch int) string {
	return fmt.Sprintf("notify:%s:%d", notifyID, batch)
}

// WatchTaskID names one watchdog tick; ticks are numbered by time, so enqueueing a ring's watchdog twice in
// the same tick is a no-op.
func WatchTaskID(ringID string, tick int64) string { return fmt.Sprintf("watch:%s:%d", ringID, tick) }

// RescueTaskID names a ring task re-enqueued by the watchdog; bucket bounds rescues to one per bucket.
func RescueTaskID(ringID, member string, bucket int64) string {
	return fmt.Sprintf("ring:%s:%s:rescue:%d", ringID, member, bucket)
}

// TimeoutTaskID is `timeout:<ring_id>` for the ring's end and `timeout:<ring_id>:<at>` for an earlier
// per-member deadline (incoming_call_timeout_ms shorter than auto_cancel_timeout_ms).
func TimeoutTaskID(ringID string, at int64, ringEnd bool) string {
	if ringEnd {
		return "timeout:" + ringID
	}
	return fmt.Sprintf("timeout:%s:%d", ringID, at)
}

// Decode reads a task's payload into v, naming the task type on failure.
func Decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("decode %s payload: %w: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}

// UnixMs and FromUnixMs convert the millisecond times tasks carry.
func UnixMs(t time.Time) int64      { return t.UnixMilli() }
func FromUnixMs(ms int64) time.Time { return time.UnixMilli(ms) }
