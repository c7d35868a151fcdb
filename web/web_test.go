package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/wire"
)

var secret = []byte("web-test-secret")

func ring(token, cid string) providers.Push {
	return providers.Push{Token: token, Kind: providers.KindRing, Expires: time.Now().Add(time.Minute),
		Data: map[string]string{"type": "call.ring", "call_cid": cid, "receiver_id": "bob"}}
}

// hubWith is a Firebase hub that was handed pushes, in order.
func hubWith(pushes ...providers.Push) *Hub {
	h := NewHub(providers.Firebase)
	for _, p := range pushes {
		h.Deliver(p)
	}
	return h
}

// kept is what a page following token gets first: the pushes the hub keeps for it after seq after.
func kept(h *Hub, token string, after uint64) []PushEvent {
	pushes, _, cancel := h.Subscribe(token, after)
	cancel()
	return pushes
}

func TestHubKeepsPushesOfBrowserDevicesOnly(t *testing.T) {
	h := hubWith(ring("bob-android", "default:a"), ring("web-bob12345", "default:b"))
	if backlog := kept(h, "bob-android", 0); len(backlog) != 0 {
		t.Fatalf("a phone's token got %d pushes kept; only browser devices' are", len(backlog))
	}
	backlog := kept(h, "web-bob12345", 0)
	if len(backlog) != 1 || backlog[0].Type != "call.ring" || backlog[0].Kind != "ring" || backlog[0].Data["call_cid"] != "default:b" ||
		backlog[0].Provider != providers.Firebase || backlog[0].Expires == nil || backlog[0].Seq == 0 {
		t.Fatalf("backlog = %+v", backlog)
	}
}

func TestHubCopiesThePushData(t *testing.T) {
	h := NewHub(providers.Firebase)
	p := ring("web-bob12345", "default:a")
	h.Deliver(p)
	p.Data["type"] = "changed by the caller"
	backlog := kept(h, "web-bob12345", 0)
	if backlog[0].Data["type"] != "call.ring" {
		t.Fatalf("the hub kept the caller's map: %v", backlog[0].Data)
	}
}

