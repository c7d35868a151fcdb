package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/wire"
)

func TestPushPreferencesRefuseBadInputNamingTheField(t *testing.T) {
	e := newEnv(t)
	bob := userToken(t, "bob")
	for _, c := range []struct {
		name, tok, body string
		status          int
		code, field     string
	}{
		{"unknown call_level", bob, `{"call_level":"quiet"}`, 400, wire.CodeInvalidField, "call_level"},
		{"call_level not a string", bob, `{"call_level":0}`, 400, wire.CodeInvalidJSON, "call_level"},
		{"disabled_until not RFC 3339", bob, `{"disabled_until":"tonight"}`, 400, wire.CodeInvalidField, "disabled_until"},
		{"unknown field", bob, `{"call_level":"none","level":"none"}`, 400, wire.CodeUnknownField, "level"},
		{"a user naming another", bob, `{"call_level":"none","user_id":"alice"}`, 403, wire.CodeForbidden, ""},
		{"a server token naming nobody", serverToken(t), `{"call_level":"none"}`, 400, wire.CodeInvalidField, "user_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do("POST", "/v1/push_preferences", c.tok, c.body), c.status, c.code, c.field)
		})
	}
	wantError(t, e.do("GET", "/v1/push_preferences", serverToken(t), ""), 400, wire.CodeInvalidField, "user_id")
}

func TestPushPreferencesAnswerWhatIsStoredAndLeftOutFieldsTakeTheirDefaults(t *testing.T) {
	e := newEnv(t)
	bob := userToken(t, "bob")
	w := e.do("POST", "/v1/push_preferences", bob, `{"call_level":"none","disabled_until":"2026-12-06T07:00:00Z"}`)
	if w.Code != 200 {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	var got devices.Preferences
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	if got.CallLevel != "none" || got.DisabledUntil == nil || !got.DisabledUntil.Equal(want) || got.UserID != "bob" {
		t.Fatalf("POST answered %s", w.Body)
	}
	w = e.do("POST", "/v1/push_preferences", serverToken(t), `{"user_id":"bob"}`)
	if w.Code != 200 || w.Body.String() != `{"call_level":"all","disabled_until":null,"user_id":"bob"}`+"\n" {
		t.Fatalf("POST with every field left out: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/v1/push_preferences?user_id=bob", serverToken(t), ""); w.Body.String() != `{"call_level":"all","disabled_until":null,"user_id":"bob"}`+"\n" {
		t.Fatalf("GET: %s", w.Body)
	}
}
