package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// Bundle ids of the store app and the debug build, as in the README's worked example.
const (
	storeTopic = "com.example.app"
	debugTopic = "com.example.app.debug"
)

// providerFakes are four providers, each its own fake with its own credentials: two Firebase projects
// behind two endpoints, APNs production and development with different keys and topics.
type providerFakes struct {
	android, staging *fakefcm.Server
	ios, iosDev      *fakeapns.Server
	dir, file        string
	env              []string
}

// startProviderFakes starts the fakes and writes a providers file naming them: android (the firebase
// default), android-staging, ios (the apn default, production) and ios-dev (development). extra is appended
// to the file's list. The environment it returns clears the harness's FCM_* and APNS_* variables, which
// may not be set beside the file.
func startProviderFakes(t *testing.T, extra string) *providerFakes {
	t.Helper()
	f := &providerFakes{android: fakefcm.Start(t), staging: fakefcm.Start(t), ios: fakeapns.Start(t), iosDev: fakeapns.Start(t), dir: t.TempDir()}
	iosKey, iosKeyID, iosTeam := f.ios.WriteKey(f.dir)
	devKey, devKeyID, devTeam := f.iosDev.WriteKey(f.dir)
	doc := fmt.Sprintf(`providers:
  - name: android
    type: firebase
    credentials_file: %s
    endpoint: %s
    default: true
  - name: android-staging
    type: firebase
    credentials_file: %s
    endpoint: %s
  - name: ios
    type: apn
    key_file: %s
    key_id: %s
    team_id: %s
    topic: %s
    environment: production
    endpoint: %s
    default: true
  - name: ios-dev
    type: apn
    key_file: %s
    key_id: %s
    team_id: %s
    topic: %s
    environment: development
    endpoint: %s
%s`, f.android.WriteCredentials(t.TempDir()), f.android.Endpoint, f.staging.WriteCredentials(t.TempDir()), f.staging.Endpoint,
		iosKey, iosKeyID, iosTeam, storeTopic, f.ios.URL, devKey, devKeyID, devTeam, debugTopic, f.iosDev.URL, extra)
	f.file = f.writeFile("providers.yaml", doc)
	// One CA file trusting every fake: Go reads SSL_CERT_FILE once per process.
	ca := harness.CAFile(t, t.TempDir(), f.android.WriteCAFile(t.TempDir()), f.staging.WriteCAFile(t.TempDir()),
		f.ios.WriteCAFile(t.TempDir()), f.iosDev.WriteCAFile(t.TempDir()))
	f.env = []string{"RINGER_PROVIDERS_FILE=" + f.file, "SSL_CERT_FILE=" + ca}
	for _, v := range []string{"FCM_CREDENTIALS_FILE", "FCM_ENDPOINT", "APNS_KEY_FILE", "APNS_KEY_ID", "APNS_TEAM_ID",
		"APNS_TOPIC", "APNS_ENVIRONMENT", "APNS_ENDPOINT"} {
		f.env = append(f.env, v+"=")
	}
	return f
}

func (f *providerFakes) writeFile(name, content string) string {
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		panic(err)
	}
	return path
}

// namedDevice registers token for user with push_provider_name name and returns the answer.
func namedDevice(e *harness.Env, user, token, provider, name string) harness.Resp {
	return e.Call("POST", "/v1/devices", e.Token(user), map[string]any{"id": token, "push_provider": provider, "push_provider_name": name})
}

