package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

// Bad input. Request decoding and validation are fuzzed by api.FuzzDecodeCreate and template rendering by
// templates.FuzzRender; `go test` runs their seed corpora, checked here to be in the repository.

// TestDeeplyNestedJSONIsRefusedWith400 sends bodies nested 10,000 and 100,000 levels deep, arrays and
// objects, wherever a body takes free-form JSON (custom of a call, of a member, of an update) and where it
// takes none. Each is a 400 with the error body, never a 500 or a crash; the process answers on.
func TestDeeplyNestedJSONIsRefusedWith400(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/nest", alice, map[string]any{"data": map[string]any{"members": harness.MemberList("alice", "bob")}})
	arrays := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	objects := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	type req struct{ name, path, body string }
	var reqs []req
	for _, depth := range []int{10_000, 100_000} {
		for kind, deep := range map[string]string{"arrays": arrays(depth), "objects": objects(depth)} {
			n := func(where string) string { return where + ", " + kind + " nested " + strconv.Itoa(depth) }
			reqs = append(reqs,
				req{n("call custom"), "/v1/call/default/nest-new", `{"data":{"custom":{"x":` + deep + `}}}`},
				req{n("member custom"), "/v1/call/default/nest-new", `{"data":{"members":[{"user_id":"bob","custom":{"x":` + deep + `}}]}}`},
				req{n("data itself"), "/v1/call/default/nest-new", `{"data":` + deep + `}`},
				req{n("whole body"), "/v1/call/default/nest-new", deep},
				req{n("update_members custom"), "/v1/call/default/nest/members", `{"update_members":[{"user_id":"carol","custom":{"x":` + deep + `}}]}`},
				req{n("device id"), "/v1/devices", `{"id":` + deep + `,"push_provider":"firebase"}`},
			)
		}
	}
	for _, r := range reqs {
		got := e.Call("POST", r.path, alice, r.body)
		if got.Status != 400 {
			t.Errorf("%s: %d %.200s, want 400", r.name, got.Status, got.Raw)
			continue
		}
		if got.Body["status"] != float64(400) || got.Body["code"] == "" || got.Body["message"] == "" {
			t.Errorf("%s: 400 without the error body: %.200s", r.name, got.Raw)
		}
	}
	if code, body := status(t, e.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz after the deep bodies: %d %s", code, body)
	}
	// Nothing was stored: the call still has its two members and no custom.
	r := e.MustCall(200, "GET", "/v1/call/default/nest", alice, nil)
	if ms, _ := r.Body["members"].([]any); len(ms) != 2 {
		t.Errorf("call after refused updates: %s", r.Raw)
	}
}

// TestFuzzSeedCorporaAreInTheRepository checks that the seed corpora `go test` replays for api's
// FuzzDecodeCreate and templates' FuzzRender are committed (a corpus only on a developer's machine protects
// nothing in CI), in the go-fuzz v1 format, and that the decoder's includes a deeply nested body.
func TestFuzzSeedCorporaAreInTheRepository(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	root := strings.TrimSpace(string(out))
	for _, dir := range []string{"api/testdata/fuzz/FuzzDecodeCreate", "templates/testdata/fuzz/FuzzRender"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		if len(entries) < 5 {
			t.Errorf("%s holds %d seeds, want at least 5", dir, len(entries))
		}
		for _, en := range entries {
			b, err := os.ReadFile(filepath.Join(root, dir, en.Name()))
			if err != nil || !strings.HasPrefix(string(b), "go test fuzz v1\n") {
				t.Errorf("%s/%s is not a go test fuzz v1 file: %v", dir, en.Name(), err)
			}
		}
		if _, err := exec.LookPath("git"); err == nil {
			cmd := exec.Command("git", "ls-files", "--error-unmatch", dir)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				if strings.Contains(string(out), "not a git repository") {
					continue // a source tree without its history, as in a container build
				}
				t.Errorf("%s is not committed: %s", dir, out)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "api/testdata/fuzz/FuzzDecodeCreate/deep_nesting")); err != nil {
		t.Errorf("FuzzDecodeCreate has no deep_nesting seed: %v", err)
	}
}
