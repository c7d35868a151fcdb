package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ringer-dev/ringer/wire"
)

// FuzzDecodeCreate feeds arbitrary bodies to get-or-create, both to the decoder alone and through the whole
// handler: nothing panics, a refused body is always a 4xx with the error body, and an accepted body is one
// calls could store (its members valid and unique).
func FuzzDecodeCreate(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `{"ring":true}`, `{"data":null}`,
		`{"ring":true,"notify":false,"data":{"members":[{"user_id":"alice","role":"admin","custom":{}},{"user_id":"bob"}],"custom":{"topic":"standup"},"settings_override":{"ring":{"auto_cancel_timeout_ms":30000,"incoming_call_timeout_ms":30000}},"starts_at":"2026-12-01T10:00:00Z","team":"blue"}}`,
		`{"data":{"created_by_id":"bob"}}`,
		`{"data":{"members":[{"user_id":"bob"},{"user_id":"bob"}]}}`,
		"{\"data\":{\"custom\":{\"a\":\"\xff\"}}}",
		`{"data":{"settings_override":{"ring":{"auto_cancel_timeout_ms":1e400}}}}`,
		`{} {}`, `[`, `"x"`,
	} {
		f.Add([]byte(seed), false)
	}
	e := newEnv(f)
	alice := userToken(f, "alice")
	srv := serverToken(f)
	f.Fuzz(func(t *testing.T, body []byte, server bool) {
		tok := TokenClaims{UserID: "alice", Role: RoleUser}
		if server {
			tok = TokenClaims{Server: true}
		}
		checked, err := checkBody(body)
		if err == nil {
			var in createInput
			in, err = decodeCreate(checked, tok)
			if err == nil {
				seen := map[string]bool{}
				for _, m := range in.Req.Members {
					if !userIDRe.MatchString(m.UserID) || seen[m.UserID] {
						t.Fatalf("accepted member %q twice or malformed", m.UserID)
					}
					seen[m.UserID] = true
				}
			}
		}
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 {
				t.Fatalf("decode error %v (%T) is not a 4xx answer", err, err)
			}
		}

		bearer := alice
		if server {
			bearer = srv
		}
		r := httptest.NewRequest("POST", "/v1/call/default/fuzz", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+bearer)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		switch {
		case w.Code == http.StatusOK || w.Code == http.StatusCreated:
			if err != nil {
				t.Fatalf("handler accepted a body the decoder refused (%v)", err)
			}
		case w.Code >= 400 && w.Code <= 499:
			var b wire.ErrorBody
			dec := json.NewDecoder(w.Body)
			dec.DisallowUnknownFields()
			if derr := dec.Decode(&b); derr != nil || b.Status != w.Code || b.Code == "" || b.Message == "" {
				t.Fatalf("status %d with body %+v (%v)", w.Code, b, derr)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
