package e2e

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/client"
	"github.com/ringer-dev/ringer/tests/harness"
)

// clientFor is a client of e acting with token, whose requests the harness checks against the spec.
func clientFor(e *harness.Env, token string) *client.Client {
	c := client.New(e.URL, token)
	c.HTTP = e.HTTP()
	return c
}

// clientNext returns the next event about cid from evs, failing the test after eventsWait.
func clientNext(t *testing.T, evs *client.Events, cid string) client.Event {
	t.Helper()
	seen, err := harness.Await(evs.C, eventsWait, func(ev client.Event) bool { return ev.CallCID == cid })
	switch {
	case errors.Is(err, harness.ErrClosed):
		t.Fatalf("event stream closed: %v", evs.Err())
	case err != nil:
		t.Fatalf("no event about %s within %s", cid, eventsWait)
	}
	return seen[len(seen)-1]
}

func TestTheGoClientRingsAcceptsAndFollowsEvents(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	ctx := e.Context()
	alice, bob := clientFor(e, e.Token("alice")), clientFor(e, e.Token("bob"))

	dev, created, err := bob.RegisterDevice(ctx, client.DeviceRequest{ID: "bob-android", PushProvider: client.Firebase})
	if err != nil || !created || dev.UserID != "bob" {
		t.Fatalf("RegisterDevice = %+v, created %v, %v; want bob's new device", dev, created, err)
	}
	if _, created, err := bob.RegisterDevice(ctx, client.DeviceRequest{ID: "bob-android", PushProvider: client.Firebase}); err != nil || created {
		t.Fatalf("registering again: created %v, %v; want an existing device", created, err)
	}

	aliceEvents := alice.Events(ctx)
	bobEvents := bob.Events(ctx)
	for _, evs := range []*client.Events{aliceEvents, bobEvents} {
		select {
		case <-evs.Connected:
		case <-time.After(eventsWait):
			t.Fatal("event stream not connected")
		}
	}

	data := &client.CallData{Members: []client.MemberRequest{{UserID: "alice"}, {UserID: "bob"}}, Custom: map[string]any{"display_name": "Standup"}}
	st, err := alice.GetOrCreateCall(ctx, "default", "client1", client.GetOrCreate{Ring: true, Data: data})
	if err != nil || !st.Created || !st.Call.Ringing || st.Call.RingID == "" {
		t.Fatalf("GetOrCreateCall = %+v, %v; want a new ringing call", st, err)
	}
	if ev := clientNext(t, bobEvents, "default:client1"); ev.Type != "call.created" && ev.Type != "call.ring" {
		t.Fatalf("bob's first event %q, want call.created or call.ring", ev.Type)
	}
	ring := e.WaitFCM("bob-android", 1)
	if ring[0].Data["type"] != "call.ring" || ring[0].Data["ring_id"] != st.Call.RingID {
		t.Fatalf("bob's push %v, want the call.ring of ring %s", ring[0].Data, st.Call.RingID)
	}

	// bob's phone shows the incoming call: its acknowledgement tells alice that it rings.
	st, err = bob.Ringing(ctx, "default", "client1")
	if err != nil || st.Call.Session.RingingBy["bob"].IsZero() {
		t.Fatalf("Ringing = %+v, %v; want bob in session.ringing_by", st.Call.Session, err)
	}
	for {
		ev := clientNext(t, aliceEvents, "default:client1")
		if ev.Type == "call.ringing" {
			if ev.User.ID != "bob" || ev.ID == "" {
				t.Errorf("call.ringing by %q with id %q, want bob's with the stream's id", ev.User.ID, ev.ID)
			}
			break
		}
	}
	if _, err := alice.Ringing(ctx, "default", "client1"); !client.IsStatus(err, http.StatusConflict) {
		t.Errorf("the caller acknowledging its own ring: %v, want 409", err)
	}

	calls, err := bob.ListCalls(ctx, client.StateRinging, "")
	if err != nil || len(calls) != 1 || calls[0].CreatedByMe {
		t.Fatalf("bob's ringing calls = %+v, %v; want the incoming one", calls, err)
	}

	if _, err := bob.Accept(ctx, "default", "client1"); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	for {
		ev := clientNext(t, aliceEvents, "default:client1")
		if ev.Type == "call.accepted" {
			if ev.User.ID != "bob" {
				t.Errorf("call.accepted by %q, want bob", ev.User.ID)
			}
			break
		}
	}
	st, err = bob.Join(ctx, "default", "client1")
	if err != nil || len(st.Call.Session.Participants) != 2 {
		t.Fatalf("Join = %+v, %v; want alice and bob in the call", st.Call.Session, err)
	}

	// An action the server refuses comes back as a typed error with the status and code of the contract.
	_, err = bob.MarkEnded(ctx, "default", "client1")
	if !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("bob ending alice's call: %v, want 403", err)
	}
	if _, err := alice.MarkEnded(ctx, "default", "client1"); err != nil {
		t.Fatalf("MarkEnded: %v", err)
	}
	_, err = bob.Accept(ctx, "default", "client1")
	if !client.IsStatus(err, http.StatusConflict) {
		t.Errorf("accepting an ended call: %v, want 409", err)
	}
}

