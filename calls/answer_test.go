package calls

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/testredis"
	"github.com/ringer-dev/ringer/wire"
)

// The answer and the effects of a transition come from the state its script returns (done in scripts.go),
// not from a read after it. This proves that state decodes to exactly what the read pipeline (Get, List)
// reads from the same keys, through every kind of transition, so the JSON a client gets is the same either
// way.
func TestTheScriptsAnswerIsTheCallAsTheReadPipelineReadsIt(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	s := New(rdb, queue.NewClient(rdb), nil)
	ctx := context.Background()
	alice := Actor{UserID: "alice", Name: "Alice", Image: "https://example.com/a.png"}
	bob, carol, dave := Actor{UserID: "bob"}, Actor{UserID: "carol"}, Actor{UserID: "dave"}
	startsAt := time.UnixMilli(1_900_000_000_123)
	const cid = "default:answer"

	check := func(step string, out outcome, got snapshot) {
		t.Helper()
		if out.Status == statusNotFound {
			t.Fatalf("%s: not found", step)
		}
		want, err := s.read(ctx, cid)
		if err != nil {
			t.Fatalf("%s: read: %v", step, err)
		}
		// Both decode with their own now; nothing here is near a ring's end, so ringing agrees.
		if gj, wj := mustJSON(t, got.State), mustJSON(t, want.State); gj != wj {
			t.Fatalf("%s: the script's answer differs from the read\n got %s\nwant %s", step, gj, wj)
		}
		if got.ringCaller != want.ringCaller || got.ringCallerName != want.ringCallerName ||
			got.ringAccepted != want.ringAccepted || got.ringEndsAt != want.ringEndsAt || len(got.ringing) != len(want.ringing) {
			t.Fatalf("%s: ring details differ: got %+v want %+v", step, got, want)
		}
		for m, end := range want.ringing {
			if got.ringing[m] != end {
				t.Fatalf("%s: %s rings until %d, read says %d", step, m, got.ringing[m], end)
			}
		}
	}

	req := CreateRequest{
		Ring: true,
		Members: []MemberInput{
			{UserID: "bob", Role: "admin", Custom: map[string]any{"n": json.Number("12345678901234567890"), "f": 1.5}},
			{UserID: "carol"}, {UserID: "dave"},
		},
		Custom:           map[string]any{"display_name": "Standup", "video": true, "big": json.Number("9007199254740993")},
		SettingsOverride: &SettingsOverride{Ring: &RingSettings{AutoCancelTimeoutMs: 60_000, IncomingCallTimeoutMs: 45_000}},
		StartsAt:         &startsAt,
	}
	st, created, err := s.GetOrCreate(ctx, alice, "default", "answer", req)
	if err != nil || !created || !st.Call.Ringing {
		t.Fatalf("create: created=%v ringing=%v err=%v", created, st.Call.Ringing, err)
	}
	want, err := s.read(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	if gj, wj := mustJSON(t, st), mustJSON(t, want.State); gj != wj {
		t.Fatalf("create: the answer differs from the read\n got %s\nwant %s", gj, wj)
	}
	out, snap, err := s.run(ctx, Actor{}, createScript, cid, `{}`) // exists: the script answers the call untouched
	if err != nil || out.Status != statusExists {
		t.Fatalf("create again: %s %v", out.Status, err)
	}
	check("exists", out, snap)

	steps := []struct {
		name string
		do   func() (outcome, snapshot, error)
	}{
		{"accept", func() (outcome, snapshot, error) { return s.run(ctx, Actor{}, acceptScript, cid, bob.UserID) }},
		{"decline", func() (outcome, snapshot, error) {
			return s.run(ctx, Actor{}, rejectScript, cid, carol.UserID, wire.ReasonDecline)
		}},
		{"busy", func() (outcome, snapshot, error) {
			return s.run(ctx, Actor{}, rejectScript, cid, dave.UserID, wire.ReasonBusy)
		}},
		{"join", func() (outcome, snapshot, error) { return s.run(ctx, Actor{}, joinScript, cid, bob.UserID) }},
		{"ring again", func() (outcome, snapshot, error) {
			spec := ringSpec{teamAccess: accessOf(Actor{}), RingID: newID(), User: alice.UserID, Name: alice.Name, Members: []string{carol.UserID}, Max: MaxRingMembers}
			return s.run(ctx, Actor{}, ringScript, cid, mustJSON(t, spec))
		}},
		{"members", func() (outcome, snapshot, error) {
			return s.run(ctx, Actor{}, updateMembersScript, cid, `{"update":["erin","{\"role\":\"user\",\"custom\":{},\"created_at\":\"2026-01-02T03:04:05.678Z\"}"],"remove":["dave"],"adder":"","max":100000}`)
		}},
		{"leave", func() (outcome, snapshot, error) { return s.run(ctx, Actor{}, leaveScript, cid, bob.UserID) }},
		{"end", func() (outcome, snapshot, error) { return s.run(ctx, Actor{}, markEndedScript, cid, alice.UserID) }},
	}
	for _, st := range steps {
		out, snap, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		check(st.name, out, snap)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// publish encodes the call once for all the events of a transition; the wire form must be Event's, byte
// for byte, whatever the call holds.
func TestAnEventWithItsCallEncodedOnceIsEncodedAsEvent(t *testing.T) {
	ended := time.UnixMilli(1_800_000_000_000).UTC()
	call := Call{
		CID: "default:x", Type: "default", ID: "x", CreatedBy: UserRef{ID: "alice", Name: "A <&> \u2028"},
		CreatedAt: time.UnixMilli(1_700_000_000_123).UTC(),
		Custom:    map[string]any{"html": "<b>&</b>", "n": json.Number("12345678901234567890"), "nested": map[string]any{"z": []any{1.5, nil, true}}},
		Settings:  Settings{Ring: RingSettings{AutoCancelTimeoutMs: 30_000, IncomingCallTimeoutMs: 1_000}},
		Ringing:   true, RingID: "r1", EndedAt: &ended,
		Session: Session{AcceptedBy: map[string]time.Time{"bob": ended}, RejectedBy: map[string]time.Time{},
			MissedBy: map[string]time.Time{}, Participants: []Participant{{UserID: "alice", JoinedAt: ended}}},
	}
	at := time.UnixMilli(1_800_000_000_001).UTC()
	raw := mustJSON(t, call)
	got := mustJSON(t, eventWire{Type: queue.EventAccepted, CallCID: call.CID, Call: json.RawMessage(raw), User: UserRef{ID: "bob"}, CreatedAt: at})
	want := mustJSON(t, Event{Type: queue.EventAccepted, CallCID: call.CID, Call: call, User: UserRef{ID: "bob"}, CreatedAt: at})
	if got != want {
		t.Fatalf("event encodings differ\n got %s\nwant %s", got, want)
	}
}

// Every status a script can answer parses to its constant, and each maps to one error (or none).
func TestEveryScriptStatusParsesAndMapsToOneError(t *testing.T) {
	for _, c := range []struct {
		name string
		want error
	}{
		{"ok", nil}, {"exists", nil}, {"noop", nil}, {"not_found", ErrNotFound}, {"ended", ErrEnded},
		{"not_rung", ErrNotRung}, {"ring_over", ErrRingOver}, {"forbidden", ErrForbidden}, {"too_many", nil},
	} {
		var out outcome
		if err := json.Unmarshal([]byte(`{"status":"`+c.name+`"}`), &out); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if out.Status.String() != c.name {
			t.Errorf("%s parsed as %s", c.name, out.Status)
		}
		err := out.Status.err("default:x", out)
		var fe *FieldError
		switch {
		case c.name == "too_many":
			if !errors.As(err, &fe) || !fe.Limit {
				t.Errorf("too_many: %v, want a limit FieldError", err)
			}
		case c.want == nil && err != nil, c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	var out outcome
	if err := json.Unmarshal([]byte(`{"status":"maybe"}`), &out); err == nil {
		t.Error("an unknown status parsed")
	}
}

// The scripts spell no event name or reject reason of their own: they use the Lua locals that luaEvents
// makes from the Go constants, so a renamed constant cannot leave a script writing the old name.
func TestScriptsSpellNoEventOrReasonLiteral(t *testing.T) {
	src, err := os.ReadFile("scripts.go")
	if err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile(`'(call\.[a-z_]+|decline|busy|cancel|timeout)'`)
	if m := literal.FindAllString(string(src), -1); len(m) > 0 {
		t.Errorf("scripts.go spells %v", m)
	}
	for _, want := range []string{"local EV_RING = " + `"` + queue.EventRing + `"`, "local REASON_BUSY = " + `"` + wire.ReasonBusy + `"`} {
		if !strings.Contains(luaPrelude, want) {
			t.Errorf("the prelude lacks %s", want)
		}
	}
}
