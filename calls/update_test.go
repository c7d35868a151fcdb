package calls_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/queue"
)

func TestAMovedStartsAtSchedulesItsOwnReminderAndTheOldOneIsNoLongerDue(t *testing.T) {
	s, in := newStore(t)
	ctx := context.Background()
	first := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if _, _, err := s.GetOrCreate(ctx, alice, "default", "sched", calls.CreateRequest{
		Members: []calls.MemberInput{{UserID: "bob"}, {UserID: "carol"}}, StartsAt: &first,
	}); err != nil {
		t.Fatal(err)
	}
	cid := "default:sched"
	if !pendingTaskIDs(t, in, queue.QueueNotify)[queue.ReminderTaskID(cid, first.UnixMilli())] {
		t.Fatalf("no reminder scheduled for the first starts_at")
	}
	moved := first.Add(time.Hour)
	if _, err := s.Update(ctx, alice, "default", "sched", calls.UpdateRequest{StartsAt: &moved}); err != nil {
		t.Fatal(err)
	}
	if !pendingTaskIDs(t, in, queue.QueueNotify)[queue.ReminderTaskID(cid, moved.UnixMilli())] {
		t.Fatalf("no reminder scheduled for the moved starts_at")
	}
	if _, _, due, err := s.Reminder(ctx, cid, first.UnixMilli()); err != nil || due {
		t.Errorf("the first starts_at's reminder: due %v, %v; want not due", due, err)
	}
	if _, err := s.Join(ctx, carol, "default", "sched"); err != nil {
		t.Fatal(err)
	}
	info, members, due, err := s.Reminder(ctx, cid, moved.UnixMilli())
	if err != nil || !due || !slices.Equal(members, []string{"bob"}) || info.CreatedByID != "alice" {
		t.Errorf("the moved reminder: %+v %v due %v, %v; want bob alone (not the creator, not carol who joined), from alice", info, members, due, err)
	}
}

func TestOnlyWhoMayEndACallUpdatesItAndNotOnceItEnded(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, _, err := s.GetOrCreate(ctx, alice, "default", "upd", calls.CreateRequest{Members: []calls.MemberInput{{UserID: "bob"}}}); err != nil {
		t.Fatal(err)
	}
	topic := calls.UpdateRequest{Custom: map[string]any{"topic": "q4"}}
	if _, err := s.Update(ctx, bob, "default", "upd", topic); !errors.Is(err, calls.ErrForbidden) {
		t.Errorf("update by a plain member: %v, want ErrForbidden", err)
	}
	st, err := s.Update(ctx, calls.Actor{Server: true}, "default", "upd", topic)
	if err != nil || st.Call.Custom["topic"] != "q4" {
		t.Fatalf("update by the backend: %v, custom %v", err, st.Call.Custom)
	}
	if _, err := s.MarkEnded(ctx, alice, "default", "upd"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, alice, "default", "upd", topic); !errors.Is(err, calls.ErrEnded) {
		t.Errorf("update of an ended call: %v, want ErrEnded", err)
	}
}