func TestEachDeviceIsRungThroughTheProviderItNamesAndNoOther(t *testing.T) {
	t.Parallel()
	f := startProviderFakes(t, "")
	e := harness.Start(t, harness.Options{Env: f.env})
	storeTok, debugTok := harness.APNsToken("store-iphone"), harness.APNsToken("debug-iphone")
	for _, d := range []struct{ user, token, provider, name string }{
		{"ana", "ana-pixel", "firebase", ""}, // no name: the firebase default, android
		{"sam", "sam-pixel-staging", "firebase", "android-staging"},
		{"ivy", storeTok, "apn", "ios"},
		{"dev", debugTok, "apn", "ios-dev"},
	} {
		if r := namedDevice(e, d.user, d.token, d.provider, d.name); r.Status != 201 {
			t.Fatalf("register %s naming %q: %d %s", d.token, d.name, r.Status, r.Raw)
		}
	}
	var list struct {
		Devices []struct {
			ID               string `json:"id"`
			PushProviderName string `json:"push_provider_name"`
		} `json:"devices"`
	}
	r := e.MustCall(200, "GET", "/v1/devices", e.Token("dev"), nil)
	if err := json.Unmarshal(r.Raw, &list); err != nil || len(list.Devices) != 1 || list.Devices[0].PushProviderName != "ios-dev" {
		t.Fatalf("GET /v1/devices does not show the device's push_provider_name: %s", r.Raw)
	}

	e.MustCall(201, "POST", "/v1/call/default/team", e.Token("boss"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("boss", "ana", "sam", "ivy", "dev")},
	})
	e.Eventually(30*time.Second, "each device's ring push", func() bool {
		return len(f.android.MessagesTo("ana-pixel")) == 1 && len(f.staging.MessagesTo("sam-pixel-staging")) == 1 &&
			len(f.ios.NotificationsTo(storeTok)) == 1 && len(f.iosDev.NotificationsTo(debugTok)) == 1
	})
	e.Quiet()
	// Each fake accepted only pushes sent with its own credentials (its OAuth tokens, its signing key), so a push
	// it holds went with its provider's credentials; and each holds nothing but its own device's push.
	for _, c := range []struct {
		name string
		got  int
	}{
		{"android", f.android.Count()}, {"android-staging", f.staging.Count()}, {"ios", f.ios.Count()}, {"ios-dev", f.iosDev.Count()},
	} {
		if c.got != 1 {
			t.Errorf("provider %s's endpoint got %d pushes, want only its own device's ring", c.name, c.got)
		}
	}
	if n := e.FCM.Count() + e.APNs.Count(); n != 0 {
		t.Errorf("the harness's own fakes, configured by no provider, got %d pushes", n)
	}
	if got := f.ios.NotificationsTo(storeTok)[0].Topic; got != storeTopic {
		t.Errorf("store build's push went with topic %q, want %q", got, storeTopic)
	}
	if got := f.iosDev.NotificationsTo(debugTok)[0].Topic; got != debugTopic {
		t.Errorf("debug build's push went with topic %q, want %q", got, debugTopic)
	}
	ms := harness.Scrape(t, e.URL)
	for _, name := range []string{"android", "android-staging", "ios", "ios-dev"} {
		if n := ms.Get("ringer_pushes_total", "provider_name", name, "type", "call.ring", "outcome", "sent"); n != 1 {
			t.Errorf("ringer_pushes_total{provider_name=%q,outcome=sent} = %v, want 1", name, n)
		}
	}

	// ringer push reaches a provider by name alone.
	out, stderr, code := runPushCommand(t, e, "--provider-name", "ios-dev", "--token", debugTok)
	if code != 0 || !strings.HasPrefix(out, "verdict=sent ") {
		t.Fatalf("ringer push --provider-name ios-dev: exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	if n := len(f.iosDev.NotificationsTo(debugTok)); n != 2 || f.ios.Count() != 1 {
		t.Errorf("ringer push --provider-name ios-dev: ios-dev has %d pushes to the token (want 2), ios %d (want 1)", n, f.ios.Count())
	}
}

