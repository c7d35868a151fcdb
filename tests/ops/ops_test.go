// Package ops runs ringer as operations would: the Asynq dashboard behind its login, /metrics after real
// rings, api and worker processes scaled apart with one killed, a Redis Cluster, SIGTERM and /readyz, and the
// docker-compose file. Every test drives the real binary (tests/harness) on 127.0.0.1 only.
package ops

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

// repoRoot is the module's folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// get sends a GET with basic auth when user is not empty, and returns the status and body.
func get(t *testing.T, url, user, password string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// registerAndroid gives every user one FCM device, token "<user>-android", through the API as the backend.
func registerAndroid(t *testing.T, e *harness.Env, users ...string) {
	t.Helper()
	server := e.ServerToken()
	for _, u := range users {
		r := e.Call("POST", "/v1/devices", server, map[string]any{"id": u + "-android", "push_provider": "firebase", "user_id": u})
		if r.Status != 201 && r.Status != 200 {
			t.Fatalf("register %s-android: %d %s", u, r.Status, r.Raw)
		}
	}
}
