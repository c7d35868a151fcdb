package faults

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/tests/harness"
)

// Helpers shared by this package's tests. They fail the test only from the test's own goroutine.

// readyzNaming polls base's /readyz for up to 10 s until it answers 503 naming provider, and returns its last
// answer.
func readyzNaming(t testing.TB, base, provider string) (code int, body string) {
	t.Helper()
	harness.Poll(10*time.Second, 100*time.Millisecond, func() bool {
		code, body = status(t, base+"/readyz")
		return code == 503 && strings.Contains(strings.ToLower(body), provider)
	})
	return code, body
}

// ringBody is a get-or-create body that rings callees for autoMs (both ring timeouts), alice calling.
func ringBody(autoMs int, callees ...string) map[string]any {
	return map[string]any{
		"ring": true,
		"data": map[string]any{
			"members": harness.MemberList(append([]string{"alice"}, callees...)...),
			"settings_override": map[string]any{"ring": map[string]any{
				"auto_cancel_timeout_ms": autoMs, "incoming_call_timeout_ms": autoMs}},
		},
	}
}

// notifyBody is a get-or-create body that notifies callees, alice calling.
func notifyBody(callees ...string) map[string]any {
	return map[string]any{"notify": true, "data": map[string]any{"members": harness.MemberList(append([]string{"alice"}, callees...)...)}}
}

// registerFCM gives each user one FCM token, "<user>-android", straight into the registry on e's Redis: a
// fan-out of thousands of members is set up in seconds rather than through thousands of API requests.
func registerFCM(t testing.TB, e *harness.Env, ids ...string) {
	t.Helper()
	reg := devices.New(e.RDB)
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(16)
	for _, u := range ids {
		g.Go(func() error {
			_, err := reg.Register(ctx, devices.Device{ID: u + "-android", PushProvider: "firebase", UserID: u})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("register FCM devices: %v", err)
	}
}

// fcmTypes and apnsTypes list the push types a token got, in order.
func fcmTypes(e *harness.Env, token string) []string { return e.FCMTypes(token) }
func apnsTypes(e *harness.Env, token string) []string {
	return e.APNsTypes(token)
}

// same reports whether got lists exactly want.
func same(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// goroutines is the go_goroutines gauge of the process serving base: its own, not its notify child's (which
// the worker's /metrics also carries, labelled worker_process), since the rings these tests send are its.
func goroutines(t testing.TB, base string) int {
	t.Helper()
	return int(harness.Scrape(t, base).Get("go_goroutines", "worker_process", ""))
}

// logRecords is every JSON log record a process wrote so far.
func logRecords(p *harness.Process) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.Logs(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// findLog returns the first log record of p for which match holds.
func findLog(p *harness.Process, match func(rec map[string]any) bool) (map[string]any, bool) {
	for _, rec := range logRecords(p) {
		if match(rec) {
			return rec, true
		}
	}
	return nil, false
}

// str is a log record's string field.
func str(rec map[string]any, k string) string {
	s, _ := rec[k].(string)
	return s
}

// attemptClock watches how many sends each token has had at a provider and notes when each one arrived:
// the fakes count attempts but keep no time for a refused one. The times are when the watcher saw the count
// move, a few milliseconds after the attempt at most, later when the machine is busy.
type attemptClock struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	seen map[string][]time.Time
}

// watchAttempts polls count for every token until the test ends.
func watchAttempts(t testing.TB, count func(token string) int, tokens ...string) *attemptClock {
	c := &attemptClock{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string][]time.Time{}}
	go func() {
		defer close(c.done)
		for {
			now := time.Now()
			for _, tok := range tokens {
				n := count(tok)
				c.mu.Lock()
				for len(c.seen[tok]) < n {
					c.seen[tok] = append(c.seen[tok], now)
				}
				c.mu.Unlock()
			}
			select {
			case <-c.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(c.stop); <-c.done })
	return c
}

// times is when each attempt to token was seen.
func (c *attemptClock) times(token string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.seen[token]...)
}

// gaps is the time between consecutive attempts to token.
func (c *attemptClock) gaps(token string) []time.Duration {
	ts := c.times(token)
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]))
	}
	return out
}

// status is GET url's status and body.
func status(t testing.TB, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// callCreatedAt is the created_at of a get-or-create answer.
func callCreatedAt(t testing.TB, r harness.Resp) time.Time {
	t.Helper()
	call, _ := r.Body["call"].(map[string]any)
	s, _ := call["created_at"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("call.created_at %q: %v", s, err)
	}
	return at
}
