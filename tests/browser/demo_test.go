package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// get is GET url with no token: its status and JSON body.
func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	r := harness.Do(t, http.DefaultClient, "GET", url, "", nil)
	return r.Status, r.Body
}

// TestServeHasNoDemoPageWithoutRingerDemo: tokens are minted by `ringer dev` or under RINGER_DEMO=1 only.
func TestServeHasNoDemoPageWithoutRingerDemo(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	for _, path := range []string{"/", "/demo/token?user=alice", "/demo/config", "/demo/app.js"} {
		status, body := get(t, e.URL+path)
		if status != http.StatusNotFound || body["code"] != "not_found" {
			t.Errorf("GET %s without RINGER_DEMO: %d %v, want 404 in the error body", path, status, body)
		}
	}
}

func TestDemoPageMintsTokensForDemoUsersOnly(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_DEMO=1", "FCM_CREDENTIALS_FILE="}})
	status, body := get(t, e.URL+"/demo/token?user=alice")
	if status != 200 || body["user_id"] != "alice" || body["token"] == "" {
		t.Fatalf("GET /demo/token?user=alice: %d %v", status, body)
	}
	// The token is a real user token of the API.
	r := e.Call("GET", "/v1/calls", body["token"].(string), nil)
	if r.Status != 200 {
		t.Errorf("GET /v1/calls with the demo token: %d %s", r.Status, r.Raw)
	}
	if status, body := get(t, e.URL+"/demo/token?user=mallory"); status != 400 || body["code"] != "invalid_field" {
		t.Errorf("GET /demo/token?user=mallory: %d %v, want 400", status, body)
	}
	// The demo routes are the exact GET / and /demo/: the API's unknown routes stay 404 in the error body.
	if status, body := get(t, e.URL+"/v1/nope"); status != 404 || body["code"] != "not_found" {
		t.Errorf("GET /v1/nope: %d %v", status, body)
	}
	if status, body := get(t, e.URL+"/elsewhere"); status != 404 || body["code"] != "not_found" {
		t.Errorf("GET /elsewhere: %d %v", status, body)
	}
	status, body = get(t, e.URL+"/demo/config")
	if status != 200 || body["pushes"] != true {
		t.Errorf("GET /demo/config: %d %v, want the device panel on", status, body)
	}
	res, err := http.Get(e.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), `src="/demo/app.js"`) || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %d %s", res.StatusCode, page)
	}
}

// TestDevicePanelSaysWhyWhenFCMIsConfigured: with FCM credentials, a browser device's pushes go to FCM, so
// the page has no device panel and says so.
func TestDevicePanelSaysWhyWhenFCMIsConfigured(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_DEMO=1"}})
	status, body := get(t, e.URL+"/demo/config")
	if status != 200 || body["pushes"] != false || !strings.Contains(body["pushes_off"].(string), "FCM") {
		t.Errorf("GET /demo/config with FCM configured: %d %v", status, body)
	}
	if status, _ := get(t, e.URL+"/demo/pushes?token=web-abcdefgh"); status != 404 {
		t.Errorf("GET /demo/pushes with FCM configured: %d, want 404", status)
	}
}

// TestPushStreamCarriesTheRingOfABrowserDevice is the device panel without a browser: the push stream of a
// registered browser device carries its call.ring push as the worker handed it to the FCM log provider.
func TestPushStreamCarriesTheRingOfABrowserDevice(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_DEMO=1", "FCM_CREDENTIALS_FILE="}})
	const device = "web-streamtest1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/demo/pushes?token="+device, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /demo/pushes: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	e.Device("bob", device, "firebase", false)
	e.MustCall(201, "POST", "/v1/call/default/stream1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": []map[string]any{{"user_id": "alice"}, {"user_id": "bob"}}},
	})
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var p struct {
			Kind, Type string
			Data       map[string]string
		}
		if err := json.Unmarshal([]byte(data), &p); err != nil {
			t.Fatalf("push event %s: %v", data, err)
		}
		if p.Type != "call.ring" || p.Kind != "ring" || p.Data["call_cid"] != "default:stream1" || p.Data["receiver_id"] != "bob" {
			t.Fatalf("first push: %s", data)
		}
		return
	}
	t.Fatalf("the push stream ended without a push: %v", sc.Err())
}