func TestAPushProviderNameOfNoProviderOfTheDevicesTypeIsRefused(t *testing.T) {
	t.Parallel()
	f := startProviderFakes(t, "")
	e := harness.Start(t, harness.Options{Env: f.env})
	for _, c := range []struct{ why, provider, name string }{
		{"unknown name", "firebase", "android-prod"},
		{"a provider of the other type", "firebase", "ios"},
		{"an apn device naming a firebase provider", "apn", "android"},
	} {
		r := namedDevice(e, "ana", harness.APNsToken(c.why), c.provider, c.name)
		if r.Status != 400 || !strings.Contains(string(r.Raw), "push_provider_name") || !strings.Contains(string(r.Raw), c.name) {
			t.Errorf("%s: %d %s, want 400 naming push_provider_name and %q", c.why, r.Status, r.Raw, c.name)
		}
	}
	r := e.MustCall(200, "GET", "/v1/devices", e.Token("ana"), nil)
	if strings.Contains(string(r.Raw), `"id"`) {
		t.Errorf("a refused device was stored: %s", r.Raw)
	}
}

// The API still knows the provider (its file has it); the worker's file no longer does, as after a provider is
// removed from the file and the workers restarted.
func TestAPushToADeviceWhoseProviderWasRemovedIsRefusedVisiblyNotRetriedNorPruned(t *testing.T) {
	t.Parallel()
	f := startProviderFakes(t, "")
	doc, err := os.ReadFile(f.file)
	if err != nil {
		t.Fatal(err)
	}
	apiFile := f.writeFile("api-providers.yaml", string(doc)+fmt.Sprintf(
		"  - name: android-old\n    type: firebase\n    credentials_file: %s\n    endpoint: %s\n",
		f.staging.WriteCredentials(t.TempDir()), f.staging.Endpoint))
	e := harness.Start(t, harness.Options{Command: "api", Env: append(f.env, "RINGER_PROVIDERS_FILE="+apiFile)})
	w := e.StartProcess("worker", "RINGER_PROVIDERS_FILE="+f.file)
	if r := namedDevice(e, "old", "old-pixel", "firebase", "android-old"); r.Status != 201 {
		t.Fatalf("register a device naming android-old where the API knows it: %d %s", r.Status, r.Raw)
	}
	e.Device("old", "old-pixel-2", "firebase", false) // the default provider, still there

	e.MustCall(201, "POST", "/v1/call/default/gone", e.Token("boss"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("boss", "old")},
	})
	e.Eventually(30*time.Second, "the ring push to the default provider's device", func() bool {
		return len(f.android.MessagesTo("old-pixel-2")) == 1
	})
	e.Eventually(30*time.Second, "a push refused line for the removed provider", func() bool {
		return strings.Contains(w.Logs(), `"msg":"push refused"`) && strings.Contains(w.Logs(), `"provider_name":"android-old"`)
	})
	e.Quiet() // nothing left waiting for a retry
	refused := ""
	for _, l := range strings.Split(w.Logs(), "\n") {
		if strings.Contains(l, `"msg":"push refused"`) {
			refused = l
		}
	}
	if !strings.Contains(refused, `"reason":"provider not configured"`) || !strings.Contains(refused, "android-old") {
		t.Errorf("the push refused line does not give the reason: %s", refused)
	}
	if n := harness.Scrape(t, "http://"+w.Addr).Get("ringer_pushes_total", "provider_name", "android-old", "outcome", "rejected"); n != 1 {
		t.Errorf("ringer_pushes_total{provider_name=android-old,outcome=rejected} = %v, want 1 (refused once, not retried)", n)
	}
	if n := f.staging.Count(); n != 0 {
		t.Errorf("the removed provider's endpoint got %d pushes", n)
	}
	r := e.MustCall(200, "GET", "/v1/devices", e.Token("old"), nil)
	if !strings.Contains(string(r.Raw), `"old-pixel"`) {
		t.Errorf("the device of the removed provider was pruned; its token is not dead: %s", r.Raw)
	}
}

