// Package ops runs ringer as operations would: the Asynq dashboard behind its login, /metrics after real
// rings, api and worker processes scaled apart with one killed, a Redis Cluster, SIGTERM and /readyz, and the
// docker-compose file. Every test drives the real binary (tests/harness) on 127.0.0.1 only.
package ops

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is one scrape of /metrics.
type metrics []sample

// scrape reads base+"/metrics".
func scrape(t *testing.T, base string) metrics {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET /metrics: %d %s", res.StatusCode, b)
	}
	var out metrics
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out
}

// parseSample parses `name{k="v",...} value` (label values may hold escaped quotes).
func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ",")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("bad label")
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			for {
				if rest == "" {
					return s, fmt.Errorf("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '\\' && rest != "" {
					val.WriteByte(rest[0])
					rest = rest[1:]
					continue
				}
				if c == '"' {
					break
				}
				val.WriteByte(c)
			}
			s.labels[key] = val.String()
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// get sums the samples of name whose labels include every pair of want ("k", "v", ...).
func (m metrics) get(name string, want ...string) float64 {
	var sum float64
	for _, s := range m {
		if s.name != name || !matches(s.labels, want) {
			continue
		}
		sum += s.value
	}
	return sum
}

// has reports whether a sample of name with the labels want exists.
func (m metrics) has(name string, want ...string) bool {
	for _, s := range m {
		if s.name == name && matches(s.labels, want) {
			return true
		}
	}
	return false
}

// families is every metric name, with histogram and summary suffixes folded into their family.
func (m metrics) families() map[string]bool {
	out := map[string]bool{}
	for _, s := range m {
		out[s.name] = true
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(s.name, suf) {
				out[strings.TrimSuffix(s.name, suf)] = true
			}
		}
	}
	return out
}

func matches(labels map[string]string, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		if labels[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// repoRoot is the module's folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// eventually polls cond every few milliseconds until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// members is n user ids with the prefix.
func members(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
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
