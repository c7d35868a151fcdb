package calls_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/wire"
)

// race runs a and b at the same instant and returns their errors.
func race(a, b func() error) (errA, errB error) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); <-start; errA = a() }()
	go func() { defer wg.Done(); <-start; errB = b() }()
	close(start)
	wg.Wait()
	return errA, errB
}

const raceRounds = 20

func TestTwoCalleesAcceptingAtOnceJoinTheCallerOnce(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for i := 0; i < raceRounds; i++ {
		id := fmt.Sprintf("two-accepts-%d", i)
		ring(t, s, id, "bob", "carol")
		errA, errB := race(
			func() error { _, err := s.Accept(ctx, bob, "default", id); return err },
			func() error { _, err := s.Accept(ctx, carol, "default", id); return err },
		)
		if errA != nil || errB != nil {
			t.Fatalf("round %d: %v / %v", i, errA, errB)
		}
		st, err := s.Get(ctx, alice, "default", id, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Call.Session.Participants) != 1 || st.Call.Session.Participants[0].UserID != "alice" {
			t.Fatalf("round %d: participants %+v, want the caller once", i, st.Call.Session.Participants)
		}
	}
}

// Exactly one of two racing transitions wins; the state says which, and is one of the two outcomes.
func TestAcceptRacingCancelHasExactlyOneOutcome(t *testing.T) {
	s, in := newStore(t)
	ctx := context.Background()
	for i := 0; i < raceRounds; i++ {
		id := fmt.Sprintf("accept-cancel-%d", i)
		st0 := ring(t, s, id, "bob")
		errAccept, errCancel := race(
			func() error { _, err := s.Accept(ctx, bob, "default", id); return err },
			func() error { _, err := s.Leave(ctx, alice, "default", id); return err },
		)
		st, err := s.Get(ctx, alice, "default", id, false, false)
		if err != nil {
			t.Fatal(err)
		}
		_, accepted := st.Call.Session.AcceptedBy["bob"]
		_, missed := st.Call.Session.MissedBy["bob"]
		switch {
		case accepted && !missed:
			if errAccept != nil || st.Call.EndedAt != nil {
				t.Fatalf("round %d: accept won but err=%v ended=%v", i, errAccept, st.Call.EndedAt)
			}
		case missed && !accepted:
			if errCancel != nil || st.Call.EndedAt == nil || !errors.Is(errAccept, calls.ErrEnded) {
				t.Fatalf("round %d: cancel won but cancel err=%v accept err=%v ended=%v", i, errCancel, errAccept, st.Call.EndedAt)
			}
		default:
			t.Fatalf("round %d: accepted=%v missed=%v: not exactly one outcome", i, accepted, missed)
		}
		if st.Call.Ringing {
			t.Fatalf("round %d: still ringing", i)
		}
		// Either way bob's ring is stopped by exactly one stop task.
		if !pendingTaskIDs(t, in, queue.QueueRing)[queue.StopTaskID(st0.Call.RingID, "bob")] {
			t.Fatalf("round %d: no stop for bob", i)
		}
	}
}

// raceOnBobsRing rings bob on a fresh call raceRounds times, runs a and b on it at once, and hands check the
// call as it is after both, with their errors.
func raceOnBobsRing(t *testing.T, s *calls.Store, name string, a, b func(id string) error, check func(i int, st calls.State, errA, errB error)) {
	t.Helper()
	for i := 0; i < raceRounds; i++ {
		id := fmt.Sprintf("%s-%d", name, i)
		ring(t, s, id, "bob")
		errA, errB := race(func() error { return a(id) }, func() error { return b(id) })
		st, err := s.Get(context.Background(), alice, "default", id, false, false)
		if err != nil {
			t.Fatal(err)
		}
		check(i, st, errA, errB)
	}
}