func TestTheGoClientActsForAUserWithAServerToken(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	ctx := e.Context()
	srv := clientFor(e, e.ServerToken())
	if _, _, err := srv.RegisterDevice(ctx, client.DeviceRequest{ID: "carol-android", PushProvider: client.Firebase, UserID: "carol"}); err != nil {
		t.Fatal(err)
	}
	evs := srv.As("carol").Events(ctx)
	select {
	case <-evs.Connected:
	case <-time.After(eventsWait):
		t.Fatal("carol's event stream not connected")
	}
	_, err := srv.GetOrCreateCall(ctx, "default", "client2", client.GetOrCreate{Ring: true, Data: &client.CallData{
		CreatedByID: "dave", Members: []client.MemberRequest{{UserID: "dave"}, {UserID: "carol"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := srv.As("carol").Ringing(ctx, "default", "client2"); err != nil || st.Call.Session.RingingBy["carol"].IsZero() {
		t.Fatalf("Ringing for carol = %+v, %v; want carol in session.ringing_by", st.Call.Session, err)
	}
	if _, err := srv.As("carol").Reject(ctx, "default", "client2", client.ReasonBusy); err != nil {
		t.Fatal(err)
	}
	for {
		if ev := clientNext(t, evs, "default:client2"); ev.Type == "call.ended" {
			break
		}
	}
	got, err := srv.ListDevices(ctx, "carol")
	if err != nil || len(got) != 1 || got[0].ID != "carol-android" {
		t.Fatalf("carol's devices = %+v, %v", got, err)
	}
}

func TestTheGoClientStopsFollowingEventsOnARefusedToken(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	ctx, cancel := context.WithTimeout(e.Context(), eventsWait)
	defer cancel()
	evs := clientFor(e, "not-a-token").Events(ctx)
	for range evs.C {
	}
	if !client.IsStatus(evs.Err(), http.StatusUnauthorized) {
		t.Fatalf("Err = %v, want the 401 that ended the stream", evs.Err())
	}
}

func TestTheGoClientGetsARingRefusedForOverloadAsA503WithItsRetryAfter(t *testing.T) {
	t.Parallel()
	// No worker serves the ring queue: the first ring's push waits there, and past the budget every request
	// that would start a ring is refused.
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_RING_QUEUE_BUDGET=50ms"}})
	ctx := e.Context()
	alice := clientFor(e, e.Token("alice"))
	members := []client.MemberRequest{{UserID: "alice"}, {UserID: "bob"}}
	if _, err := alice.GetOrCreateCall(ctx, "default", "busy0", client.GetOrCreate{Ring: true, Data: &client.CallData{Members: members}}); err != nil {
		t.Fatal(err)
	}
	var refused error
	n := 0
	e.Eventually(10*time.Second, "a ring refused while the ring queue is behind", func() bool {
		n++
		id := "busy" + strconv.Itoa(n)
		_, refused = alice.GetOrCreateCall(ctx, "default", id, client.GetOrCreate{Ring: true, Data: &client.CallData{Members: members}})
		if refused == nil {
			// Let in before the backlog passed the budget: end it so only the refusal matters below.
			if _, err := alice.MarkEnded(ctx, "default", id); err != nil {
				t.Fatal(err)
			}
		}
		return refused != nil
	})
	_, ringRefused := alice.Ring(ctx, "default", "busy0", "bob")
	for _, c := range []struct {
		what string
		err  error
	}{{"get-or-create with ring", refused}, {"ring", ringRefused}} {
		var apiErr *client.Error
		if !errors.As(c.err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || apiErr.Code != client.Overloaded || apiErr.RetryAfter < time.Second {
			t.Errorf("%s: %v (%+v), want 503 overloaded with a Retry-After of at least a second", c.what, c.err, apiErr)
		}
	}
}

func TestTheGoClientRegistersALocaleAndUpdatesACall(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	ctx := e.Context()
	alice := clientFor(e, e.Token("alice"))
	dev, _, err := alice.RegisterDevice(ctx, client.DeviceRequest{ID: "alice-android", PushProvider: client.Firebase, Locale: "de_at"})
	if err != nil || dev.Locale != "de-AT" {
		t.Fatalf("RegisterDevice = %+v, %v; want locale de-AT", dev, err)
	}
	if _, err := alice.GetOrCreateCall(ctx, "default", "cu1", client.GetOrCreate{}); err != nil {
		t.Fatal(err)
	}
	starts := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	st, err := alice.UpdateCall(ctx, "default", "cu1", client.CallUpdate{StartsAt: &starts, Custom: map[string]any{"topic": "q4"}})
	if err != nil || st.Call.StartsAt == nil || !st.Call.StartsAt.Equal(starts) || st.Call.Custom["topic"] != "q4" {
		t.Fatalf("UpdateCall = %+v, %v; want the new starts_at and custom", st.Call, err)
	}
}
