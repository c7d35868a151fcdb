package browser

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ringer-dev/ringer/tests/harness"
)

// Chromium, found or installed once per test process.
var (
	chromiumOnce sync.Once
	chromiumPath string
	chromiumSkip string
	chromiumErr  error
)

// chromium returns the path of a Chromium, installing Debian's chromium and chromium-driver with apt-get
// when none is found. It skips the test only when apt-get itself is unavailable.
func chromium(t *testing.T) string {
	t.Helper()
	chromiumOnce.Do(func() {
		if chromiumPath = findChromium(); chromiumPath != "" {
			return
		}
		aptGet, err := exec.LookPath("apt-get")
		if err != nil {
			chromiumSkip = "no Chromium found and apt-get is unavailable to install it (set RINGER_CHROMIUM to a Chromium binary)"
			return
		}
		chromiumErr = installChromium(aptGet)
		if chromiumErr == nil {
			if chromiumPath = findChromium(); chromiumPath == "" {
				chromiumErr = fmt.Errorf("apt-get installed chromium, but no chromium binary is on PATH")
			}
		}
	})
	switch {
	case chromiumSkip != "":
		t.Skip(chromiumSkip)
	case chromiumErr != nil:
		t.Fatal(chromiumErr)
	}
	return chromiumPath
}

