package e2e

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/tests/harness"
)

// authSign signs claims with method and key, for tokens ringer's own minting refuses to make.
func authSign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// authBody is s as a request body, or no body when s is empty.
func authBody(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

// authEndpoints are requests under /v1/ that each need a token.
var authEndpoints = []struct{ method, path, body string }{
	{"GET", "/v1/devices", ""},
	{"POST", "/v1/devices", `{"id":"t1","push_provider":"firebase"}`},
	{"DELETE", "/v1/devices?id=t1", ""},
	{"POST", "/v1/call/default/a1", `{}`},
	{"GET", "/v1/call/default/a1", ""},
	{"POST", "/v1/call/default/a1/accept", `{}`},
	{"POST", "/v1/call/default/a1/mark_ended", `{}`},
	{"GET", "/v1/calls", ""},
	{"GET", "/v1/events", ""},
}

func TestAuthMissingOrBadTokenIs401(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	secret := []byte(e.Secret)
	hour := time.Now().Add(time.Hour).Unix()
	wrongSecret, err := api.MintToken([]byte("not-"+e.Secret), api.TokenClaims{UserID: "alice"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, header string }{
		{"no Authorization header", ""},
		{"scheme Token", "Token " + e.Token("alice")},
		{"scheme Basic", "Basic YWxpY2U6c2VjcmV0"},
		{"Bearer alone", "Bearer"},
		{"Bearer and spaces", "Bearer    "},
		{"not a JWT", "Bearer not-a-jwt"},
		{"three garbage parts", "Bearer a.b.c"},
		{"wrong secret", "Bearer " + wrongSecret},
		{"alg none", "Bearer " + authSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			jwt.MapClaims{"user_id": "alice", "exp": hour})},
		{"alg HS512 with the right secret", "Bearer " + authSign(t, jwt.SigningMethodHS512, secret,
			jwt.MapClaims{"user_id": "alice", "exp": hour})},
		{"expired", "Bearer " + authSign(t, jwt.SigningMethodHS256, secret,
			jwt.MapClaims{"user_id": "alice", "exp": time.Now().Add(-time.Minute).Unix()})},
		{"not valid yet", "Bearer " + authSign(t, jwt.SigningMethodHS256, secret,
			jwt.MapClaims{"user_id": "alice", "nbf": time.Now().Add(time.Hour).Unix()})},
		{"neither user_id nor server", "Bearer " + authSign(t, jwt.SigningMethodHS256, secret,
			jwt.MapClaims{"name": "Alice", "exp": hour})},
		{"user_id of a bad shape", "Bearer " + authSign(t, jwt.SigningMethodHS256, secret,
			jwt.MapClaims{"user_id": "alice smith", "exp": hour})},
		{"tampered payload", "Bearer " + authTamper(t, e.Token("alice"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, ep := range authEndpoints {
				r := contractRaw(t, e, ep.method, ep.path, c.header, authBody(ep.body))
				contractErr(t, ep.method+" "+ep.path, r, 401, "unauthorized", "")
			}
		})
	}
	// Nothing was registered or created on the way.
	r := e.MustCall(200, "GET", "/v1/devices", e.Token("alice"), nil)
	if ds, _ := r.Body["devices"].([]any); len(ds) != 0 {
		t.Errorf("a refused request registered a device: %s", r.Raw)
	}
	e.MustCall(404, "GET", "/v1/call/default/a1", e.Token("alice"), nil)
}

// authTamper changes the payload of a signed token (user_id alice → mallory) and keeps its signature.
func authTamper(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	forged := authSign(t, jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{"user_id": "mallory"})
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

// authCase is a request that names in field what the token may not do.
type authCase struct {
	method, path string
	body         any
	field        string
}

// authRefused sends each request with token and fails t unless each is refused with status and the error
// body of code naming its field.
func authRefused(t *testing.T, e *harness.Env, token string, status int, code string, cases []authCase) {
	t.Helper()
	for _, c := range cases {
		r := e.Call(c.method, c.path, token, c.body)
		contractErr(t, c.method+" "+c.path, r, status, code, c.field)
	}
}

func TestAuthUserTokenActingForAnotherUserIs403(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Android("bob")
	e.MustCall(201, "POST", "/v1/call/default/a1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob", "mallory")},
	})
	mallory := e.Token("mallory")
	asBob := map[string]any{"user_id": "bob"}
	authRefused(t, e, mallory, 403, "forbidden", []authCase{
		{"POST", "/v1/devices", map[string]any{"id": "m1", "push_provider": "firebase", "user_id": "bob"}, "user_id"},
		{"GET", "/v1/devices?user_id=bob", nil, "user_id"},
		{"DELETE", "/v1/devices?id=bob-android&user_id=bob", nil, "user_id"},
		{"POST", "/v1/call/default/a2", map[string]any{"data": map[string]any{"created_by_id": "bob"}}, "data.created_by_id"},
		{"GET", "/v1/call/default/a1?user_id=bob", nil, "user_id"},
		{"POST", "/v1/call/default/a1/accept", asBob, "user_id"},
		{"POST", "/v1/call/default/a1/reject", map[string]any{"user_id": "bob", "reason": "decline"}, "user_id"},
		{"POST", "/v1/call/default/a1/join", asBob, "user_id"},
		{"POST", "/v1/call/default/a1/leave", asBob, "user_id"},
		{"POST", "/v1/call/default/a1/ring", map[string]any{"user_id": "bob", "members_ids": []string{"alice"}}, "user_id"},
		{"POST", "/v1/call/default/a1/mark_ended", asBob, "user_id"},
		{"GET", "/v1/calls?user_id=bob", nil, "user_id"},
		{"GET", "/v1/events?user_id=bob", nil, "user_id"},
	})
	// Nothing happened in bob's name.
	c := contractCall(t, e.MustCall(200, "GET", "/v1/call/default/a1", e.Token("bob"), nil))
	s, _ := c["session"].(map[string]any)
	if acc, _ := s["accepted_by"].(map[string]any); len(acc) != 0 || c["ringing"] != true || c["ended_at"] != nil {
		t.Errorf("call changed by refused requests: ringing %v ended_at %v session %v", c["ringing"], c["ended_at"], s)
	}
	r := e.MustCall(200, "GET", "/v1/devices", e.Token("bob"), nil)
	if ds, _ := r.Body["devices"].([]any); len(ds) != 1 {
		t.Errorf("bob's devices changed: %s", r.Raw)
	}
	e.MustCall(404, "GET", "/v1/call/default/a2", e.Token("bob"), nil)
}

