package api

import (
	"bytes"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/calls"
)

// The call answer written member by member (writeCall) is, byte for byte, what encoding/json writes for it,
// whatever the members hold: ids and roles that need escaping, custom objects empty, missing, nested or with
// exact numbers, times in any zone, with or without nanoseconds, and the zero time.
func TestACallAnswerIsTheJSONEncodingOfItsState(t *testing.T) {
	at := time.Date(2026, 12, 7, 14, 3, 4, 5006007, time.UTC)
	zone := time.FixedZone("", -(3*3600 + 30*60))
	started := at.Add(-time.Minute)
	st := calls.State{
		Call: calls.Call{CID: "default:x", Type: "default", ID: "x", CreatedBy: calls.UserRef{ID: "alice", Name: "Alice <&>"},
			CreatedAt: at, Custom: map[string]any{"display_name": "Stand-up"}, StartsAt: &started, Team: "t"},
		Members: []calls.Member{
			{UserID: "alice", Role: "admin", CreatedAt: at},
			{UserID: "bob", Role: "user", Custom: map[string]any{}, CreatedAt: at.In(zone)},
			{UserID: "carol@example.com", Role: "host <b>", Custom: map[string]any{"n": 12345678901234567890.0, "z": []any{1, "a&b"}, "a": map[string]any{"y": nil, "x": true}}, CreatedAt: at.Truncate(time.Second)},
			{UserID: "dave.d-e_f", Role: "gäst \u2028 \"q\" \\ \t", CreatedAt: time.Time{}},
			{UserID: "eve", Role: "", Custom: map[string]any{"k": "\xff"}, CreatedAt: at.Add(500 * time.Millisecond)},
		},
	}
	for _, c := range []struct {
		name    string
		st      calls.State
		created bool
	}{
		{"members of every kind", st, true},
		{"no members", calls.State{Call: st.Call}, false},
		{"one plain member", calls.State{Call: st.Call, Members: st.Members[:1]}, false},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		writeJSON(want, 201, present(c.st, c.created))
		writeCall(got, 201, c.st, c.created)
		if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("%s: writeCall wrote\n%s\nencoding/json writes\n%s", c.name, got.Body, want.Body)
		}
		if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") ||
			got.Header().Get("X-Content-Type-Options") != want.Header().Get("X-Content-Type-Options") {
			t.Errorf("%s: status %d, headers %v; want %d, %v", c.name, got.Code, got.Header(), want.Code, want.Header())
		}
	}
}

// BenchmarkWriteBigCall writes the answer of a 100,000-member call, as a big get-or-create answers: by
// writeCall, and by encoding/json alone (writeJSON), which writeCall must match.
func BenchmarkWriteBigCall(b *testing.B) {
	at := time.Now().UTC()
	st := calls.State{Call: calls.Call{CID: "default:big", Type: "default", ID: "big", CreatedAt: at}}
	for i := range 100000 {
		st.Members = append(st.Members, calls.Member{UserID: "m" + strconv.Itoa(i), Role: "user", CreatedAt: at})
	}
	b.Run("writeCall", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			writeCall(httptest.NewRecorder(), 200, st, true)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			writeJSON(httptest.NewRecorder(), 200, present(st, true))
		}
	})
}
