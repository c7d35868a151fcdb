package e2e

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

// Shared by the contract tests (auth, validation, devices, config, events): API.md's error answer and the
// bodies those tests build.

// contractErr checks that r is API.md's error answer: status, a body {"code","message","status"} with code and
// status as given, and a message naming field (when field is not empty).
func contractErr(t testing.TB, what string, r harness.Resp, status int, code, field string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d: %s", what, r.Status, status, r.Raw)
		return
	}
	got, _ := r.Body["code"].(string)
	if got != code {
		t.Errorf("%s: code %q, want %q: %s", what, got, code, r.Raw)
	}
	if s, _ := r.Body["status"].(float64); int(s) != status {
		t.Errorf("%s: body status %v, want %d: %s", what, r.Body["status"], status, r.Raw)
	}
	msg, ok := r.Body["message"].(string)
	if !ok || msg == "" {
		t.Errorf("%s: no message in the error body: %s", what, r.Raw)
		return
	}
	if field != "" && !strings.Contains(msg, field) {
		t.Errorf("%s: message %q does not name %q", what, msg, field)
	}
}

// contractMembers is a data.members list of the given user ids.
func contractMembers(ids ...string) []map[string]any {
	out := make([]map[string]any, len(ids))
	for i, id := range ids {
		out[i] = map[string]any{"user_id": id}
	}
	return out
}

// contractCall returns the "call" object of a call answer.
func contractCall(t testing.TB, r harness.Resp) map[string]any {
	t.Helper()
	c, ok := r.Body["call"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no call object: %s", r.Raw)
	}
	return c
}

// contractRaw sends a request with exactly the given Authorization header (none when empty) and body. A
// body whose length is unknown (not a *bytes.Reader or *strings.Reader) goes chunked.
func contractRaw(t testing.TB, e *harness.Env, method, path, authorization string, body io.Reader) harness.Resp {
	t.Helper()
	return harness.Do(t, e.HTTP(), method, e.URL+path, authorization, body)
}

type validationCase struct {
	name, method, path string
	body               any // string, []byte or a value to encode
	code, field        string
}

// validationRun sends each case with token and expects 400 with the case's code naming its field.
func validationRun(t *testing.T, e *harness.Env, token string, cases []validationCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Call(c.method, c.path, token, c.body)
			contractErr(t, c.method+" "+c.path, r, 400, c.code, c.field)
		})
	}
}