func TestAuthTokenClaimingServerAndUserIs403(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	both := "Bearer " + authSign(t, jwt.SigningMethodHS256, []byte(e.Secret),
		jwt.MapClaims{"server": true, "user_id": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	for _, ep := range authEndpoints {
		r := contractRaw(t, e, ep.method, ep.path, both, authBody(ep.body))
		contractErr(t, ep.method+" "+ep.path, r, 403, "forbidden", "")
	}
}

func TestAuthServerTokenActsForTheUserItNames(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	srv := e.ServerToken()
	e.Android("bob", "alice")

	r := e.MustCall(201, "POST", "/v1/call/default/s1", srv, map[string]any{
		"ring": true, "data": map[string]any{"created_by_id": "alice", "members": contractMembers("alice", "bob")},
	})
	c := contractCall(t, r)
	if by, _ := c["created_by"].(map[string]any); by["id"] != "alice" {
		t.Errorf("created_by %v, want alice", c["created_by"])
	}
	// alice is the caller: bob rings, alice's own device does not.
	e.WaitFCM("bob-android", 1)
	if n := len(e.FCM.MessagesTo("alice-android")); n != 0 {
		t.Errorf("the caller alice got %d pushes", n)
	}

	r = e.MustCall(200, "POST", "/v1/call/default/s1/accept", srv, map[string]any{"user_id": "bob"})
	s, _ := contractCall(t, r)["session"].(map[string]any)
	if acc, _ := s["accepted_by"].(map[string]any); acc["bob"] == nil || len(acc) != 1 {
		t.Errorf("accepted_by %v, want bob alone", s["accepted_by"])
	}

	r = e.MustCall(200, "GET", "/v1/devices?user_id=bob", srv, nil)
	ds, _ := r.Body["devices"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["id"] != "bob-android" || ds[0].(map[string]any)["user_id"] != "bob" {
		t.Errorf("bob's devices through the server token: %s", r.Raw)
	}
	r = e.MustCall(201, "POST", "/v1/devices", srv, map[string]any{"id": "carol-android", "push_provider": "firebase", "user_id": "carol"})
	if r.Body["user_id"] != "carol" {
		t.Errorf("registered for %v, want carol", r.Body["user_id"])
	}
	r = e.MustCall(200, "GET", "/v1/devices", e.Token("carol"), nil)
	if ds, _ := r.Body["devices"].([]any); len(ds) != 1 {
		t.Errorf("carol's devices: %s", r.Raw)
	}
}

func TestAuthServerTokenMustNameTheUser(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	srv := e.ServerToken()
	e.MustCall(201, "POST", "/v1/call/default/exists", e.Token("alice"), map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}})
	authRefused(t, e, srv, 400, "invalid_field", []authCase{
		{"POST", "/v1/call/default/n1", nil, "data.created_by_id"},
		{"POST", "/v1/call/default/n2", map[string]any{"data": map[string]any{"members": contractMembers("alice", "bob")}}, "data.created_by_id"},
		{"POST", "/v1/call/default/n3", map[string]any{"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")}}, "data.created_by_id"},
		{"POST", "/v1/devices", map[string]any{"id": "t1", "push_provider": "firebase"}, "user_id"},
		{"GET", "/v1/devices", nil, "user_id"},
		{"DELETE", "/v1/devices?id=t1", nil, "user_id"},
		{"POST", "/v1/call/default/exists/accept", nil, "user_id"},
		{"GET", "/v1/calls", nil, "user_id"},
		{"GET", "/v1/events", nil, "user_id"},
	})
	for _, id := range []string{"n1", "n2", "n3"} {
		e.MustCall(404, "GET", "/v1/call/default/"+id, srv, nil)
	}
}