func TestARetryAfterFromOneProviderHoldsBackOnlyThatProvider(t *testing.T) {
	t.Parallel()
	f := startProviderFakes(t, "")
	e := harness.Start(t, harness.Options{Env: f.env})
	e.Device("ana", "ana-pixel", "firebase", false)
	e.Device("bea", "bea-pixel", "firebase", false)
	if r := namedDevice(e, "sam", "sam-pixel", "firebase", "android-staging"); r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	f.android.Script("ana-pixel", fakefcm.QuotaExceeded("30"))
	e.MustCall(201, "POST", "/v1/call/default/first", e.Token("boss"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("boss", "ana")},
	})
	e.Eventually(30*time.Second, "android's 429 to be heard", func() bool {
		return harness.Scrape(t, e.URL).Get("ringer_pushes_total", "provider_name", "android", "outcome", "retry") >= 1
	})
	e.MustCall(201, "POST", "/v1/call/default/second", e.Token("boss"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("boss", "sam", "bea")},
	})
	// Well inside android's 30 s: android-staging has its own quota.
	e.Eventually(10*time.Second, "android-staging's ring push while android is held back", func() bool {
		return len(f.staging.MessagesTo("sam-pixel")) == 1
	})
	e.Eventually(10*time.Second, "bea's push to be held back by the worker", func() bool {
		return harness.Scrape(t, e.URL).Get("ringer_pushes_total", "provider_name", "android", "outcome", "retry") >= 2
	})
	if n := f.android.Attempts("bea-pixel"); n != 0 {
		t.Errorf("android got %d attempts for bea while it asked to wait 30 s", n)
	}
}

func TestReadyzNamesEachFailingProvider(t *testing.T) {
	t.Parallel()
	f := startProviderFakes(t, "")
	e := harness.Start(t, harness.Options{Env: f.env})
	f.staging.FailTokenEndpoint(401)
	st, _, b := configGet(t, e, "/readyz")
	if st != 503 || !strings.Contains(string(b), "android-staging") || strings.Contains(string(b), "provider android ") {
		t.Fatalf("/readyz with android-staging's credentials failing: %d %s; want 503 naming android-staging alone", st, b)
	}
	f.staging.FailTokenEndpoint(0)
	waitReady(t, e)
}

func TestAProvidersFileWithProblemsRefusesTheStartOneLinePerProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "providers.yaml")
	doc := "providers:\n  - name: android\n    type: firebase\n    topic: com.example.app\n  - name: ios\n    type: apn\n    key_id: ABC\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	res := configRun(t, configWith(configBase(), "RINGER_PROVIDERS_FILE="+file), "serve")
	if res.code == 0 {
		t.Fatalf("ringer serve started with a bad providers file")
	}
	for _, want := range []string{
		`provider 1 "android": unknown key "topic" for a firebase provider`,
		`provider 2 "ios": key_file is missing`, `provider 2 "ios": team_id is missing`,
		`provider 2 "ios": topic is missing`, `provider 2 "ios": environment is missing`,
	} {
		found := false
		for _, l := range strings.Split(res.stderr, "\n") {
			found = found || strings.Contains(l, "RINGER_PROVIDERS_FILE "+file+": "+want)
		}
		if !found {
			t.Errorf("no line of stderr names the file and says %q:\n%s", want, res.stderr)
		}
	}

	both := configRun(t, configWith(configBase(), "RINGER_PROVIDERS_FILE="+file, "APNS_TOPIC=com.example.app"), "serve")
	if both.code == 0 || !strings.Contains(both.stderr, "RINGER_PROVIDERS_FILE and APNS_TOPIC are both set") {
		t.Errorf("the file and APNS_TOPIC together: exit %d, stderr:\n%s", both.code, both.stderr)
	}
	missing := configRun(t, configWith(configBase(), "RINGER_PROVIDERS_FILE="+filepath.Join(dir, "nope.yaml")), "serve")
	if missing.code == 0 || !strings.Contains(missing.stderr, "RINGER_PROVIDERS_FILE: open "+filepath.Join(dir, "nope.yaml")) {
		t.Errorf("a missing providers file: exit %d, stderr:\n%s", missing.code, missing.stderr)
	}
}
