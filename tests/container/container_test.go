// Package container checks what the Dockerfile builds, without a Docker engine: the same build flags give a
// static binary that starts, refuses a missing secret, and serves.
package container

import (
	"bufio"
	"debug/elf"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/testredis"
)

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// dockerBuild finds the Dockerfile's `go build` line and returns its environment and flags.
func dockerBuild(t *testing.T, root string) (env, args []string) {
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^RUN ((?:[A-Z_]+=\S+ )*)go build (.*) -o \S+ (\./cmd/ringer)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			return strings.Fields(m[1]), append(shellWords(m[2]), m[3])
		}
	}
	t.Fatal("Dockerfile has no `RUN ... go build ... -o ... ./cmd/ringer` line")
	return nil, nil
}

func TestDockerfileRunsServeAsNonRoot(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"USER nonroot", `CMD ["serve"]`, "CGO_ENABLED=0", "AS build", "COPY --from=build"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestDockerfileBuildIsStaticAndServes(t *testing.T) {
	root := repoRoot(t)
	env, args := dockerBuild(t, root)
	bin := filepath.Join(t.TempDir(), "ringer")
	cmd := exec.Command("go", append([]string{"build", "-o", bin}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build as the Dockerfile does: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary is dynamically linked: it would not run on a static base image")
		}
	}
	f.Close()

	// No secret: refuses to start, naming the variable.
	out, err := exec.Command(bin, "serve").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "RINGER_API_SECRET") {
		t.Fatalf("serve without a secret: err=%v out=%s", err, out)
	}

	r := testredis.Start(t)
	port := testredis.FreePort(t)
	addr := "127.0.0.1:" + itoa(port)
	srv := exec.Command(bin, "serve")
	srv.Env = []string{"RINGER_API_SECRET=container-test-secret-of-at-least-32-bytes", "REDIS_URL=" + r.URL(), "RINGER_ADDR=" + addr}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("static binary never answered /healthz: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// shellWords splits flags as a shell would for the simple quoting a Dockerfile line uses: -ldflags="-s -w".
func shellWords(s string) []string {
	var out []string
	for _, w := range regexp.MustCompile(`\S+="[^"]*"|\S+`).FindAllString(s, -1) {
		out = append(out, strings.ReplaceAll(w, `"`, ""))
	}
	return out
}
