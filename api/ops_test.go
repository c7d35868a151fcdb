package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ringer-dev/ringer/wire"
)

// A process without the API (a worker) answers the operations endpoints exactly as the API does, and nothing
// else.
func TestOpsServesTheOperationsEndpointsAloneAsTheAPIDoes(t *testing.T) {
	ready := &NotReady{Part: "redis unreachable", Err: errors.New("dial tcp 10.1.2.3:6379: connection refused")}
	h, err := Ops(Config{Ready: func(context.Context) error { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	if code, body := get("/healthz"); code != 200 || body["status"] != "ok" {
		t.Errorf("/healthz: %d %v", code, body)
	}
	if code, body := get("/readyz"); code != 503 || body["code"] != wire.CodeNotReady || body["message"] != ready.Part {
		t.Errorf("/readyz: %d %v, want 503 %s naming the cause", code, body, wire.CodeNotReady)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("/metrics: %d", code)
	}
	if code, body := get("/v1/calls"); code != 404 || body["code"] != wire.CodeNotFound {
		t.Errorf("/v1/calls on an ops-only handler: %d %v, want 404 in the error body", code, body)
	}
}