func TestAuthTeamCallIsForbiddenOutsideTheTeam(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	team := func(user string, teams ...string) string {
		return e.TokenWith(api.TokenClaims{UserID: user, Name: user, Teams: teams})
	}
	aliceBlue := team("alice", "blue")
	// Only the backend puts other users into a team call (API.md, "Teams").
	e.MustCall(201, "POST", "/v1/call/default/t1", e.ServerToken(), map[string]any{
		"data": map[string]any{"created_by_id": "alice", "team": "blue", "members": contractMembers("alice", "bob")},
	})
	// Creating a call of a team one's token does not list is refused too.
	contractErr(t, "create in a team not in the token", e.Call("POST", "/v1/call/default/t2", e.Token("bob"), map[string]any{
		"data": map[string]any{"team": "blue", "members": contractMembers("alice", "bob")},
	}), 403, "forbidden", "")
	e.MustCall(404, "GET", "/v1/call/default/t2", e.ServerToken(), nil)

	for _, out := range []struct{ name, token string }{{"no teams", e.Token("bob")}, {"other team", team("bob", "red")}} {
		for _, p := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/call/default/t1", nil},
			{"POST", "/v1/call/default/t1", nil},
			{"POST", "/v1/call/default/t1/join", nil},
			{"POST", "/v1/call/default/t1/ring", map[string]any{"members_ids": []string{"alice"}}},
			{"POST", "/v1/call/default/t1/ring", nil},
		} {
			contractErr(t, out.name+": "+p.method+" "+p.path, e.Call(p.method, p.path, out.token, p.body), 403, "forbidden", "")
		}
	}
	c := contractCall(t, e.MustCall(200, "GET", "/v1/call/default/t1", aliceBlue, nil))
	if c["ringing"] != false || c["team"] != "blue" {
		t.Errorf("after refused requests: ringing %v team %v", c["ringing"], c["team"])
	}

	bobBlue := team("bob", "red", "blue")
	e.MustCall(200, "GET", "/v1/call/default/t1", bobBlue, nil)
	e.MustCall(200, "POST", "/v1/call/default/t1/ring", bobBlue, map[string]any{"members_ids": []string{"alice"}})
	r := e.MustCall(200, "POST", "/v1/call/default/t1/join", bobBlue, nil)
	s, _ := contractCall(t, r)["session"].(map[string]any)
	if ps, _ := s["participants"].([]any); len(ps) == 0 {
		t.Errorf("bob joined but participants is %v", s["participants"])
	}
	e.MustCall(200, "GET", "/v1/call/default/t1?user_id=bob", e.ServerToken(), nil)
}