func TestRejectRacingCancelEndsTheCallOnce(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	raceOnBobsRing(t, s, "reject-cancel",
		func(id string) error { _, err := s.Reject(ctx, bob, "default", id, wire.ReasonDecline); return err },
		func(id string) error { _, err := s.Reject(ctx, alice, "default", id, wire.ReasonCancel); return err },
		func(i int, st calls.State, errReject, errCancel error) {
			if errReject != nil && errCancel != nil {
				t.Fatalf("round %d: both failed: %v / %v", i, errReject, errCancel)
			}
			_, rejected := st.Call.Session.RejectedBy["bob"]
			_, missed := st.Call.Session.MissedBy["bob"]
			if rejected == missed || st.Call.EndedAt == nil {
				t.Fatalf("round %d: rejected=%v missed=%v ended=%v", i, rejected, missed, st.Call.EndedAt)
			}
		})
}

func TestMarkEndedRacingAcceptLeavesAConsistentCall(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	raceOnBobsRing(t, s, "end-accept",
		func(id string) error { _, err := s.MarkEnded(ctx, alice, "default", id); return err },
		func(id string) error { _, err := s.Accept(ctx, bob, "default", id); return err },
		func(i int, st calls.State, errEnd, errAccept error) {
			if errEnd != nil {
				t.Fatalf("round %d: mark_ended: %v", i, errEnd)
			}
			_, accepted := st.Call.Session.AcceptedBy["bob"]
			if st.Call.EndedAt == nil || st.Call.Ringing {
				t.Fatalf("round %d: ended=%v ringing=%v", i, st.Call.EndedAt, st.Call.Ringing)
			}
			if accepted != (errAccept == nil) {
				t.Fatalf("round %d: accepted=%v but accept err=%v", i, accepted, errAccept)
			}
		})
}

func TestAcceptRacingTheTimeoutHasExactlyOneOutcome(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	req := func() calls.CreateRequest {
		return calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "bob"}},
			SettingsOverride: &calls.SettingsOverride{Ring: &calls.RingSettings{AutoCancelTimeoutMs: 1000}}}
	}
	var ids []string
	var ringIDs []string
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("accept-timeout-%d", i)
		st, _, err := s.GetOrCreate(ctx, alice, "default", id, req())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		ringIDs = append(ringIDs, st.Call.RingID)
	}
	// Reach the rings' deadline, then accept and expire each call at the same instant: some accepts land
	// just before the end, some just after.
	time.Sleep(995 * time.Millisecond)
	for i, id := range ids {
		errAccept, errExpire := race(
			func() error { _, err := s.Accept(ctx, bob, "default", id); return err },
			func() error { return s.Expire(ctx, calls.CID("default", id), ringIDs[i]) },
		)
		if errExpire != nil {
			t.Fatal(errExpire)
		}
		st, err := s.Get(ctx, alice, "default", id, false, false)
		if err != nil {
			t.Fatal(err)
		}
		_, accepted := st.Call.Session.AcceptedBy["bob"]
		_, missed := st.Call.Session.MissedBy["bob"]
		if accepted == missed {
			t.Fatalf("%s: accepted=%v missed=%v: not exactly one outcome", id, accepted, missed)
		}
		if accepted != (errAccept == nil) || missed != (st.Call.EndedAt != nil) {
			t.Fatalf("%s: accepted=%v (err %v) missed=%v ended=%v", id, accepted, errAccept, missed, st.Call.EndedAt)
		}
	}
}

func TestFiftyIdenticalGetOrCreatesMakeOneCallAndOneRing(t *testing.T) {
	s, in := newStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	created := make(chan bool, 50)
	ringIDs := make(chan string, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, c, err := s.GetOrCreate(ctx, alice, "default", "fifty", calls.CreateRequest{Ring: true, Members: []calls.MemberInput{{UserID: "bob"}}})
			if err != nil {
				t.Error(err)
				return
			}
			created <- c
			ringIDs <- st.Call.RingID
		}()
	}
	wg.Wait()
	close(created)
	close(ringIDs)
	n := 0
	for c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d requests created the call, want 1", n)
	}
	ids := map[string]bool{}
	for r := range ringIDs {
		ids[r] = true
	}
	if len(ids) != 1 {
		t.Fatalf("%d ring ids, want 1: %v", len(ids), ids)
	}
	rings := 0
	for id := range pendingTaskIDs(t, in, queue.QueueRing) {
		if len(id) > 5 && id[:5] == "ring:" {
			rings++
		}
	}
	if rings != 1 {
		t.Fatalf("%d ring tasks, want 1", rings)
	}
}
