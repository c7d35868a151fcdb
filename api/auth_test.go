package api

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

func signed(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func TestBadTokensAre401(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).Unix()
	good := jwt.MapClaims{"user_id": "alice", "exp": future}
	cases := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"not bearer", "Basic YWxpY2U6cHc="},
		{"bearer without token", "Bearer "},
		{"garbage", "Bearer not.a.jwt"},
		{"wrong secret", "Bearer " + signed(t, jwt.SigningMethodHS256, []byte("another secret"), good)},
		{"bad signature", "Bearer " + func() string {
			s := signed(t, jwt.SigningMethodHS256, testSecret, good)
			return s[:len(s)-4] + "AAAA"
		}()},
		{"alg none", "Bearer " + signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)},
		{"HS512 with the right secret", "Bearer " + signed(t, jwt.SigningMethodHS512, testSecret, good)},
		{"RS256", "Bearer " + signed(t, jwt.SigningMethodRS256, rsaKey, good)},
		{"expired", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice", "exp": time.Now().Add(-time.Minute).Unix()})},
		{"not valid yet", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice", "nbf": future})},
		{"no user_id and no server", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"name": "alice"})},
		{"server false and no user_id", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"server": false})},
		{"bad user_id", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "al ice"})},
		{"user_id too long", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": strings.Repeat("a", 129)})},
		{"bad role", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice", "role": "root"})},
		{"user_id not a string", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": 7})},
		{"server as a string", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"server": "true"})},
		{"teams not a list", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice", "teams": "blue"})},
	}
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, target := range []string{"/v1/calls", "/v1/call/default/abc", "/v1/devices", "/v1/events"} {
				r, _ := http.NewRequest("GET", target, nil)
				if c.header != "" {
					r.Header.Set("Authorization", c.header)
				}
				w := httptest.NewRecorder()
				e.h.ServeHTTP(w, r)
				wantError(t, w, http.StatusUnauthorized, wire.CodeUnauthorized, "")
			}
		})
	}
	if strings.Contains(e.logs.String(), "Bearer") || strings.Contains(e.logs.String(), "eyJ") {
		t.Errorf("a token reached the log:\n%s", e.logs)
	}
}

func TestServerTokenWithoutExpIsAccepted(t *testing.T) {
	e := newEnv(t)
	tok := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"server": true})
	if w := e.do("GET", "/v1/calls?user_id=alice", tok, ""); w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; %s", w.Code, w.Body)
	}
}

func TestUserTokenWithoutExpIs401(t *testing.T) {
	e := newEnv(t)
	tok := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice"})
	b := wantError(t, e.do("GET", "/v1/calls", tok, ""), http.StatusUnauthorized, wire.CodeUnauthorized, "")
	if !strings.Contains(b.Message, "must carry exp") {
		t.Errorf("message %q does not say the token needs exp", b.Message)
	}
	if method, _, _ := e.calls.lastCall(); method != "" {
		t.Errorf("the store was asked %s", method)
	}
}

func TestUserTokenClaimingServerIs403(t *testing.T) {
	e := newEnv(t)
	tok := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice", "server": true})
	wantError(t, e.do("GET", "/v1/calls", tok, ""), http.StatusForbidden, wire.CodeForbidden, "")
	wantError(t, e.do("POST", "/v1/call/default/abc", tok, `{}`), http.StatusForbidden, wire.CodeForbidden, "")
}

func TestUserTokenActingForAnotherUserIs403(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	alice := userToken(t, "alice")
	cases := []struct{ method, target, body string }{
		{"POST", "/v1/call/default/new", `{"data":{"created_by_id":"bob"}}`},
		{"GET", "/v1/call/default/abc?notify=true&user_id=bob", ""},
		{"POST", "/v1/call/default/abc/members", `{"user_id":"bob","update_members":[{"user_id":"carol"}]}`},
		{"POST", "/v1/call/default/abc/ring", `{"user_id":"bob"}`},
		{"POST", "/v1/call/default/abc/accept", `{"user_id":"bob"}`},
		{"POST", "/v1/call/default/abc/reject", `{"user_id":"bob"}`},
		{"POST", "/v1/call/default/abc/join", `{"user_id":"bob"}`},
		{"POST", "/v1/call/default/abc/leave", `{"user_id":"bob"}`},
		{"POST", "/v1/call/default/abc/mark_ended", `{"user_id":"bob"}`},
		{"GET", "/v1/calls?user_id=bob", ""},
		{"GET", "/v1/events?user_id=bob", ""},
		{"GET", "/v1/devices?user_id=bob", ""},
		{"DELETE", "/v1/devices?id=tok&user_id=bob", ""},
		{"POST", "/v1/devices", `{"id":"tok","push_provider":"firebase","user_id":"bob"}`},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			wantError(t, e.do(c.method, c.target, alice, c.body), http.StatusForbidden, wire.CodeForbidden, "")
		})
	}
}