func TestMalformedBodiesAre400NamingTheField(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/exists", alice, map[string]any{
		"data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	cases := []validationCase{
		{"malformed JSON", "POST", "/v1/call/default/v1", `{"ring":`, "invalid_json", "body"},
		{"syntax error", "POST", "/v1/call/default/v2", `{"ring" true}`, "invalid_json", "body"},
		{"not an object", "POST", "/v1/call/default/v3", `[1,2]`, "invalid_json", "body"},
		{"unknown top-level field", "POST", "/v1/call/default/v4", `{"rign":true}`, "unknown_field", "rign"},
		{"unknown field in data", "POST", "/v1/call/default/v5", `{"data":{"memebrs":[]}}`, "unknown_field", "data.memebrs"},
		{"unknown field in a member", "POST", "/v1/call/default/v6",
			`{"data":{"members":[{"user_id":"bob","nmae":"Bob"}]}}`, "unknown_field", "data.members[0].nmae"},
		{"unknown field in settings_override.ring", "POST", "/v1/call/default/v7",
			`{"data":{"settings_override":{"ring":{"timeout_ms":5000}}}}`, "unknown_field", "data.settings_override.ring.timeout_ms"},
		{"ring not a boolean", "POST", "/v1/call/default/v8", `{"ring":"yes"}`, "invalid_json", "ring"},
		{"notify not a boolean", "POST", "/v1/call/default/v9", `{"notify":1}`, "invalid_json", "notify"},
		{"data not an object", "POST", "/v1/call/default/v10", `{"data":[]}`, "invalid_json", "data"},
		{"members not a list", "POST", "/v1/call/default/v11", `{"data":{"members":{"user_id":"bob"}}}`, "invalid_json", "data.members"},
		{"member user_id a number", "POST", "/v1/call/default/v12", `{"data":{"members":[{"user_id":5}]}}`, "invalid_json", "data.members[0].user_id"},
		{"timeout a string", "POST", "/v1/call/default/v13",
			`{"data":{"settings_override":{"ring":{"auto_cancel_timeout_ms":"30000"}}}}`, "invalid_json", "data.settings_override.ring.auto_cancel_timeout_ms"},
		{"timeout a fraction", "POST", "/v1/call/default/v14",
			`{"data":{"settings_override":{"ring":{"incoming_call_timeout_ms":1500.5}}}}`, "invalid_json", "data.settings_override.ring.incoming_call_timeout_ms"},
		{"custom not an object", "POST", "/v1/call/default/v15", `{"data":{"custom":"standup"}}`, "invalid_json", "data.custom"},
		{"team not a string", "POST", "/v1/call/default/v16", `{"data":{"team":7}}`, "invalid_json", "data.team"},
		{"second JSON value", "POST", "/v1/call/default/v17", `{"ring":false} {"ring":true}`, "invalid_json", "body"},
		{"trailing garbage", "POST", "/v1/call/default/v18", `{"ring":false}garbage`, "invalid_json", "body"},
		{"invalid UTF-8", "POST", "/v1/call/default/v19", []byte("{\"data\":{\"custom\":{\"topic\":\"\xff\xfe\"}}}"), "invalid_json", "body"},
		{"device voip_token not a boolean", "POST", "/v1/devices", `{"id":"t1","push_provider":"firebase","voip_token":"no"}`, "invalid_json", "voip_token"},
		{"device unknown field", "POST", "/v1/devices", `{"id":"t1","push_provider":"firebase","token":"t1"}`, "unknown_field", "token"},
		{"device trailing garbage", "POST", "/v1/devices", `{"id":"t1","push_provider":"firebase"}}`, "invalid_json", "body"},
		{"ring members_ids not a list", "POST", "/v1/call/default/exists/ring", `{"members_ids":"bob"}`, "invalid_json", "members_ids"},
		{"ring unknown field", "POST", "/v1/call/default/exists/ring", `{"members":["bob"]}`, "unknown_field", "members"},
		{"reject reason a number", "POST", "/v1/call/default/exists/reject", `{"reason":5}`, "invalid_json", "reason"},
		{"accept unknown field", "POST", "/v1/call/default/exists/accept", `{"accepted":true}`, "unknown_field", "accepted"},
		{"members unknown field in a member", "POST", "/v1/call/default/exists/members",
			`{"update_members":[{"user_id":"carol","extra":1}]}`, "unknown_field", "update_members[0].extra"},
		{"members remove_members not a list", "POST", "/v1/call/default/exists/members", `{"remove_members":"bob"}`, "invalid_json", "remove_members"},
	}
	validationRun(t, e, alice, cases)
	// None of the refused get-or-creates made a call.
	for i := 1; i <= 19; i++ {
		if r := e.Call("GET", fmt.Sprintf("/v1/call/default/v%d", i), alice, nil); r.Status != 404 {
			t.Errorf("refused call v%d exists afterwards: %d %s", i, r.Status, r.Raw)
		}
	}
}