func TestHubSendsNewPushesAndReplaysOnlyThoseAfterTheLastSeen(t *testing.T) {
	h := hubWith(ring("web-bob12345", "default:a"), ring("web-bob12345", "default:b"))
	first := kept(h, "web-bob12345", 0)
	backlog, ch, cancel := h.Subscribe("web-bob12345", first[0].Seq)
	defer cancel()
	if len(backlog) != 1 || backlog[0].Data["call_cid"] != "default:b" {
		t.Fatalf("after seq %d the backlog is %+v, want only default:b", first[0].Seq, backlog)
	}
	h.Deliver(ring("web-bob12345", "default:c"))
	h.Deliver(ring("web-other123", "default:d"))
	select {
	case ev := <-ch:
		if ev.Data["call_cid"] != "default:c" {
			t.Fatalf("got %+v, want default:c", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no push on the subscription")
	}
	select {
	case ev := <-ch:
		t.Fatalf("another device's push reached this one: %+v", ev)
	default:
	}
}

func TestHubNeverBlocksOnASlowPage(t *testing.T) {
	h := NewHub(providers.Firebase)
	_, _, cancel := h.Subscribe("web-bob12345", 0)
	defer cancel()
	done := make(chan struct{})
	go func() {
		for i := 0; i < subscriberQueue*3; i++ {
			h.Deliver(ring("web-bob12345", fmt.Sprintf("default:%d", i)))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver blocked on a subscriber that does not read")
	}
	if backlog := kept(h, "web-bob12345", 0); len(backlog) != recentPerDevice {
		t.Fatalf("backlog holds %d pushes, want the last %d", len(backlog), recentPerDevice)
	}
}

func TestHubForgetsTheLeastRecentlyUsedIdleDevice(t *testing.T) {
	h := NewHub(providers.Firebase)
	_, _, cancel := h.Subscribe("web-followed0", 0) // followed: never forgotten
	defer cancel()
	h.Deliver(ring("web-followed0", "default:kept"))
	for i := 0; i < maxDevices+10; i++ {
		h.Deliver(ring(fmt.Sprintf("web-device%04d", i), "default:x"))
	}
	h.mu.Lock()
	n := len(h.devices)
	_, first := h.devices["web-device0000"]
	_, last := h.devices[fmt.Sprintf("web-device%04d", maxDevices+9)]
	h.mu.Unlock()
	if n > maxDevices || first || !last {
		t.Fatalf("devices = %d (max %d), oldest kept %v, newest kept %v", n, maxDevices, first, last)
	}
	if backlog := kept(h, "web-followed0", 0); len(backlog) != 1 {
		t.Fatalf("a followed device was forgotten: %+v", backlog)
	}
}

func newServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	h, err := Handler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", u, ct)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return res.StatusCode
}

func TestTokenIsAUserTokenOfADemoUser(t *testing.T) {
	s := newServer(t, Config{})
	var tok tokenAnswer
	if status := getJSON(t, s.URL+"/demo/token?user=bob", &tok); status != 200 || tok.UserID != "bob" || tok.Name != "Bob" {
		t.Fatalf("GET /demo/token?user=bob: %d %+v", status, tok)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok.Token, claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("the token does not verify with the secret: %v", err)
	}
	if claims["user_id"] != "bob" || claims["name"] != "Bob" || claims["server"] != nil || claims["exp"] == nil {
		t.Fatalf("claims = %v", claims)
	}
	for _, user := range []string{"", "mallory", "alice ", "ALICE"} {
		var e wire.ErrorBody
		if status := getJSON(t, s.URL+"/demo/token?user="+url.QueryEscape(user), &e); status != 400 || e.Code != "invalid_field" || e.Status != 400 {
			t.Errorf("GET /demo/token?user=%q: %d %+v, want 400", user, status, e)
		}
	}
}

func TestHandlerRefusesAnEmptySecretAndABadUser(t *testing.T) {
	if _, err := Handler(Config{}); err == nil {
		t.Error("Handler with no secret: no error")
	}
	if _, err := Handler(Config{Secret: secret, Users: []string{"not a user id"}}); err == nil {
		t.Error("Handler with a malformed demo user: no error")
	}
}

func TestServesThePageAndItsModules(t *testing.T) {
	s := newServer(t, Config{})
	for path, want := range map[string]string{
		"/":                "text/html",
		"/demo/app.js":     "text/javascript",
		"/demo/ringer.js":  "text/javascript",
		"/demo/style.css":  "text/css",
		"/demo/config":     "application/json",
		"/demo/nothing.js": "application/json", // the error body
	} {
		res, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		wantStatus := 200
		if strings.Contains(path, "nothing") {
			wantStatus = 404
		}
		if res.StatusCode != wantStatus || !strings.HasPrefix(res.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s: %d %q, want %d %s", path, res.StatusCode, res.Header.Get("Content-Type"), wantStatus, want)
		}
	}
}

func TestConfigSaysWhyThereIsNoDevicePanel(t *testing.T) {
	off := newServer(t, Config{PushesOff: "FCM is configured."})
	var c pageConfig
	getJSON(t, off.URL+"/demo/config", &c)
	if c.Pushes || c.PushesOff != "FCM is configured." || len(c.Users) != 2 || c.TokenPrefix != DeviceTokenPrefix {
		t.Errorf("config without a hub = %+v", c)
	}
	var e wire.ErrorBody
	if status := getJSON(t, off.URL+"/demo/pushes?token=web-bob12345", &e); status != 404 || e.Message != "FCM is configured." {
		t.Errorf("GET /demo/pushes without a hub: %d %+v", status, e)
	}
	on := newServer(t, Config{Pushes: NewHub(providers.Firebase)})
	c = pageConfig{}
	getJSON(t, on.URL+"/demo/config", &c)
	if !c.Pushes || c.PushesOff != "" {
		t.Errorf("config with a hub = %+v", c)
	}
}

// readPush reads the next push event of a /demo/pushes stream.
func readPush(t *testing.T, sc *bufio.Scanner) (id string, ev PushEvent) {
	t.Helper()
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			if err := json.Unmarshal([]byte(v), &ev); err != nil {
				t.Fatal(err)
			}
			return id, ev
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
	return "", ev
}

func TestPushStreamCarriesTheDevicesPushesAndResumesAfterLastEventID(t *testing.T) {
	hub := NewHub(providers.Firebase)
	s := newServer(t, Config{Pushes: hub})
	hub.Deliver(ring("web-bob12345", "default:before"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/demo/pushes?token=web-bob12345", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	id, ev := readPush(t, sc)
	if ev.Data["call_cid"] != "default:before" || id != fmt.Sprint(ev.Seq) {
		t.Fatalf("first event id %s: %+v", id, ev)
	}
	hub.Deliver(ring("web-bob12345", "default:live"))
	if _, ev := readPush(t, sc); ev.Data["call_cid"] != "default:live" {
		t.Fatalf("live event: %+v", ev)
	}

	// A reconnecting EventSource names the last id it saw and gets only what came after it.
	req, _ = http.NewRequestWithContext(ctx, "GET", s.URL+"/demo/pushes?token=web-bob12345", nil)
	req.Header.Set("Last-Event-ID", id)
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	if _, ev := readPush(t, bufio.NewScanner(res2.Body)); ev.Data["call_cid"] != "default:live" {
		t.Fatalf("after Last-Event-ID %s: %+v, want default:live", id, ev)
	}
}

func TestPushStreamRefusesATokenThatIsNoBrowserDevice(t *testing.T) {
	s := newServer(t, Config{Pushes: NewHub(providers.Firebase)})
	for _, tok := range []string{"", "bob-android", "web-short", "web-" + strings.Repeat("a", 65), "web-abc/defgh"} {
		var e wire.ErrorBody
		if status := getJSON(t, s.URL+"/demo/pushes?token="+url.QueryEscape(tok), &e); status != 400 {
			t.Errorf("token %q: %d %+v, want 400", tok, status, e)
		}
	}
}

// TestThePageIsItsOwnPlainFilesSoItsCSPHolds: the page loads nothing but its own files (no framework, no CDN,
// no build step) and has no inline script or style, which its Content-Security-Policy (default-src 'self')
// would block.
func TestThePageIsItsOwnPlainFilesSoItsCSPHolds(t *testing.T) {
	page, err := static.ReadFile("index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) == 0 {
		t.Fatal("index.html references no file")
	}
	for _, m := range refs {
		if !strings.HasPrefix(m[1], "/demo/") && m[1] != "data:," {
			t.Errorf("index.html loads %q, not one of the page's own files", m[1])
		}
	}
	for _, inline := range []*regexp.Regexp{regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle="`), regexp.MustCompile(`\son[a-z]+="`)} {
		if loc := inline.FindIndex(page); loc != nil {
			t.Errorf("index.html has inline code the CSP blocks: %q", page[loc[0]:min(loc[1]+20, len(page))])
		}
	}
	for file, want := range map[string][]string{"app.js": {"./ringer.js"}, "ringer.js": nil} {
		src, err := static.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range regexp.MustCompile(`(?m)^import\b[^;]*?from\s+'([^']+)'`).FindAllSubmatch(src, -1) {
			got = append(got, string(m[1]))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s imports %q, want %q", file, got, want)
		}
	}
}

// TestEveryElementTheScriptLooksUpIsOnThePage: app.js finds its elements by id ($('...')); a rename in one file
// but not the other would break the page without a browser test to say why.
func TestEveryElementTheScriptLooksUpIsOnThePage(t *testing.T) {
	page, err := static.ReadFile("index.html")
	if err != nil {
		t.Fatal(err)
	}
	app, err := static.ReadFile("app.js")
	if err != nil {
		t.Fatal(err)
	}
	ids := regexp.MustCompile(`\$\('([a-z-]+)'\)`).FindAllSubmatch(app, -1)
	if len(ids) < 10 {
		t.Fatalf("found %d lookups in app.js; the pattern no longer matches how it finds elements", len(ids))
	}
	for _, m := range ids {
		if !strings.Contains(string(page), `id="`+string(m[1])+`"`) {
			t.Errorf("app.js looks up #%s, which index.html does not have", m[1])
		}
	}
}