func TestUserTokenNamingItselfActsAsItself(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	tok := mint(t, TokenClaims{UserID: "bob", Name: "Bob", Image: "http://img", Role: RoleAdmin, Teams: []string{"blue"}}, time.Hour)
	w := e.do("POST", "/v1/call/default/abc/accept", tok, `{"user_id":"bob"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d; %s", w.Code, w.Body)
	}
	method, a, _ := e.calls.lastCall()
	want := calls.Actor{UserID: "bob", Name: "Bob", Image: "http://img", Role: RoleAdmin, Teams: []string{"blue"}}
	if method != "Accept" || a.UserID != want.UserID || a.Name != want.Name || a.Image != want.Image || a.Role != want.Role ||
		len(a.Teams) != 1 || a.Teams[0] != "blue" || a.Server {
		t.Errorf("%s by %+v, want Accept by %+v", method, a, want)
	}
}

func TestUserTokenRoleDefaultsToUser(t *testing.T) {
	e := newEnv(t)
	tok := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	e.do("GET", "/v1/calls", tok, "")
	if _, a, _ := e.calls.lastCall(); a.Role != RoleUser {
		t.Errorf("role = %q, want %q", a.Role, RoleUser)
	}
}

func TestServerTokenActsForTheUserItNames(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	srv := serverToken(t)
	cases := []struct {
		method, target, body string
		calls                string // the Calls method expected, "" for devices
	}{
		{"POST", "/v1/call/default/new", `{"data":{"created_by_id":"alice"}}`, "GetOrCreate"},
		{"GET", "/v1/call/default/abc?notify=true&user_id=bob", "", "Get"},
		{"POST", "/v1/call/default/abc/members", `{"user_id":"bob"}`, "UpdateMembers"},
		{"POST", "/v1/call/default/abc/ring", `{"user_id":"bob"}`, "Ring"},
		{"POST", "/v1/call/default/abc/accept", `{"user_id":"bob"}`, "Accept"},
		{"POST", "/v1/call/default/abc/reject", `{"user_id":"bob"}`, "Reject"},
		{"POST", "/v1/call/default/abc/join", `{"user_id":"bob"}`, "Join"},
		{"POST", "/v1/call/default/abc/leave", `{"user_id":"bob"}`, "Leave"},
		{"POST", "/v1/call/default/abc/mark_ended", `{"user_id":"bob"}`, "MarkEnded"},
		{"GET", "/v1/calls?user_id=bob", "", "List"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			w := e.do(c.method, c.target, srv, c.body)
			if w.Code != http.StatusOK && w.Code != http.StatusCreated {
				t.Fatalf("status = %d; %s", w.Code, w.Body)
			}
			method, a, _ := e.calls.lastCall()
			named := "bob"
			if c.calls == "GetOrCreate" {
				named = "alice"
			}
			if method != c.calls || a.UserID != named || !a.Server {
				t.Errorf("%s by %+v, want %s by %s with Server", method, a, c.calls, named)
			}
		})
	}

	// Devices, for the user named.
	w := e.do("POST", "/v1/devices", srv, `{"id":"abababababababababababababababababababababababababababababababab","push_provider":"apn","voip_token":true,"user_id":"bob"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("register: status = %d; %s", w.Code, w.Body)
	}
	if d, err := e.devices.Get(t.Context(), "bob", "abababababababababababababababababababababababababababababababab"); err != nil || !d.VoIPToken {
		t.Errorf("registered device = %+v, %v", d, err)
	}
	if w := e.do("GET", "/v1/devices?user_id=bob", srv, ""); !strings.Contains(w.Body.String(), `"abababababababababababababababababababababababababababababababab"`) {
		t.Errorf("list: %d %s", w.Code, w.Body)
	}
	if w := e.do("DELETE", "/v1/devices?id=abababababababababababababababababababababababababababababababab&user_id=bob", srv, ""); w.Code != http.StatusOK {
		t.Errorf("delete: %d %s", w.Code, w.Body)
	}
}

func TestServerTokenMustNameAUserWhereOneActs(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	srv := serverToken(t)
	cases := []struct{ method, target, body, field string }{
		{"POST", "/v1/call/default/new", `{"data":{"members":[{"user_id":"bob"}]}}`, "data.created_by_id"},
		{"POST", "/v1/call/default/abc/accept", `{}`, "user_id"},
		{"POST", "/v1/call/default/abc/reject", ``, "user_id"},
		{"POST", "/v1/call/default/abc/join", `{}`, "user_id"},
		{"POST", "/v1/call/default/abc/leave", `{}`, "user_id"},
		{"GET", "/v1/calls", "", "user_id"},
		{"GET", "/v1/events", "", "user_id"},
		{"GET", "/v1/devices", "", "user_id"},
		{"DELETE", "/v1/devices?id=tok", "", "user_id"},
		{"POST", "/v1/devices", `{"id":"tok","push_provider":"firebase"}`, "user_id"},
		{"POST", "/v1/call/default/abc/accept", `{"user_id":"b c"}`, "user_id"},
		{"POST", "/v1/call/default/new", `{"data":{"created_by_id":"b c"}}`, "data.created_by_id"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target+" "+c.body, func(t *testing.T) {
			wantError(t, e.do(c.method, c.target, srv, c.body), http.StatusBadRequest, wire.CodeInvalidField, c.field)
		})
	}
}

func TestServerTokenActsAsTheBackendWhereNoUserIsNeeded(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	srv := serverToken(t)
	for _, c := range []struct{ method, target, body, calls string }{
		{"POST", "/v1/call/default/abc/mark_ended", ``, "MarkEnded"},
		{"POST", "/v1/call/default/abc/members", `{"remove_members":["bob"]}`, "UpdateMembers"},
		{"POST", "/v1/call/default/abc/ring", `{"members_ids":["bob"]}`, "Ring"},
		{"GET", "/v1/call/default/abc", ``, "Get"},
		// Ringing or notifying with nobody named rings as the call's creator (calls.Store).
		{"GET", "/v1/call/default/abc?ring=true", ``, "Get"},
		{"GET", "/v1/call/default/abc?notify=true", ``, "Get"},
		// An existing call needs no creator: get-or-create answers it.
		{"POST", "/v1/call/default/abc", `{}`, "GetOrCreate"},
	} {
		w := e.do(c.method, c.target, srv, c.body)
		if w.Code != http.StatusOK {
			t.Fatalf("%s %s: status = %d; %s", c.method, c.target, w.Code, w.Body)
		}
		if method, a, _ := e.calls.lastCall(); method != c.calls || a.UserID != "" || !a.Server {
			t.Errorf("%s %s: %s by %+v, want %s by the server", c.method, c.target, method, a, c.calls)
		}
	}
}

func TestMintTokenRoundTrips(t *testing.T) {
	tok, err := MintToken(testSecret, TokenClaims{UserID: "alice", Name: "Alice", Image: "i", Role: RoleAdmin, Teams: []string{"a", "b"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifyToken(tok, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "alice" || c.Name != "Alice" || c.Image != "i" || c.Role != RoleAdmin || strings.Join(c.Teams, ",") != "a,b" || c.Server {
		t.Errorf("claims = %+v", c)
	}
	if until := time.Until(c.Expires); until <= 0 || until > time.Minute {
		t.Errorf("Expires = %v, want within a minute", c.Expires)
	}
	var mc jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &mc); err != nil {
		t.Fatal(err)
	}
	if exp, _ := mc.GetExpirationTime(); exp == nil || time.Until(exp.Time) > time.Minute {
		t.Errorf("exp = %v, want within a minute", exp)
	}
	if alg := strings.Split(tok, ".")[0]; alg == "" {
		t.Error("no header")
	}
}

func TestMintTokenWithoutTTLHasNoExp(t *testing.T) {
	tok, err := MintToken(testSecret, TokenClaims{Server: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mc jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &mc); err != nil {
		t.Fatal(err)
	}
	if _, ok := mc["exp"]; ok {
		t.Errorf("claims %v have exp", mc)
	}
	if mc["server"] != true {
		t.Errorf("claims %v lack server: true", mc)
	}
}

func TestMintTokenRefusesWhatParseWouldRefuse(t *testing.T) {
	for _, c := range []TokenClaims{
		{Server: true, UserID: "alice"},
		{},
		{UserID: "a b"},
		{UserID: "alice", Role: "root"},
	} {
		if _, err := MintToken(testSecret, c, time.Minute); err == nil {
			t.Errorf("MintToken(%+v) succeeded", c)
		}
	}
	if _, err := MintToken(testSecret, TokenClaims{UserID: "alice"}, 0); err == nil {
		t.Error("MintToken of a user token without ttl succeeded")
	}
	if _, err := MintToken(nil, TokenClaims{Server: true}, 0); err == nil {
		t.Error("MintToken with no secret succeeded")
	}
	if _, err := MintToken(testSecret, TokenClaims{Server: true}, -time.Second); err == nil {
		t.Error("MintToken with a negative ttl succeeded")
	}
}

// A token that verified is kept (verifiedTokens), but only as its exact bytes and only until its exp: a token
// altered after the good one was used, or a kept one whose exp has passed, is refused as verifyToken refuses it.
func TestAKeptTokenPassesOnlyAsItselfAndOnlyUntilItsExp(t *testing.T) {
	e := newEnv(t)
	good := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	for range 2 {
		if w := e.do("GET", "/v1/calls", good, ""); w.Code != http.StatusOK {
			t.Fatalf("the good token: status %d; %s", w.Code, w.Body)
		}
	}
	tail := "AAAA"
	if strings.HasSuffix(good, tail) {
		tail = "BBBB"
	}
	wantError(t, e.do("GET", "/v1/calls", good[:len(good)-4]+tail, ""), http.StatusUnauthorized, wire.CodeUnauthorized, "")

	v := newVerifiedTokens(testSecret, 2)
	now := time.Now()
	want, err := verifyToken(good, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		got, err := v.check(good, now)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("check %d: %+v, %v; want %+v as verifyToken has it", i, got, err, want)
		}
	}
	if _, err := v.check("not.a.jwt", now); err == nil {
		t.Error("a bad token passed")
	}
	if len(v.claims) != 1 {
		t.Errorf("%d tokens kept, want the good one alone", len(v.claims))
	}

	// Kept while it was good; its exp has passed since.
	exp := now.Add(-time.Minute).Truncate(time.Second)
	expired := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "bob", "exp": exp.Unix()})
	v.claims[expired] = TokenClaims{UserID: "bob", Role: RoleUser, Expires: exp}
	if _, err := v.check(expired, now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a kept token past its exp: %v, want refused as expired", err)
	}
	if _, kept := v.claims[expired]; kept {
		t.Error("a token past its exp is still kept")
	}

	for i := range 3 {
		tok := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": fmt.Sprintf("u%d", i), "exp": now.Add(time.Hour).Unix()})
		if c, err := v.check(tok, now); err != nil || c.UserID != fmt.Sprintf("u%d", i) {
			t.Fatalf("token of u%d: %+v, %v", i, c, err)
		}
	}
	if len(v.claims) > 2 {
		t.Errorf("%d tokens kept, want at most 2", len(v.claims))
	}

	long := signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"user_id": "carol", "name": strings.Repeat("n", verifiedTokenMaxLen), "exp": now.Add(time.Hour).Unix()})
	v = newVerifiedTokens(testSecret, 2)
	if c, err := v.check(long, now); err != nil || c.UserID != "carol" {
		t.Fatalf("a long token: %+v, %v", c, err)
	}
	if len(v.claims) != 0 {
		t.Errorf("a token of %d bytes was kept, longer than %d", len(long), verifiedTokenMaxLen)
	}
}

func BenchmarkTokenCheck(b *testing.B) {
	tok, err := MintToken(testSecret, TokenClaims{UserID: "alice", Teams: []string{"blue"}}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := verifyToken(tok, testSecret); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		v := newVerifiedTokens(testSecret, verifiedTokensMax)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.check(tok, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