func TestBodyOver8MiBIs400(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	auth := "Bearer " + e.Token("alice")
	const limit = 8 << 20
	// A valid body of exactly the limit: JSON white space pads it.
	exact := []byte(`{"ring":false` + strings.Repeat(" ", limit-len(`{"ring":false}`)) + `}`)
	if len(exact) != limit {
		t.Fatalf("built %d bytes", len(exact))
	}
	if r := contractRaw(t, e, "POST", "/v1/call/default/exact", auth, bytes.NewReader(exact)); r.Status != 201 {
		t.Errorf("body of exactly 8 MiB: status %d, want 201: %.300s", r.Status, r.Raw)
	}
	over := append(append([]byte(nil), exact[:limit-1]...), ' ', '}')
	r := contractRaw(t, e, "POST", "/v1/call/default/over", auth, bytes.NewReader(over))
	contractErr(t, "8 MiB + 1 with Content-Length", r, 400, "limit_exceeded", "body")
	// Without a Content-Length (chunked), the limit holds while reading.
	r = contractRaw(t, e, "POST", "/v1/call/default/over-chunked", auth, io.MultiReader(bytes.NewReader(over)))
	contractErr(t, "8 MiB + 1 chunked", r, 400, "limit_exceeded", "body")
	r = contractRaw(t, e, "POST", "/v1/devices", auth, io.MultiReader(bytes.NewReader(over)))
	contractErr(t, "8 MiB + 1 to /v1/devices", r, 400, "limit_exceeded", "body")
	for _, id := range []string{"over", "over-chunked"} {
		if r := e.Call("GET", "/v1/call/default/"+id, e.Token("alice"), nil); r.Status != 404 {
			t.Errorf("refused call %s exists afterwards: %d", id, r.Status)
		}
	}
}

func TestCallTypeAndIDMustMatchThePattern(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	ok64 := strings.Repeat("a", 64)
	e.MustCall(201, "POST", "/v1/call/Type_1-x/"+ok64, alice, nil)
	e.MustCall(200, "GET", "/v1/call/Type_1-x/"+ok64, alice, nil)

	bad := []struct{ name, typ, id, field string }{
		{"id with a dot", "default", "a.b", "id"},
		{"id with a space", "default", "a%20b", "id"},
		{"id of 65 characters", "default", strings.Repeat("a", 65), "id"},
		{"id not ASCII", "default", "%C3%A9t%C3%A9", "id"},
		{"id with an escaped slash", "default", "a%2Fb", "id"},
		{"id with a colon", "default", "a:b", "id"},
		{"type with a dot", "de.fault", "abc", "type"},
		{"type of 65 characters", strings.Repeat("t", 65), "abc", "type"},
		{"type with a space", "de%20fault", "abc", "type"},
	}
	for _, b := range bad {
		base := "/v1/call/" + b.typ + "/" + b.id
		for _, p := range []struct{ method, path string }{
			{"POST", base}, {"GET", base}, {"POST", base + "/accept"}, {"POST", base + "/ring"},
			{"POST", base + "/members"}, {"POST", base + "/mark_ended"},
		} {
			r := e.Call(p.method, p.path, alice, nil)
			contractErr(t, b.name+": "+p.method+" "+p.path, r, 400, "invalid_field", b.field)
		}
	}
}

