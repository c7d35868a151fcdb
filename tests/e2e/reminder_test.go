package e2e

// Reminders before a scheduled call (API.md, "Reminders"): RINGER_REMINDER_LEAD before starts_at, one
// call.reminder push to every member but the creator who has not joined; an ended call reminds nobody; a
// moved starts_at moves the reminder.

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/harness"
)

const rulesReminder = "call.reminder"

// reminderEnv runs ringer with a 5 s reminder lead.
func reminderEnv(t *testing.T) *harness.Env {
	return harness.Start(t, harness.Options{Env: []string{"RINGER_REMINDER_LEAD=5s"}})
}

// reminderCreate creates call default:id as alice, starting at starts, with members.
func reminderCreate(t *testing.T, e *harness.Env, id string, starts time.Time, members ...string) {
	t.Helper()
	e.MustCall(201, "POST", rulesPath(id), e.Token("alice"), map[string]any{"data": map[string]any{
		"members": rulesMembers(members...), "custom": map[string]any{"display_name": "Standup"},
		"starts_at": starts.Format(time.RFC3339Nano),
	}})
}

// reminderBob runs ringer with a 5 s reminder lead and creates call default:id of alice and bob (an Android
// phone), starting 8 s from now, which it returns.
func reminderBob(t *testing.T, id string) (*harness.Env, time.Time) {
	t.Helper()
	e := reminderEnv(t)
	e.Android("bob")
	starts := time.Now().Add(8 * time.Second).Truncate(time.Millisecond)
	reminderCreate(t, e, id, starts, "bob")
	return e, starts
}

// reminderRan waits until the reminder task of call default:id for starts has run (and so dropped or
// enqueued its notification), then until the queues are quiet: every push it caused has been attempted.
func reminderRan(t *testing.T, e *harness.Env, id string, starts time.Time) {
	t.Helper()
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	taskID := queue.ReminderTaskID("default:"+id, starts.UnixMilli())
	e.Eventually(30*time.Second, "reminder task "+taskID+" to complete", func() bool {
		info, err := in.GetTaskInfo(queue.QueueNotify, taskID)
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	e.Quiet()
}

func TestAScheduledCallRemindsEveryMemberButTheCreatorWhoHasNotJoined(t *testing.T) {
	t.Parallel()
	e := reminderEnv(t)
	e.Android("alice", "bob")
	e.Device("carol", harness.APNsToken("carol-iphone"), "apn", false)
	e.Device("carol", harness.APNsToken("carol-voip"), "apn", true)
	e.Android("dave")
	created := time.Now()
	starts := created.Add(8 * time.Second).Truncate(time.Millisecond)
	reminderCreate(t, e, "rem1", starts, "bob", "carol", "dave")
	e.MustCall(200, "POST", rulesPath("rem1", "join"), e.Token("dave"), nil) // dave is there already

	fcm := rulesFCM(t, e, "bob-android", rulesReminder)[0]
	if at := time.Since(created); at >= 8*time.Second {
		t.Errorf("bob's reminder came %s after the create, not before starts_at (8 s)", at)
	}
	shapesFCMAlert(t, "bob's reminder", fcm)
	want := map[string]string{
		"sender": "ringer", "type": rulesReminder, "call_cid": "default:rem1", "call_type": "default", "call_id": "rem1",
		"call_display_name": "Standup", "created_by_id": "alice", "receiver_id": "bob", "ring_id": "", "video": "false",
	}
	rulesFields(t, "bob's reminder", fcm.Data, want)
	if fcm.Notification.Title != "Standup starts soon" {
		t.Errorf("bob's reminder title %q, want the template's", fcm.Notification.Title)
	}
	apns := rulesAPNs(t, e, "carol-iphone", rulesReminder)[0]
	shapesAPNsAlert(t, "carol's reminder", apns)
	want["receiver_id"] = "carol"
	rulesFields(t, "carol's reminder", apns.Data(), want)

	reminderRan(t, e, "rem1", starts)
	rulesAPNs(t, e, "carol-voip") // a VoIP push must show a call: never a reminder
	rulesFCM(t, e, "alice-android")
	rulesFCM(t, e, "dave-android")
	rulesFCM(t, e, "bob-android", rulesReminder) // once
}

func TestAnEndedCallRemindsNobody(t *testing.T) {
	t.Parallel()
	e, starts := reminderBob(t, "rem2")
	e.MustCall(200, "POST", rulesPath("rem2", "mark_ended"), e.Token("alice"), nil)

	reminderRan(t, e, "rem2", starts)
	rulesFCM(t, e, "bob-android")
}

func TestAMovedStartsAtMovesTheReminder(t *testing.T) {
	t.Parallel()
	e, first := reminderBob(t, "rem3")
	moved := first.Add(6 * time.Second)
	e.MustCall(200, "PATCH", rulesPath("rem3"), e.Token("alice"), map[string]any{"starts_at": moved.Format(time.RFC3339Nano)})
	// The same move again (a retried PATCH) schedules nothing more.
	e.MustCall(200, "PATCH", rulesPath("rem3"), e.Token("alice"), map[string]any{"starts_at": moved.Format(time.RFC3339Nano)})

	// The first starts_at's reminder came due and found the call moved.
	reminderRan(t, e, "rem3", first)
	rulesFCM(t, e, "bob-android")
	// The moved one comes, once.
	rulesFCM(t, e, "bob-android", rulesReminder)
	if now := time.Now(); now.Before(moved.Add(-6*time.Second)) || !now.Before(moved) {
		t.Errorf("the moved reminder came %s before the moved starts_at, want about 5 s", moved.Sub(now))
	}
	reminderRan(t, e, "rem3", moved)
	rulesFCM(t, e, "bob-android", rulesReminder)
}

// The reminder lives in Redis (Asynq's scheduled set), not in a process: a worker started after the call was
// scheduled, by an API process with no worker beside it, sends it.
func TestAReminderScheduledWhileNoWorkerRunsIsSentByAWorkerStartedLater(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_REMINDER_LEAD=5s"}})
	e.Android("bob")
	starts := time.Now().Add(8 * time.Second).Truncate(time.Millisecond)
	reminderCreate(t, e, "rem4", starts, "bob")
	e.StartProcess("worker", "RINGER_REMINDER_LEAD=5s")
	rulesFCM(t, e, "bob-android", rulesReminder)
}