func TestAuthMarkEndedNeedsTheEndCallRight(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	create := func(id string) {
		e.MustCall(201, "POST", "/v1/call/default/"+id, alice, map[string]any{"ring": true, "data": map[string]any{
			"members": []any{
				map[string]any{"user_id": "alice"}, map[string]any{"user_id": "bob", "role": "user"},
				map[string]any{"user_id": "dave", "role": "admin"},
			},
		}})
	}
	create("refused")
	for _, who := range []struct{ name, token string }{
		{"plain member", e.Token("bob")},
		{"plain non-member", e.Token("mallory")},
		{"user role in token", e.TokenWith(api.TokenClaims{UserID: "bob", Role: "user"})},
	} {
		contractErr(t, "mark_ended by "+who.name, e.Call("POST", "/v1/call/default/refused/mark_ended", who.token, nil), 403, "forbidden", "")
	}
	if c := contractCall(t, e.MustCall(200, "GET", "/v1/call/default/refused", alice, nil)); c["ended_at"] != nil {
		t.Errorf("refused mark_ended ended the call")
	}

	for _, who := range []struct {
		name, token string
	}{
		{"creator", alice},
		{"admin member", e.Token("dave")},
		{"admin user token", e.TokenWith(api.TokenClaims{UserID: "eve", Role: "admin"})},
		{"server token", e.ServerToken()},
	} {
		id := "by-" + map[string]string{"creator": "creator", "admin member": "admin-member", "admin user token": "admin-token", "server token": "server"}[who.name]
		create(id)
		r := e.Call("POST", "/v1/call/default/"+id+"/mark_ended", who.token, nil)
		if r.Status != 200 {
			t.Errorf("mark_ended by %s: %d %s", who.name, r.Status, r.Raw)
			continue
		}
		if c := contractCall(t, r); c["ended_at"] == nil {
			t.Errorf("mark_ended by %s: ended_at is null", who.name)
		}
	}
}

func TestAuthMembersUpdateNeedsCreatorAdminMemberOrServer(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/m1", alice, map[string]any{"data": map[string]any{
		"members": []any{map[string]any{"user_id": "alice"}, map[string]any{"user_id": "bob"}, map[string]any{"user_id": "dave", "role": "admin"}},
	}})
	bob := e.Token("bob")
	contractErr(t, "plain member adds", e.Call("POST", "/v1/call/default/m1/members", bob,
		map[string]any{"update_members": contractMembers("frank")}), 403, "forbidden", "")
	contractErr(t, "plain member removes", e.Call("POST", "/v1/call/default/m1/members", bob,
		map[string]any{"remove_members": []string{"dave"}}), 403, "forbidden", "")
	contractErr(t, "plain member promotes itself", e.Call("POST", "/v1/call/default/m1/members", bob,
		map[string]any{"update_members": []any{map[string]any{"user_id": "bob", "role": "admin"}}}), 403, "forbidden", "")
	contractErr(t, "non-member adds", e.Call("POST", "/v1/call/default/m1/members", e.Token("mallory"),
		map[string]any{"update_members": contractMembers("mallory")}), 403, "forbidden", "")

	e.MustCall(200, "POST", "/v1/call/default/m1/members", alice, map[string]any{"update_members": contractMembers("frank")})
	e.MustCall(200, "POST", "/v1/call/default/m1/members", e.Token("dave"), map[string]any{"update_members": contractMembers("gina")})
	r := e.MustCall(200, "POST", "/v1/call/default/m1/members", e.ServerToken(), map[string]any{"update_members": contractMembers("hank")})
	got := map[string]string{}
	for _, m := range r.Body["members"].([]any) {
		m := m.(map[string]any)
		got[m["user_id"].(string)], _ = m["role"].(string)
	}
	for _, want := range []string{"alice", "bob", "dave", "frank", "gina", "hank"} {
		if _, ok := got[want]; !ok {
			t.Errorf("members %v lack %s", got, want)
		}
	}
	if _, ok := got["mallory"]; ok || got["bob"] == "admin" || len(got) != 6 {
		t.Errorf("refused updates changed members: %v", got)
	}
}
