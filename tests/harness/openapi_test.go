package harness

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps the failures the checked client reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// exchange sends one request through a checked client to a server that answers status and body.
func exchange(t *testing.T, method, path, reqBody string, status int, body string) []string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	var rd io.Reader
	if reqBody != "" {
		rd = strings.NewReader(reqBody)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer x")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := LoadSpec(t).Checked(rec, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return rec.errs
}

func TestTheCheckedClientPassesAnExchangeTheSpecDescribes(t *testing.T) {
	if errs := exchange(t, "GET", "/healthz", "", 200, `{"status":"ok"}`); len(errs) > 0 {
		t.Errorf("a good exchange was reported: %v", errs)
	}
	if errs := exchange(t, "POST", "/v1/call/default/x/accept", `{"nope":1}`, 400, `{"code":"unknown_field","message":"nope: unknown","status":400}`); len(errs) > 0 {
		t.Errorf("a bad request refused with an error body was reported: %v", errs)
	}
}

func TestTheCheckedClientFailsAnAnswerTheSpecDoesNotDescribe(t *testing.T) {
	if errs := exchange(t, "GET", "/healthz", "", 200, `{"status":"fine"}`); len(errs) == 0 {
		t.Error("an answer with a wrong body passed")
	}
	if errs := exchange(t, "GET", "/v1/devices", "", 401, `{"error":"no"}`); len(errs) == 0 {
		t.Error("an error answer without the error body passed")
	}
}

func TestTheCheckedClientFailsABadRequestTheServerTook(t *testing.T) {
	if errs := exchange(t, "POST", "/v1/call/default/x/accept", `{"nope":1}`, 200, `{}`); len(errs) == 0 {
		t.Error("a request the spec refuses passed with a 200")
	}
}

func TestTheCheckedClientFailsAPathTheSpecDoesNotKnowUnless404(t *testing.T) {
	if errs := exchange(t, "GET", "/v1/nowhere", "", 200, `{}`); len(errs) == 0 {
		t.Error("a 200 on a path the spec does not know passed")
	}
	if errs := exchange(t, "GET", "/v1/nowhere", "", 404, `{"code":"not_found","message":"No route.","status":404}`); len(errs) > 0 {
		t.Errorf("a 404 on an unknown path was reported: %v", errs)
	}
}