func TestUserIDsMustMatchThePattern(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice, srv := e.Token("alice"), e.ServerToken()
	long := strings.Repeat("u", 129)
	okID := "a.b@c_d-E9" + strings.Repeat("x", 118) // 128 characters, every allowed kind
	e.MustCall(201, "POST", "/v1/call/default/exists", alice, map[string]any{
		"data": map[string]any{"members": contractMembers("alice", "bob", okID)},
	})
	withMember := func(id any) map[string]any {
		return map[string]any{"data": map[string]any{"members": []any{map[string]any{"user_id": "alice"}, map[string]any{"user_id": id}}}}
	}
	validationRun(t, e, alice, []validationCase{
		{"member id with a space", "POST", "/v1/call/default/u1", withMember("bob smith"), "invalid_field", "data.members[1].user_id"},
		{"member id of 129 characters", "POST", "/v1/call/default/u2", withMember(long), "invalid_field", "data.members[1].user_id"},
		{"member id with a slash", "POST", "/v1/call/default/u3", withMember("bob/x"), "invalid_field", "data.members[1].user_id"},
		{"member id empty", "POST", "/v1/call/default/u4", withMember(""), "invalid_field", "data.members[1].user_id"},
		{"member without user_id", "POST", "/v1/call/default/u5",
			map[string]any{"data": map[string]any{"members": []any{map[string]any{"role": "admin"}}}}, "invalid_field", "data.members[0].user_id"},
		{"member null", "POST", "/v1/call/default/u6", `{"data":{"members":[null]}}`, "invalid_field", "data.members[0]"},
		{"ring members_ids bad id", "POST", "/v1/call/default/exists/ring", map[string]any{"members_ids": []string{"bad id"}}, "invalid_field", "members_ids[0]"},
		{"update_members bad id", "POST", "/v1/call/default/exists/members",
			map[string]any{"update_members": contractMembers("carol", "x{y}")}, "invalid_field", "update_members[1].user_id"},
		{"remove_members bad id", "POST", "/v1/call/default/exists/members", map[string]any{"remove_members": []string{"a b"}}, "invalid_field", "remove_members[0]"},
	})
	validationRun(t, e, srv, []validationCase{
		{"server created_by_id bad", "POST", "/v1/call/default/u7",
			map[string]any{"data": map[string]any{"created_by_id": "bad id"}}, "invalid_field", "data.created_by_id"},
		{"server device user_id bad", "POST", "/v1/devices",
			map[string]any{"id": "t1", "push_provider": "firebase", "user_id": long}, "invalid_field", "user_id"},
		{"server devices query user_id bad", "GET", "/v1/devices?user_id=bad%20id", nil, "invalid_field", "user_id"},
		{"server accept user_id bad", "POST", "/v1/call/default/exists/accept", map[string]any{"user_id": "bob!"}, "invalid_field", "user_id"},
	})
}

func TestDuplicateMembersAre400(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/exists", alice, map[string]any{
		"data": map[string]any{"members": contractMembers("alice", "bob", "carol")},
	})
	validationRun(t, e, alice, []validationCase{
		{"data.members twice bob", "POST", "/v1/call/default/d1",
			map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob", "bob")}}, "invalid_field", "data.members[2].user_id"},
		{"update_members twice carol", "POST", "/v1/call/default/exists/members",
			map[string]any{"update_members": contractMembers("carol", "dave", "carol")}, "invalid_field", "update_members[2].user_id"},
		{"members_ids twice bob", "POST", "/v1/call/default/exists/ring",
			map[string]any{"members_ids": []string{"bob", "bob"}}, "invalid_field", "members_ids[1]"},
		{"remove_members twice bob", "POST", "/v1/call/default/exists/members",
			map[string]any{"remove_members": []string{"bob", "bob"}}, "invalid_field", "remove_members[1]"},
		{"added and removed at once", "POST", "/v1/call/default/exists/members",
			map[string]any{"update_members": contractMembers("dave"), "remove_members": []string{"dave"}}, "invalid_field", "remove_members[0]"},
	})
}

// validationIDs is n user ids u0..u(n-1).
func validationIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%d", i)
	}
	return out
}

