package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

// members builds a JSON members array of n users u0..u(n-1), with the caller first when caller != "".
func members(caller string, n int) string {
	var b strings.Builder
	b.WriteByte('[')
	if caller != "" {
		fmt.Fprintf(&b, `{"user_id":%q}`, caller)
	}
	for i := range n {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"user_id":"u%d"}`, i)
	}
	b.WriteByte(']')
	return b.String()
}

func ids(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("u%d", i)
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func bigCustom(bytes int) string {
	return fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", bytes-len(`{"blob":""}`)))
}

func TestGetOrCreateRefusesBadInput(t *testing.T) {
	cases := []struct {
		name, target, body string
		status             int
		code, field        string
	}{
		{"bad type", "/v1/call/de.fault/abc", `{}`, 400, wire.CodeInvalidField, "type"},
		{"bad id", "/v1/call/default/a%20b", `{}`, 400, wire.CodeInvalidField, "id"},
		{"id too long", "/v1/call/default/" + strings.Repeat("a", 65), `{}`, 400, wire.CodeInvalidField, "id"},
		{"malformed JSON", "", `{"ring":`, 400, wire.CodeInvalidJSON, "body"},
		{"not an object", "", `[1,2]`, 400, wire.CodeInvalidJSON, "body"},
		{"trailing garbage", "", `{} x`, 400, wire.CodeInvalidJSON, "body"},
		{"two objects", "", `{}{}`, 400, wire.CodeInvalidJSON, "body"},
		{"invalid UTF-8", "", "{\"data\":{\"custom\":{\"a\":\"\xff\"}}}", 400, wire.CodeInvalidJSON, "body"},
		{"unknown top field", "", `{"rings":true}`, 400, wire.CodeUnknownField, "rings"},
		{"unknown data field", "", `{"data":{"memberz":[]}}`, 400, wire.CodeUnknownField, "data.memberz"},
		{"unknown member field", "", `{"data":{"members":[{"user_id":"bob"},{"user_id":"carol","nick":"c"}]}}`, 400, wire.CodeUnknownField, "data.members[1].nick"},
		{"unknown ring setting", "", `{"data":{"settings_override":{"ring":{"timeout":5}}}}`, 400, wire.CodeUnknownField, "data.settings_override.ring.timeout"},
		{"ring not a bool", "", `{"ring":"yes"}`, 400, wire.CodeInvalidJSON, "ring"},
		{"members not a list", "", `{"data":{"members":{"user_id":"bob"}}}`, 400, wire.CodeInvalidJSON, "data.members"},
		{"member user_id not a string", "", `{"data":{"members":[{"user_id":5}]}}`, 400, wire.CodeInvalidJSON, "data.members[0].user_id"},
		{"member null", "", `{"data":{"members":[null]}}`, 400, wire.CodeInvalidField, "data.members[0]"},
		{"member without user_id", "", `{"data":{"members":[{"user_id":"bob"},{"role":"admin"}]}}`, 400, wire.CodeInvalidField, "data.members[1].user_id"},
		{"member bad user_id", "", `{"data":{"members":[{"user_id":"bob"},{"user_id":"carol"},{"user_id":"c d"}]}}`, 400, wire.CodeInvalidField, "data.members[2].user_id"},
		{"member user_id too long", "", `{"data":{"members":[{"user_id":"` + strings.Repeat("a", 129) + `"}]}}`, 400, wire.CodeInvalidField, "data.members[0].user_id"},
		{"duplicate member", "", `{"data":{"members":[{"user_id":"bob"},{"user_id":"carol"},{"user_id":"bob"}]}}`, 400, wire.CodeInvalidField, "data.members[2].user_id"},
		{"bad member role", "", `{"data":{"members":[{"user_id":"bob","role":"a b"}]}}`, 400, wire.CodeInvalidField, "data.members[0].role"},
		{"member custom not an object", "", `{"data":{"members":[{"user_id":"bob","custom":[1]}]}}`, 400, wire.CodeInvalidJSON, "data.members[0].custom"},
		{"member custom too big", "", `{"data":{"members":[{"user_id":"bob","custom":` + bigCustom(calls.MaxCustomBytes+1) + `}]}}`, 400, wire.CodeLimitExceeded, "data.members[0].custom"},
		{"custom not an object", "", `{"data":{"custom":"topic"}}`, 400, wire.CodeInvalidJSON, "data.custom"},
		{"custom too big", "", `{"data":{"custom":` + bigCustom(calls.MaxCustomBytes+1) + `}}`, 400, wire.CodeLimitExceeded, "data.custom"},
		{"ring without members", "", `{"ring":true}`, 400, wire.CodeInvalidField, "data.members"},
		{"ring with empty members", "", `{"ring":true,"data":{"members":[]}}`, 400, wire.CodeInvalidField, "data.members"},
		{"too many members", "", `{"data":{"members":` + members("", calls.MaxMembers+1) + `}}`, 400, wire.CodeLimitExceeded, "data.members"},
		{"too many to ring", "", `{"ring":true,"data":{"members":` + members("alice", calls.MaxRingMembers+1) + `}}`, 400, wire.CodeLimitExceeded, "data.members"},
		{"auto cancel too short", "", `{"data":{"settings_override":{"ring":{"auto_cancel_timeout_ms":999}}}}`, 400, wire.CodeInvalidField, "data.settings_override.ring.auto_cancel_timeout_ms"},
		{"auto cancel too long", "", `{"data":{"settings_override":{"ring":{"auto_cancel_timeout_ms":180001}}}}`, 400, wire.CodeInvalidField, "data.settings_override.ring.auto_cancel_timeout_ms"},
		{"incoming negative", "", `{"data":{"settings_override":{"ring":{"incoming_call_timeout_ms":-5}}}}`, 400, wire.CodeInvalidField, "data.settings_override.ring.incoming_call_timeout_ms"},
		{"incoming not an integer", "", `{"data":{"settings_override":{"ring":{"incoming_call_timeout_ms":1500.5}}}}`, 400, wire.CodeInvalidJSON, "data.settings_override.ring.incoming_call_timeout_ms"},
		{"unknown settings", "", `{"data":{"settings_override":{"video":{}}}}`, 400, wire.CodeUnknownField, "data.settings_override.video"},
		{"starts_at not RFC 3339", "", `{"data":{"starts_at":"tomorrow"}}`, 400, wire.CodeInvalidField, "data.starts_at"},
		{"starts_at not a string", "", `{"data":{"starts_at":12}}`, 400, wire.CodeInvalidJSON, "data.starts_at"},
		{"team too long", "", `{"data":{"team":"` + strings.Repeat("t", 129) + `"}}`, 400, wire.CodeInvalidField, "data.team"},
	}
	e := newEnv(t)
	alice := userToken(t, "alice")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := c.target
			if target == "" {
				target = "/v1/call/default/abc"
			}
			wantError(t, e.do("POST", target, alice, c.body), c.status, c.code, c.field)
		})
	}
	if n := len(e.calls.calls); n != 0 {
		t.Errorf("%d calls were created by bad requests", n)
	}
}

func TestGetOrCreateAcceptsLimitsExactly(t *testing.T) {
	e := newEnv(t)
	alice := userToken(t, "alice")
	body := `{"ring":true,"data":{"members":` + members("alice", calls.MaxRingMembers) + `,
		"custom":` + bigCustom(calls.MaxCustomBytes) + `,
		"settings_override":{"ring":{"auto_cancel_timeout_ms":1000,"incoming_call_timeout_ms":180000}},
		"starts_at":"2026-12-01T10:00:00Z","team":"blue"}}`
	w := e.do("POST", "/v1/call/default/abc", alice, body)
	if w.Code != http.StatusCreated {
		t.Fatalf("status = %d; %s", w.Code, w.Body)
	}
	_, _, args := e.calls.lastCall()
	req := args[2].(calls.CreateRequest)
	if !req.Ring || len(req.Members) != calls.MaxRingMembers+1 || req.Team != "blue" ||
		req.SettingsOverride.Ring.AutoCancelTimeoutMs != 1000 || req.SettingsOverride.Ring.IncomingCallTimeoutMs != 180000 ||
		!req.StartsAt.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("request reached calls as %+v", req)
	}
	// A call of the most members, not rung.
	w = e.do("POST", "/v1/call/default/big", alice, `{"data":{"members":`+members("", calls.MaxMembers)+`}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status = %d; %.200s", w.Code, w.Body)
	}
}

func TestGetOrCreateKeepsLargeNumbersInCustom(t *testing.T) {
	e := newEnv(t)
	w := e.do("POST", "/v1/call/default/abc", userToken(t, "alice"), `{"data":{"custom":{"order":12345678901234567890,"video":true}}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status = %d; %s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), `"order":12345678901234567890`) {
		t.Errorf("custom lost digits: %s", w.Body)
	}
}

func TestBodyOverTheLimitIs400NamingBody(t *testing.T) {
	e := newEnv(t)
	body := `{"data":{"custom":{"a":"` + strings.Repeat("x", MaxBodyBytes) + `"}}}`
	wantError(t, e.do("POST", "/v1/call/default/abc", userToken(t, "alice"), body), 400, wire.CodeLimitExceeded, "body")

	// Without a Content-Length the limit still holds while reading.
	r := httptest.NewRequest("POST", "/v1/call/default/abc", struct{ *strings.Reader }{strings.NewReader(body)})
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+userToken(t, "alice"))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	wantError(t, w, 400, wire.CodeLimitExceeded, "body")
}

func TestNonJSONContentTypeIs415(t *testing.T) {
	e := newEnv(t)
	r := httptest.NewRequest("POST", "/v1/call/default/abc", strings.NewReader(`ring=true`))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Bearer "+userToken(t, "alice"))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	wantError(t, w, http.StatusUnsupportedMediaType, wire.CodeUnsupportedMediaType, "Content-Type")

	// application/json with a charset is JSON.
	r = httptest.NewRequest("POST", "/v1/call/default/abc", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Header.Set("Authorization", "Bearer "+userToken(t, "alice"))
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Errorf("status = %d; %s", w.Code, w.Body)
	}
}

func TestOtherEndpointsRefuseBadInput(t *testing.T) {
	cases := []struct {
		name, method, target, body string
		status                     int
		code, field                string
	}{
		{"get ring not a bool", "GET", "/v1/call/default/abc?ring=yes", "", 400, wire.CodeInvalidField, "ring"},
		{"get notify not a bool", "GET", "/v1/call/default/abc?notify=2", "", 400, wire.CodeInvalidField, "notify"},
		{"get bad id", "GET", "/v1/call/default/a.b", "", 400, wire.CodeInvalidField, "id"},
		{"members unknown field", "POST", "/v1/call/default/abc/members", `{"add":[]}`, 400, wire.CodeUnknownField, "add"},
		{"members bad update", "POST", "/v1/call/default/abc/members", `{"update_members":[{"user_id":"bob"},{"user_id":"!"}]}`, 400, wire.CodeInvalidField, "update_members[1].user_id"},
		{"members duplicate update", "POST", "/v1/call/default/abc/members", `{"update_members":[{"user_id":"bob"},{"user_id":"bob"}]}`, 400, wire.CodeInvalidField, "update_members[1].user_id"},
		{"members bad remove", "POST", "/v1/call/default/abc/members", `{"remove_members":["bob","x y"]}`, 400, wire.CodeInvalidField, "remove_members[1]"},
		{"members duplicate remove", "POST", "/v1/call/default/abc/members", `{"remove_members":["bob","bob"]}`, 400, wire.CodeInvalidField, "remove_members[1]"},
		{"members add and remove", "POST", "/v1/call/default/abc/members", `{"update_members":[{"user_id":"bob"}],"remove_members":["carol","bob"]}`, 400, wire.CodeInvalidField, "remove_members[1]"},
		{"members custom too big", "POST", "/v1/call/default/abc/members", `{"update_members":[{"user_id":"bob","custom":` + bigCustom(calls.MaxCustomBytes+1) + `}]}`, 400, wire.CodeLimitExceeded, "update_members[0].custom"},
		{"members too many", "POST", "/v1/call/default/abc/members", `{"update_members":` + members("", calls.MaxMembers+1) + `}`, 400, wire.CodeLimitExceeded, "update_members"},
		{"ring too many", "POST", "/v1/call/default/abc/ring", `{"members_ids":` + ids(MaxMembersIDs+1) + `}`, 400, wire.CodeLimitExceeded, "members_ids"},
		{"ring bad id", "POST", "/v1/call/default/abc/ring", `{"members_ids":["bob",""]}`, 400, wire.CodeInvalidField, "members_ids[1]"},
		{"ring duplicate", "POST", "/v1/call/default/abc/ring", `{"members_ids":["bob","bob"]}`, 400, wire.CodeInvalidField, "members_ids[1]"},
		{"ring ids not strings", "POST", "/v1/call/default/abc/ring", `{"members_ids":[1]}`, 400, wire.CodeInvalidJSON, "members_ids"},
		{"reject bad reason", "POST", "/v1/call/default/abc/reject", `{"reason":"nope"}`, 400, wire.CodeInvalidField, "reason"},
		{"accept unknown field", "POST", "/v1/call/default/abc/accept", `{"video":true}`, 400, wire.CodeUnknownField, "video"},
		{"join garbage", "POST", "/v1/call/default/abc/join", `{}]`, 400, wire.CodeInvalidJSON, "body"},
		{"leave not JSON", "POST", "/v1/call/default/abc/leave", `nope`, 400, wire.CodeInvalidJSON, "body"},
		{"mark_ended array", "POST", "/v1/call/default/abc/mark_ended", `[]`, 400, wire.CodeInvalidJSON, "body"},
		{"calls bad state", "GET", "/v1/calls?calling_state=busy", "", 400, wire.CodeInvalidField, "calling_state"},
		{"device without id", "POST", "/v1/devices", `{"push_provider":"firebase"}`, 400, wire.CodeInvalidField, "id"},
		{"device bad provider", "POST", "/v1/devices", `{"id":"t","push_provider":"huawei"}`, 400, wire.CodeInvalidField, "push_provider"},
		{"device voip on firebase", "POST", "/v1/devices", `{"id":"fcm-token-1","push_provider":"firebase","voip_token":true}`, 400, wire.CodeInvalidField, "voip_token"},
		{"device token too long", "POST", "/v1/devices", `{"id":"` + strings.Repeat("t", 4097) + `","push_provider":"apn"}`, 400, wire.CodeInvalidField, "id"},
		{"device unknown field", "POST", "/v1/devices", `{"id":"t","push_provider":"apn","platform":"ios"}`, 400, wire.CodeUnknownField, "platform"},
		{"device voip not a bool", "POST", "/v1/devices", `{"id":"t","push_provider":"apn","voip_token":"yes"}`, 400, wire.CodeInvalidJSON, "voip_token"},
		{"delete without id", "DELETE", "/v1/devices", "", 400, wire.CodeInvalidField, "id"},
	}
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	alice := userToken(t, "alice")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do(c.method, c.target, alice, c.body), c.status, c.code, c.field)
		})
	}
}

func TestRejectReasonDefaultsToDecline(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	for body, want := range map[string]string{``: "decline", `{}`: "decline", `{"reason":""}`: "decline", `{"reason":"busy"}`: "busy", `{"reason":"timeout"}`: "timeout", `{"reason":"cancel"}`: "cancel"} {
		if w := e.do("POST", "/v1/call/default/abc/reject", userToken(t, "bob"), body); w.Code != http.StatusOK {
			t.Fatalf("%q: status %d; %s", body, w.Code, w.Body)
		}
		if _, _, args := e.calls.lastCall(); args[2] != want {
			t.Errorf("%q: reason %v, want %s", body, args[2], want)
		}
	}
}

func TestQueryBooleansReachCalls(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	e.do("GET", "/v1/call/default/abc?ring=true&notify=1", userToken(t, "alice"), "")
	if method, _, args := e.calls.lastCall(); method != "Get" || args[2] != true || args[3] != true {
		t.Errorf("%s%v, want Get with ring and notify", method, args)
	}
	e.do("GET", "/v1/call/default/abc?ring=false", userToken(t, "alice"), "")
	if _, _, args := e.calls.lastCall(); args[2] != false || args[3] != false {
		t.Errorf("%v, want neither ring nor notify", args)
	}
}

func TestRingDuplicateCreatorCountsOnceAgainstTheRingLimit(t *testing.T) {
	// The creator is a member but not a callee: 1,000 callees plus the creator may ring.
	e := newEnv(t)
	w := e.do("POST", "/v1/call/default/abc", serverToken(t), `{"ring":true,"data":{"created_by_id":"alice","members":`+members("alice", calls.MaxRingMembers)+`}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status = %d; %.300s", w.Code, w.Body)
	}
}

// A member sent as {"user_id":"<id>"} takes a path without a JSON decoder of its own; it must give what the
// decoder gives, and every other form, or an id the decoder's checks refuse, must go the decoder's way.
func TestAPlainMemberDecodesAsTheDecoderWould(t *testing.T) {
	for _, raw := range []string{
		`{"user_id":"bob"}`,
		`{"user_id":"a.b@c_d-9"}`,
		`{"user_id":"` + strings.Repeat("x", 128) + `"}`,
		`{ "user_id": "bob" }`,
		`{"user_id":"bob","role":"host"}`,
		`{"user_id":"b\u00f6b"}`,
		`{"user_id":"bob\"}`,
		`{"user_id":"` + strings.Repeat("x", 129) + `"}`,
		`{"user_id":""}`,
		`{"user_id":"bob","extra":1}`,
		`{"User_id":"bob"}`,
	} {
		got, gotErr := decodeMember("data.members[0]", json.RawMessage(raw))
		_, plain := plainMember(json.RawMessage(raw))
		// The decoder's way, whatever plainMember says.
		var m struct {
			UserID string          `json:"user_id"`
			Role   string          `json:"role"`
			Custom json.RawMessage `json:"custom"`
		}
		wantErr := decodeStrict("data.members[0]", []byte(raw), &m)
		if wantErr == nil && !userIDRe.MatchString(m.UserID) {
			wantErr = errors.New("bad user id")
		}
		if plain && (gotErr != nil || wantErr != nil || got.UserID != m.UserID || got.Role != "" || got.Custom != nil) {
			t.Errorf("%s took the plain path to %+v (%v); the decoder gives %+v (%v)", raw, got, gotErr, m, wantErr)
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%s: decodeMember says %v, the decoder %v", raw, gotErr, wantErr)
		}
	}
	if _, plain := plainMember(json.RawMessage(`{"user_id":"bob"}`)); !plain {
		t.Error(`{"user_id":"bob"} did not take the plain path`)
	}
}
