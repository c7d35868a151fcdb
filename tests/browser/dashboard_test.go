package browser

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ringer-dev/ringer/tests/harness"
)

// TestTheDashboardListsTheRingWatchAndNotifyQueues opens the Asynq dashboard in Chromium, logged in, while a
// ring and a notification are in flight, and waits until its queues page lists all three queues. With
// RINGER_UPDATE_SCREENSHOTS=1 it writes the page to docs/dashboard.png, which the README shows.
func TestTheDashboardListsTheRingWatchAndNotifyQueues(t *testing.T) {
	const user, password = "admin", "dashboard-password"
	e := harness.Start(t, harness.Options{Env: []string{
		"RINGER_DASHBOARD_USER=" + user, "RINGER_DASHBOARD_PASSWORD=" + password,
		// One notify slot and a slow provider spread the notification over the queue's batches.
		"RINGER_NOTIFY_CONCURRENCY=1",
	}})
	e.FCM.SetLatency(200 * time.Millisecond)
	var members []string
	for i := range 400 {
		m := fmt.Sprintf("member%03d", i)
		members = append(members, m)
		e.Device(m, "android-"+m, "firebase", false)
	}
	alice := e.Token("alice")
	e.MustCall(201, "POST", "/v1/call/default/standup", alice, map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("alice", "bob", "carol"),
			"settings_override": map[string]any{"ring": map[string]any{"auto_cancel_timeout_ms": 120000, "incoming_call_timeout_ms": 120000}}},
	})
	e.MustCall(201, "POST", "/v1/call/default/all-hands", alice, map[string]any{
		"notify": true, "data": map[string]any{"members": harness.MemberList(append([]string{"alice"}, members...)...)},
	})

	b := newBrowser(t)
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &page{t: t, user: "operator", ctx: ctx}
	if err := chromedp.Listen(ctx, func(any) {}); err != nil {
		t.Fatalf("open a window: %v", err)
	}
	// The login goes in the URL: Chromium answers the dashboard's Basic challenge with it, for the page and
	// for the API calls the page makes.
	u, err := url.Parse(e.URL + "/asynq/")
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	p.do(30*time.Second, "open the dashboard", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(u.String()))
	p.waitFor(30*time.Second, "the queues ring, watch and notify to be listed",
		`['ring', 'watch', 'notify'].every(q => [...document.querySelectorAll('a, td')].some(el => el.textContent.trim() === q))`)

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if os.Getenv("RINGER_UPDATE_SCREENSHOTS") == "1" {
		path = filepath.Join(repoRoot(t), "docs", "dashboard.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
