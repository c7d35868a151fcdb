package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

// The hardening tests of issue 12 that one request shows: sizes counted before decoding, strict keys,
// device token shapes and counts, the dashboard's origin check, the HTTP server's timeouts.

// hardeningCustom is a custom object of about n bytes as sent, with many small keys: the shape that costs
// the most to decode.
func hardeningCustom(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; b.Len() < n-32; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	b.WriteString("}")
	return b.String()
}

func TestCustomOver5KiBAsSentIsRefusedBeforeDecoding(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/c0", alice, map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}})

	// 1,000 escaped letters are 6,000 bytes as sent and 1 KiB decoded: what was sent is what counts.
	escaped := `{"blob":"` + strings.Repeat(`\u0041`, 1000) + `"}`
	for _, c := range []struct{ path, body, field string }{
		{"/v1/call/default/c1", `{"data":{"custom":` + escaped + `}}`, "data.custom"},
		{"/v1/call/default/c1", `{"data":{"members":[{"user_id":"alice","custom":` + escaped + `}]}}`, "data.members[0].custom"},
		{"/v1/call/default/c0/members", `{"update_members":[{"user_id":"bob","custom":` + escaped + `}]}`, "update_members[0].custom"},
	} {
		r := e.Call("POST", c.path, alice, c.body)
		contractErr(t, c.field+" of 6,000 bytes as sent", r, 400, "limit_exceeded", c.field)
	}
	// Nothing was stored by the refusals.
	e.MustCall(404, "GET", "/v1/call/default/c1", alice, nil)

	// Nearly 8 MiB of custom: the answer names the size as sent, which the server knows without decoding.
	big := `{"data":{"members":[{"user_id":"alice"}],"custom":` + hardeningCustom(8<<20-1024) + `}}`
	r := e.Call("POST", "/v1/call/default/c2", alice, big)
	contractErr(t, "8 MiB custom", r, 400, "limit_exceeded", "data.custom")
	if msg, _ := r.Body["message"].(string); !strings.Contains(msg, "as sent") {
		t.Errorf("8 MiB custom: message %q does not say the size as sent was measured", msg)
	}
	// Up to 5 KiB as sent is stored.
	e.MustCall(201, "POST", "/v1/call/default/c3", alice, `{"data":{"custom":`+hardeningCustom(5*1024)+`}}`)
}

func TestKeysMatchFieldNamesExactlyAndOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Device("bob", "bob-android-strict-keys", "firebase", false)
	alice := e.Token("alice")
	for _, c := range []struct{ what, path, body, code, field string }{
		{"upper-case RING and Data", "/v1/call/default/k1", `{"RING":true,"Data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`, "unknown_field", "RING"},
		{"ring given twice", "/v1/call/default/k1", `{"ring":false,"ring":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`, "invalid_json", "ring"},
		{"member user_id given twice", "/v1/call/default/k1", `{"ring":true,"data":{"members":[{"user_id":"alice"},{"user_id":"carol","user_id":"bob"}]}}`, "invalid_json", "data.members[1].user_id"},
		{"custom key given twice", "/v1/call/default/k1", `{"data":{"members":[{"user_id":"alice"}],"custom":{"video":false,"video":true}}}`, "invalid_json", "data.custom.video"},
		{"member key case", "/v1/call/default/k1", `{"data":{"members":[{"User_Id":"bob"}]}}`, "unknown_field", "data.members[0].User_Id"},
		{"device key case", "/v1/devices", `{"ID":"bob-android-strict-keys-2","push_provider":"firebase"}`, "unknown_field", "ID"},
	} {
		contractErr(t, c.what, e.Call("POST", c.path, alice, c.body), 400, c.code, c.field)
	}
	e.Quiet()
	if n := len(e.FCM.MessagesTo("bob-android-strict-keys")); n != 0 {
		t.Errorf("bob got %d pushes from refused bodies", n)
	}
	e.MustCall(404, "GET", "/v1/call/default/k1", alice, nil)
	// The exact names ring, as an escaped key spelling them does.
	e.MustCall(201, "POST", "/v1/call/default/k2", alice, `{"r\u0069ng":true,"data":{"members":[{"user_id":"alice"},{"user_id":"bob"}]}}`)
	e.WaitFCM("bob-android-strict-keys", 1)
}