// validationMembersJSON is a JSON list of n members u0..u(n-1).
func validationMembersJSON(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"user_id":"u%d"}`, i)
	}
	b.WriteByte(']')
	return b.String()
}

func TestMemberAndRingCountLimitsAre400(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")

	// The bodies of 100,001 members are written directly: encoding 100,001 maps under -race takes seconds.
	r := e.Call("POST", "/v1/call/default/huge", alice, `{"data":{"members":`+validationMembersJSON(100_001)+`}}`)
	contractErr(t, "create with 100,001 members", r, 400, "limit_exceeded", "data.members")
	if r := e.Call("GET", "/v1/call/default/huge", alice, nil); r.Status != 404 {
		t.Errorf("the refused call of 100,001 members exists: %d", r.Status)
	}

	e.MustCall(201, "POST", "/v1/call/default/small", alice, map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}})
	r = e.Call("POST", "/v1/call/default/small/members", alice, `{"update_members":`+validationMembersJSON(100_001)+`}`)
	contractErr(t, "update_members of 100,001", r, 400, "limit_exceeded", "update_members")

	// 1,000 callees ring; 1,001 do not.
	r = e.Call("POST", "/v1/call/default/ring1001", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers(append([]string{"alice"}, validationIDs(1001)...)...)},
	})
	contractErr(t, "ring 1,001 callees on create", r, 400, "limit_exceeded", "data.members")
	if r := e.Call("GET", "/v1/call/default/ring1001", alice, nil); r.Status != 404 {
		t.Errorf("the refused ring of 1,001 created its call: %d", r.Status)
	}
	e.MustCall(201, "POST", "/v1/call/default/ring1000", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers(append([]string{"alice"}, validationIDs(1000)...)...)},
	})
}

// A call may hold more members than can be rung at once: a /ring that would ring more than 1,000 is refused
// as the limit it is, whether the ids are listed or the ring means every member.
func TestRingOfMoreThan1000MembersAtOnceIsLimitExceeded(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/big", alice, map[string]any{
		"data": map[string]any{"members": contractMembers(append([]string{"alice"}, validationIDs(1001)...)...)},
	})
	r := e.Call("POST", "/v1/call/default/big/ring", alice, map[string]any{"members_ids": validationIDs(1001)})
	contractErr(t, "ring with 1,001 members_ids", r, 400, "limit_exceeded", "members_ids")
	r = e.Call("POST", "/v1/call/default/big/ring", alice, map[string]any{})
	contractErr(t, "ring every member of a 1,002-member call", r, 400, "limit_exceeded", "members_ids")
	r = e.Call("GET", "/v1/call/default/big?ring=true", alice, nil)
	contractErr(t, "get with ring=true of a 1,002-member call", r, 400, "limit_exceeded", "members_ids")
	if c := contractCall(t, e.MustCall(200, "GET", "/v1/call/default/big", alice, nil)); c["ringing"] != false {
		t.Errorf("refused ring left the call ringing: %v", c["ringing"])
	}
}

func TestCustomOver5KiBIs400(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	// {"x":"…"} marshals to 8 bytes plus the string.
	fits := map[string]any{"x": strings.Repeat("a", 5*1024-8)}
	over := map[string]any{"x": strings.Repeat("a", 5*1024-7)}

	e.MustCall(201, "POST", "/v1/call/default/fits", alice, map[string]any{"data": map[string]any{
		"custom": fits, "members": []any{map[string]any{"user_id": "alice"}, map[string]any{"user_id": "bob", "custom": fits}},
	}})
	validationRun(t, e, alice, []validationCase{
		{"call custom", "POST", "/v1/call/default/c1", map[string]any{"data": map[string]any{"custom": over}}, "limit_exceeded", "data.custom"},
		{"member custom", "POST", "/v1/call/default/c2", map[string]any{"data": map[string]any{
			"members": []any{map[string]any{"user_id": "alice"}, map[string]any{"user_id": "bob", "custom": over}},
		}}, "limit_exceeded", "data.members[1].custom"},
		{"update_members custom", "POST", "/v1/call/default/fits/members", map[string]any{
			"update_members": []any{map[string]any{"user_id": "carol", "custom": over}},
		}, "limit_exceeded", "update_members[0].custom"},
	})
}

func TestRingTimeoutsOutside1000To180000AreRefused(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	with := func(field string, v int) map[string]any {
		return map[string]any{"data": map[string]any{"settings_override": map[string]any{"ring": map[string]any{field: v}}}}
	}
	var cases []validationCase
	for _, f := range []string{"auto_cancel_timeout_ms", "incoming_call_timeout_ms"} {
		for _, v := range []int{999, 180_001, -1, 1} {
			cases = append(cases, validationCase{fmt.Sprintf("%s=%d", f, v), "POST", fmt.Sprintf("/v1/call/default/%s-%d", f, v+10),
				with(f, v), "invalid_field", "data.settings_override.ring." + f})
		}
		for _, v := range []int{1000, 180_000} {
			r := e.MustCall(201, "POST", fmt.Sprintf("/v1/call/default/ok-%s-%d", f, v), alice, with(f, v))
			ring, _ := contractCall(t, r)["settings"].(map[string]any)["ring"].(map[string]any)
			if ring[f] != float64(v) {
				t.Errorf("%s=%d: settings.ring is %v", f, v, ring)
			}
		}
	}
	validationRun(t, e, alice, cases)
}

func TestStartsAtMustBeRFC3339(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	at := func(v any) map[string]any { return map[string]any{"data": map[string]any{"starts_at": v}} }
	validationRun(t, e, alice, []validationCase{
		{"words", "POST", "/v1/call/default/s1", at("tomorrow"), "invalid_field", "data.starts_at"},
		{"date only", "POST", "/v1/call/default/s2", at("2026-12-01"), "invalid_field", "data.starts_at"},
		{"no zone", "POST", "/v1/call/default/s3", at("2026-12-01T10:00:00"), "invalid_field", "data.starts_at"},
		{"space separated", "POST", "/v1/call/default/s4", at("2026-12-01 10:00:00Z"), "invalid_field", "data.starts_at"},
		{"a number", "POST", "/v1/call/default/s5", at(1764583200), "invalid_json", "data.starts_at"},
	})
	r := e.MustCall(201, "POST", "/v1/call/default/ok", alice, at("2026-12-01T10:00:00Z"))
	if got := contractCall(t, r)["starts_at"]; got != "2026-12-01T10:00:00Z" {
		t.Errorf("starts_at answered %v", got)
	}
}

func TestRejectReasonMustBeKnown(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.MustCall(201, "POST", "/v1/call/default/r1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	bob := e.Token("bob")
	for _, reason := range []string{"nope", "DECLINE", "declined", " busy"} {
		r := e.Call("POST", "/v1/call/default/r1/reject", bob, map[string]any{"reason": reason})
		contractErr(t, "reason "+reason, r, 400, "invalid_field", "reason")
	}
	c := contractCall(t, e.MustCall(200, "GET", "/v1/call/default/r1", bob, nil))
	if rej, _ := c["session"].(map[string]any)["rejected_by"].(map[string]any); len(rej) != 0 || c["ringing"] != true {
		t.Errorf("a refused reject changed the call: ringing %v rejected_by %v", c["ringing"], rej)
	}
	e.MustCall(200, "POST", "/v1/call/default/r1/reject", bob, map[string]any{"reason": "busy"})
}

func TestRingTrueWithoutMembersIs400(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	validationRun(t, e, e.Token("alice"), []validationCase{
		{"no data", "POST", "/v1/call/default/m1", map[string]any{"ring": true}, "invalid_field", "data.members"},
		{"data without members", "POST", "/v1/call/default/m2", map[string]any{"ring": true, "data": map[string]any{"custom": map[string]any{}}}, "invalid_field", "data.members"},
		{"empty members", "POST", "/v1/call/default/m3", map[string]any{"ring": true, "data": map[string]any{"members": []any{}}}, "invalid_field", "data.members"},
	})
}

func TestRingMembersIDsMustNameMembers(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/r1", alice, map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}})
	r := e.Call("POST", "/v1/call/default/r1/ring", alice, map[string]any{"members_ids": []string{"bob", "zed"}})
	contractErr(t, "ring a non-member", r, 400, "invalid_field", "members_ids[1]")
	if c := contractCall(t, e.MustCall(200, "GET", "/v1/call/default/r1", alice, nil)); c["ringing"] != false {
		t.Errorf("a refused ring started ringing")
	}
}

func TestUnknownCallIs404(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	for _, tok := range []struct{ name, token string }{{"user", e.Token("alice")}, {"server", e.ServerToken()}} {
		var userID map[string]any
		q := ""
		if tok.name == "server" {
			userID, q = map[string]any{"user_id": "alice"}, "?user_id=alice"
		}
		for _, p := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/call/default/nope" + q, nil},
			{"GET", "/v1/call/default/nope?ring=true" + strings.Replace(q, "?", "&", 1), nil},
			{"POST", "/v1/call/default/nope/accept", userID},
			{"POST", "/v1/call/default/nope/reject", userID},
			{"POST", "/v1/call/default/nope/join", userID},
			{"POST", "/v1/call/default/nope/leave", userID},
			{"POST", "/v1/call/default/nope/ring", userID},
			{"POST", "/v1/call/default/nope/mark_ended", userID},
			{"POST", "/v1/call/default/nope/members", map[string]any{"update_members": contractMembers("bob")}},
		} {
			r := e.Call(p.method, p.path, tok.token, p.body)
			contractErr(t, tok.name+": "+p.method+" "+p.path, r, 404, "not_found", "")
		}
	}
}

func TestTransitionsOfAnEndedCallAre409(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice, bob := e.Token("alice"), e.Token("bob")
	e.MustCall(201, "POST", "/v1/call/default/e1", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	e.MustCall(200, "POST", "/v1/call/default/e1/mark_ended", alice, nil)
	for _, p := range []struct {
		path, token string
	}{
		{"/v1/call/default/e1/accept", bob},
		{"/v1/call/default/e1/reject", bob},
		{"/v1/call/default/e1/ring", alice},
		{"/v1/call/default/e1/join", bob},
	} {
		contractErr(t, "POST "+p.path, e.Call("POST", p.path, p.token, nil), 409, "conflict", "")
	}
	// The call is still there to read.
	c := contractCall(t, e.MustCall(200, "GET", "/v1/call/default/e1", bob, nil))
	if c["ended_at"] == nil {
		t.Errorf("ended call has no ended_at")
	}
}

func TestBadQueryParametersAre400NamingThem(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/q1", alice, map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}})
	validationRun(t, e, alice, []validationCase{
		{"ring not a boolean", "GET", "/v1/call/default/q1?ring=maybe", nil, "invalid_field", "ring"},
		{"notify not a boolean", "GET", "/v1/call/default/q1?notify=yes", nil, "invalid_field", "notify"},
		{"unknown calling_state", "GET", "/v1/calls?calling_state=busy", nil, "invalid_field", "calling_state"},
	})
}

// Odd but possible inputs: whatever the answer, it is never a 5xx, and a refusal has the error body.
func TestOddInputsAreNeverA500(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	bodies := []string{
		`{"ring":null,"notify":null,"data":null}`,
		`{"data":{"members":null,"custom":null,"settings_override":null,"starts_at":null,"team":null}}`,
		`{"data":{"custom":` + deep + `}}`,
		`{"data":{"settings_override":{"ring":{"auto_cancel_timeout_ms":1e400}}}}`,
		`{"data":{"settings_override":{"ring":{"auto_cancel_timeout_ms":99999999999999999999}}}}`,
		`{"data":{"custom":{"n":123456789012345678901234567890}}}`,
		`{"ring":true,"ring":false}`,
		`{"data":{"members":[{"user_id":"bob","user_id":"carol"}]}}`,
		`{"data":{"custom":{"s":"\ud800"}}}`,
		`{"data":{"team":"` + strings.Repeat("t", 200) + `"}}`,
		`{"data":{"members":[{"user_id":"bob","role":"` + strings.Repeat("r", 100) + `"}]}}`,
		`{"data":{"members":[{"user_id":"bob","role":"a b"}]}}`,
		"\x00",
		`"just a string"`,
		`null`,
		`{}` + "\n\n",
	}
	for i, b := range bodies {
		path := fmt.Sprintf("/v1/call/default/odd%d", i)
		for _, p := range []string{path, "/v1/devices"} {
			r := e.Call("POST", p, alice, b)
			if r.Status >= 500 {
				t.Errorf("POST %s %.80q: %d %s", p, b, r.Status, r.Raw)
			} else if r.Status >= 400 {
				contractErr(t, fmt.Sprintf("POST %s %.80q", p, b), r, r.Status, fmt.Sprint(r.Body["code"]), "")
			}
		}
	}
}
