package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

func TestKeysMustMatchFieldNamesExactlyAndAppearOnce(t *testing.T) {
	cases := []struct {
		name, target, body string
		code, field        string
	}{
		{"upper-case ring", "/v1/call/default/k1", `{"RING":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`, wire.CodeUnknownField, "RING"},
		{"capitalised data", "/v1/call/default/k1", `{"Data":{"members":[{"user_id":"alice"}]}}`, wire.CodeUnknownField, "Data"},
		{"member key case", "/v1/call/default/k1", `{"data":{"members":[{"User_ID":"bob"}]}}`, wire.CodeUnknownField, "data.members[0].User_ID"},
		{"settings key case", "/v1/call/default/k1", `{"data":{"settings_override":{"ring":{"Auto_Cancel_Timeout_Ms":5000}}}}`, wire.CodeUnknownField, "data.settings_override.ring.Auto_Cancel_Timeout_Ms"},
		{"ring twice", "/v1/call/default/k1", `{"ring":false,"ring":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`, wire.CodeInvalidJSON, "ring"},
		{"data twice", "/v1/call/default/k1", `{"data":{},"data":{}}`, wire.CodeInvalidJSON, "data"},
		{"member user_id twice", "/v1/call/default/k1", `{"data":{"members":[{"user_id":"alice","user_id":"bob"}]}}`, wire.CodeInvalidJSON, "data.members[0].user_id"},
		{"custom key twice", "/v1/call/default/k1", `{"data":{"custom":{"a":1,"a":2}}}`, wire.CodeInvalidJSON, "data.custom.a"},
		{"nested custom key twice", "/v1/call/default/k1", `{"data":{"custom":{"a":[{"b":{"c":1,"c":1}}]}}}`, wire.CodeInvalidJSON, "data.custom.a[0].b.c"},
		{"escaped duplicate", "/v1/call/default/k1", `{"ring":true,"r\u0069ng":false}`, wire.CodeInvalidJSON, "ring"},
		{"device key case", "/v1/devices", `{"ID":"` + strings.Repeat("a", 64) + `","push_provider":"apn"}`, wire.CodeUnknownField, "ID"},
		{"members body twice", "/v1/call/default/abc/members", `{"remove_members":["bob"],"remove_members":["carol"]}`, wire.CodeInvalidJSON, "remove_members"},
		{"ring ids case", "/v1/call/default/abc/ring", `{"Members_IDs":["bob"]}`, wire.CodeUnknownField, "Members_IDs"},
		{"nested past the limit", "/v1/devices", `{"id":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `,"push_provider":"firebase"}`, wire.CodeInvalidJSON, "body"},
		{"objects nested past the limit", "/v1/devices", `{"id":` + strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000) + `}`, wire.CodeInvalidJSON, "body"},
	}
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	alice := userToken(t, "alice")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do("POST", c.target, alice, c.body), 400, c.code, c.field)
		})
	}
	// A wrong-case key says which name was meant.
	if b := wantError(t, e.do("POST", "/v1/call/default/k1", alice, `{"RING":true}`), 400, wire.CodeUnknownField, "RING"); !strings.Contains(b.Message, `"ring"`) {
		t.Errorf("message %q does not name the field meant", b.Message)
	}
}

func TestExactKeysAndFreeFormCustomKeysAreAccepted(t *testing.T) {
	e := newEnv(t)
	// An escaped key is the key it spells; custom takes any key, in any case, once each.
	body := `{"r\u0069ng":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob","custom":{"Role":"x","role":"y"}}],"custom":{"RING":true,"Data":{"x":[{"a":1},{"a":2}]}}}}`
	if w := e.do("POST", "/v1/call/default/k2", userToken(t, "alice"), body); w.Code != http.StatusCreated {
		t.Fatalf("status = %d; %s", w.Code, w.Body)
	}
}

func TestCustomIsMeasuredAsSentBeforeDecoding(t *testing.T) {
	e := newEnv(t)
	alice := userToken(t, "alice")
	// 1,000 escaped letters: 6,000 bytes as sent, about 1 KiB once decoded. The size as sent counts.
	escaped := `{"blob":"` + strings.Repeat(`\u0041`, 1000) + `"}`
	for _, c := range []struct{ target, body, field string }{
		{"/v1/call/default/k3", `{"data":{"custom":` + escaped + `}}`, "data.custom"},
		{"/v1/call/default/k3", `{"data":{"members":[{"user_id":"alice","custom":` + escaped + `}]}}`, "data.members[0].custom"},
		{"/v1/call/default/abc/members", `{"update_members":[{"user_id":"bob","custom":` + escaped + `}]}`, "update_members[0].custom"},
	} {
		e.calls.put("default", "abc", "alice", "alice", "bob")
		b := wantError(t, e.do("POST", c.target, alice, c.body), 400, wire.CodeLimitExceeded, c.field)
		if !strings.Contains(b.Message, "as sent") {
			t.Errorf("%s: message %q does not say the size as sent counts", c.field, b.Message)
		}
	}
	// Exactly the limit as sent is fine.
	if w := e.do("POST", "/v1/call/default/k4", alice, `{"data":{"custom":`+bigCustom(calls.MaxCustomBytes)+`}}`); w.Code != http.StatusCreated {
		t.Fatalf("custom of exactly %d bytes: status %d; %s", calls.MaxCustomBytes, w.Code, w.Body)
	}
}

func BenchmarkOversizedCustomIsRefused(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"data":{"members":[{"user_id":"alice"}],"custom":{`)
	for i := 0; sb.Len() < MaxBodyBytes-64; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"k`)
		sb.WriteString(strconv.Itoa(i))
		sb.WriteString(`":1`)
	}
	sb.WriteString(`}}}`)
	body := []byte(sb.String())
	tok := TokenClaims{UserID: "alice", Role: RoleUser}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCreate(body, tok); err == nil {
			b.Fatal("an 8 MiB custom was accepted")
		}
	}
}

// BenchmarkDecodeCreateTypical decodes the body a typical ring request sends: a caller and a callee, ring
// timeouts, a custom field.
func BenchmarkDecodeCreateTypical(b *testing.B) {
	body := []byte(`{"ring":true,"data":{"members":[{"user_id":"alice","role":"admin"},{"user_id":"bob","custom":{"name":"Bob"}}],` +
		`"custom":{"display_name":"Stand-up"},"settings_override":{"ring":{"auto_cancel_timeout_ms":30000,"incoming_call_timeout_ms":30000}}}}`)
	tok := TokenClaims{UserID: "alice", Role: RoleUser}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCreate(body, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCreateBigNotify decodes the body of a 100,000-member notification, each member sent as
// {"user_id":"<id>"} as big calls' members are.
func BenchmarkDecodeCreateBigNotify(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"notify":true,"data":{"members":[`)
	for i := range 100000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"user_id":"m%06d"}`, i)
	}
	sb.WriteString(`],"custom":{"display_name":"All hands"}}}`)
	body := []byte(sb.String())
	tok := TokenClaims{UserID: "m000000", Role: RoleUser}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCreate(body, tok); err != nil {
			b.Fatal(err)
		}
	}
}