func findChromium() string {
	if p := os.Getenv("RINGER_CHROMIUM"); p != "" {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
		return ""
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return ""
}

// installChromium runs apt-get update and apt-get install as root (through sudo -n when not root).
func installChromium(aptGet string) error {
	prefix := []string{}
	if os.Geteuid() != 0 {
		sudo, err := exec.LookPath("sudo")
		if err != nil {
			return fmt.Errorf("chromium is missing and installing it needs root: run `apt-get install chromium chromium-driver` as root")
		}
		prefix = []string{sudo, "-n"}
	}
	steps := [][]string{
		{aptGet, "update", "-qq"},
		// fonts-liberation is a recommendation of chromium: without it, pages and screenshots lack common fonts.
		{aptGet, "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver", "fonts-liberation"},
	}
	for _, step := range steps {
		args := append(append([]string{}, prefix...), step...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// browser is one headless Chromium; each page it opens is a window of its own (a separate browser context),
// as a newcomer would open two windows.
type browser struct {
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
	dir, err := os.MkdirTemp("", "ringer-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // runs after the browser is gone (cleanups run last first)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Two windows at once: neither may be throttled as a background page.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	// The first run starts the browser; it must not carry a timeout, which would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return &browser{ctx: ctx}
}

// page is one window playing one demo user.
type page struct {
	t    *testing.T
	user string
	ctx  context.Context

	mu         sync.Mutex
	exceptions []string
}

// open loads the demo page at base as user, and waits until it is ready: its device is registered, its
// event stream is open and its calls are loaded.
func (b *browser) open(t *testing.T, base, user string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &page{t: t, user: user, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text += " " + d.Exception.Description
			}
			p.mu.Lock()
			p.exceptions = append(p.exceptions, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, text))
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("%s: open a window: %v", user, err)
	}
	p.do(30*time.Second, "load the page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/?user="+user))
	p.waitFor(15*time.Second, "the page to be ready", `document.querySelector('[data-testid=status]').dataset.ready === 'true'`)
	return p
}

// do runs actions on the page within d.
func (p *page) do(d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", p.user, what, err, p.describe())
	}
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.user, expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds, failing the test after d. A JavaScript exception on
// the page or a message in its error bar fails it at once.
func (p *page) waitFor(d time.Duration, what, cond string) {
	p.t.Helper()
	expr := fmt.Sprintf(`(() => {
		const err = document.querySelector('[data-testid=error]');
		if (err && !err.hidden) return 'error: ' + err.textContent;
		return (%s) ? 'yes' : 'no';
	})()`, cond)
	deadline := time.Now().Add(d)
	for {
		got := eval[string](p, expr)
		if got == "yes" {
			return
		}
		if strings.HasPrefix(got, "error: ") {
			p.t.Fatalf("%s: waiting for %s, the page shows an %s\n%s", p.user, what, got, p.describe())
		}
		if ex := p.thrown(); len(ex) > 0 {
			p.t.Fatalf("%s: waiting for %s, the page threw: %s", p.user, what, strings.Join(ex, "; "))
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: timed out after %s waiting for %s\n%s", p.user, d, what, p.describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// click clicks the first visible element matching the CSS selector, as a user's mouse would.
func (p *page) click(what, selector string) {
	p.t.Helper()
	p.do(10*time.Second, "click "+what, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

func (p *page) has(selector string) bool {
	p.t.Helper()
	return eval[bool](p, fmt.Sprintf(`document.querySelector(%s) !== null`, strconv.Quote(selector)))
}

func (p *page) text(selector string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`document.querySelector(%s)?.textContent ?? ''`, strconv.Quote(selector)))
}

// number reads a numeric data attribute (a Date.now() the page recorded).
func (p *page) number(selector, attr string) float64 {
	p.t.Helper()
	return eval[float64](p, fmt.Sprintf(`Number(document.querySelector(%s)?.dataset[%s] ?? NaN)`,
		strconv.Quote(selector), strconv.Quote(attr)))
}

func (p *page) thrown() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.exceptions...)
}

// describe is what the page shows, for a failure message.
func (p *page) describe() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	if len(text) > 3000 {
		text = text[:3000] + "…"
	}
	return "page of " + p.user + ":\n" + text
}

// screenshot saves the whole page as name.png: into docs/screenshots with RINGER_UPDATE_SCREENSHOTS=1, else
// into the test's artifact directory.
func (p *page) screenshot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("%s: screenshot %s: %v", p.user, name, err)
	}
	dir := p.t.ArtifactDir()
	if os.Getenv("RINGER_UPDATE_SCREENSHOTS") == "1" {
		dir = filepath.Join(repoRoot(p.t), "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			p.t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ringer-dev/ringer").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// noExceptions fails the test if a page threw.
func noExceptions(t *testing.T, pages ...*page) {
	t.Helper()
	for _, p := range pages {
		if ex := p.thrown(); len(ex) > 0 {
			t.Errorf("%s: the page threw: %s", p.user, strings.Join(ex, "; "))
		}
	}
}

// startDemo runs `ringer serve` with RINGER_DEMO=1 and without FCM credentials, so that the FCM log provider
// hands the browser devices' pushes to the page. It returns the page's base URL.
func startDemo(t *testing.T) string {
	t.Helper()
	e := harness.Start(t, harness.Options{Env: []string{"RINGER_DEMO=1", "FCM_CREDENTIALS_FILE="}})
	return e.URL
}

var welcomeURL = regexp.MustCompile(`See it ring: open (http://\S+)/\?user=alice `)

// startDev runs `ringer dev` as a newcomer would, with nothing configured, and returns the page URL its
// welcome text prints. It stops it with SIGTERM at the end, which stops its own redis-server too.
func startDev(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), "dev", "--addr", "127.0.0.1:0")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !hasAnyPrefix(k, "RINGER_", "REDIS_", "FCM_", "APNS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // to reach its redis-server should it not stop
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &harness.LockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ringer dev: %v", err)
	}
	exited := make(chan struct{})
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logs.Write([]byte("stdout: " + sc.Text() + "\n"))
			if m := welcomeURL.FindStringSubmatch(sc.Text()); m != nil {
				url <- m[1]
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Errorf("ringer dev did not stop within 15s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("ringer dev output:\n%s", logs.String())
		}
	})
	select {
	case u := <-url:
		return u
	case <-exited:
		t.Fatalf("ringer dev exited at start:\n%s", logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("ringer dev printed no page URL within 60s:\n%s", logs.String())
	}
	return ""
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
