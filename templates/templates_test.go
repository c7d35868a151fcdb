package templates_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
)

var (
	allEvents    = []string{queue.EventRing, queue.EventNotification, queue.EventMissed, queue.EventReminder}
	allPlatforms = []string{providers.Firebase, providers.APN}
)

func load(t testing.TB, dir string) *templates.Set {
	t.Helper()
	s, err := templates.Load(dir)
	if err != nil {
		t.Fatalf("Load(%q): %v", dir, err)
	}
	return s
}

// overrideDir writes files (name -> text) into a fresh folder.
func overrideDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func render(t testing.TB, s *templates.Set, event, platform string, d templates.Data) templates.Rendered {
	t.Helper()
	r, err := s.Render(event, platform, d)
	if err != nil {
		t.Fatalf("Render(%s, %s): %v", event, platform, err)
	}
	return r
}

// wireLen is what s takes in a JSON payload, as the provider clients encode it.
func wireLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b) - 2
}

func TestDefaultsRenderForEveryEventAndPlatform(t *testing.T) {
	s := load(t, "")
	d := templates.Data{
		CallCID: "default:abc", CallType: "default", CallID: "abc", CallDisplayName: "Standup",
		CallerID: "alice", CallerName: "Alice", ReceiverID: "bob", Custom: map[string]any{"topic": "q3"},
	}
	want := map[string]templates.Rendered{
		queue.EventRing:         {"Incoming audio call from Alice", "Standup"},
		queue.EventNotification: {"Alice started a call", "Join Standup"},
		queue.EventMissed:       {"Missed call from Alice", "Standup · Audio call"},
		queue.EventReminder:     {"Standup starts soon", "Audio call with Alice: tap to join"},
	}
	wantEverywhere(t, s, d, want)
}

// wantEverywhere fails unless d renders as want[event] for each event of want on every platform.
func wantEverywhere(t *testing.T, s *templates.Set, d templates.Data, want map[string]templates.Rendered) {
	t.Helper()
	for ev, w := range want {
		for _, pl := range allPlatforms {
			if got := render(t, s, ev, pl, d); got != w {
				t.Errorf("%s on %s in %q = %+v, want %+v", ev, pl, d.Locale, got, w)
			}
		}
	}
}

func TestDefaultsReadWellWithEmptyFields(t *testing.T) {
	s := load(t, "")
	want := map[string]templates.Rendered{
		queue.EventRing:         {"Incoming video call from alice", "Tap to answer"},
		queue.EventNotification: {"alice started a video call", "Tap to join"},
		queue.EventMissed:       {"Missed video call from alice", "Video call"},
		queue.EventReminder:     {"A call with alice starts soon", "Video call with alice: tap to join"},
	}
	for _, ev := range allEvents {
		for _, pl := range allPlatforms {
			// No caller name: the caller id stands in. No display name, no custom object.
			if got := render(t, s, ev, pl, templates.Data{CallerID: "alice", Video: true}); got != want[ev] {
				t.Errorf("%s on %s = %+v, want %+v", ev, pl, got, want[ev])
			}
			// Nothing at all still reads as a sentence.
			got := render(t, s, ev, pl, templates.Data{})
			for _, text := range []string{got.Title, got.Body} {
				if text == "" || strings.Contains(text, "<no value>") || strings.Contains(text, "  ") {
					t.Errorf("%s on %s with no data: %+v", ev, pl, got)
				}
			}
		}
	}
}

func TestAnOverrideReplacesOneTemplateAndKeepsTheRest(t *testing.T) {
	dir := overrideDir(t, map[string]string{
		"call.missed.apn.title.tmpl": "You missed {{.CallerName}} ({{.Custom.topic}})\n",
	})
	s := load(t, dir)
	d := templates.Data{CallerID: "alice", CallerName: "Alice", Custom: map[string]any{"topic": "q3"}}
	if got := render(t, s, queue.EventMissed, providers.APN, d); got.Title != "You missed Alice (q3)" || got.Body != "Audio call" {
		t.Errorf("overridden = %+v, want the new title (trimmed) and the default body", got)
	}
	if got := render(t, s, queue.EventMissed, providers.Firebase, d); got.Title != "Missed call from Alice" {
		t.Errorf("other platform's title = %q, want the default", got.Title)
	}
}

func TestMissingOrNullCustomKeysRenderEmpty(t *testing.T) {
	dir := overrideDir(t, map[string]string{
		"call.notification.firebase.title.tmpl": "[{{.Custom.topic}}|{{.Custom.a.b}}|{{$.Custom.n}}|{{if .Custom.flag}}flag{{end}}]",
	})
	s := load(t, dir)
	for _, c := range []map[string]any{
		nil,
		{},
		{"topic": nil, "a": nil, "n": nil, "flag": nil},
		{"a": map[string]any{}},
	} {
		got := render(t, s, queue.EventNotification, providers.Firebase, templates.Data{Custom: c})
		if got.Title != "[|||]" {
			t.Errorf("custom %v: title %q, want [|||]", c, got.Title)
		}
	}
	c := map[string]any{"topic": "t", "a": map[string]any{"b": 2.5}, "n": true, "flag": true}
	if got := render(t, s, queue.EventNotification, providers.Firebase, templates.Data{Custom: c}); got.Title != "[t|2.5|true|flag]" {
		t.Errorf("custom %v: title %q", c, got.Title)
	}
	if _, ok := c["missing"]; ok || len(c) != 4 {
		t.Errorf("Render changed the caller's custom object: %v", c)
	}
}

func TestLoadFailsOnABadTemplateNamingTheFile(t *testing.T) {
	for name, text := range map[string]string{
		"does not parse":       "{{.CallerName",
		"unknown function":     "{{shout .CallerName}}",
		"unknown field":        "{{.CallerNmae}}",
		"not a custom map key": "{{.Video.x}}",
	} {
		t.Run(name, func(t *testing.T) {
			dir := overrideDir(t, map[string]string{"call.ring.apn.body.tmpl": text})
			_, err := templates.Load(dir)
			if err == nil || !strings.Contains(err.Error(), "call.ring.apn.body.tmpl") {
				t.Errorf("Load = %v, want an error naming call.ring.apn.body.tmpl", err)
			}
		})
	}
}

func TestLoadFailsOnAnOversizedTemplateNamingTheFileAndSizes(t *testing.T) {
	for name, text := range map[string]string{
		"long literal":           strings.Repeat("x", 2100),
		"escapes count":          strings.Repeat("<", 400), // 400 bytes, 2400 JSON-escaped
		"long with long data":    strings.Repeat("{{.CallerName}}", 9),
		"whole custom object":    "{{.Custom}}",
		"every custom value":     "{{range .Custom}}{{.}}{{end}}",
		"named custom key, many": strings.Repeat("{{.Custom.topic}}", 9),
	} {
		t.Run(name, func(t *testing.T) {
			dir := overrideDir(t, map[string]string{"call.notification.firebase.body.tmpl": text})
			_, err := templates.Load(dir)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, want := range []string{"call.notification.firebase.body.tmpl", "2048"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load = %v, want it to name %q", err, want)
				}
			}
		})
	}
}

func TestLoadFailsOnAnUnknownFileNamingIt(t *testing.T) {
	for _, name := range []string{
		"call.mised.apn.title.tmpl",    // event typo
		"call.missed.apns.title.tmpl",  // platform typo
		"call.missed.apn.titel.tmpl",   // part typo
		"call.missed.apn.title.tpl",    // extension
		"call.accepted.apn.title.tmpl", // event without text
		"call.missed.title.tmpl",       // no platform
		"README.md",
	} {
		t.Run(name, func(t *testing.T) {
			dir := overrideDir(t, map[string]string{name: "hello"})
			_, err := templates.Load(dir)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("Load = %v, want an error naming %s", err, name)
			}
		})
	}
	t.Run("folder", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "apn"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := templates.Load(dir); err == nil || !strings.Contains(err.Error(), "apn") {
			t.Errorf("Load = %v, want an error naming the folder", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		if _, err := templates.Load(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Error("Load of a missing folder succeeded")
		}
	})
}

// A ConfigMap volume holds the files as links into a hidden ..data folder; editors leave hidden swap files.
func TestLoadSkipsHiddenEntries(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_01_01")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	name := "call.missed.firebase.title.tmpl"
	if err := os.WriteFile(filepath.Join(data, name), []byte("Missed: {{.CallerName}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"..data": "..2026_01_01", name: filepath.Join("..data", name)} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".call.missed.apn.title.tmpl.swp"), []byte{0, 1}, 0o644); err != nil {
		t.Fatal(err)
	}
	s := load(t, dir)
	if got := render(t, s, queue.EventMissed, providers.Firebase, templates.Data{CallerName: "Al"}); got.Title != "Missed: Al" {
		t.Errorf("title = %q, want the linked override", got.Title)
	}
}

func TestRenderOfAnUnknownEventOrPlatformFails(t *testing.T) {
	s := load(t, "")
	for _, c := range [][2]string{{"call.accepted", "apn"}, {"call.ring", "apns"}, {"", ""}} {
		if _, err := s.Render(c[0], c[1], templates.Data{}); !errors.Is(err, templates.ErrUnknown) {
			t.Errorf("Render(%q, %q) = %v, want ErrUnknown", c[0], c[1], err)
		}
	}
}

func TestAnOverrideThatFailsOnTheDataFallsBackToTheDefault(t *testing.T) {
	// Load checks with topic as an object; a call whose topic is a string makes .topic.name fail.
	s := load(t, overrideDir(t, map[string]string{"call.missed.apn.body.tmpl": "{{.Custom.topic.name}}"}))
	got := render(t, s, queue.EventMissed, providers.APN, templates.Data{Custom: map[string]any{"topic": "plain"}})
	if got.Body != "Audio call" {
		t.Errorf("body = %q, want the default's", got.Body)
	}
}

func TestRenderCutsTitleAndBodyToTheBudgetOnAUTF8Boundary(t *testing.T) {
	s := load(t, "testdata/long")
	long := strings.Repeat("日本語🎉<", 200)
	d := templates.Data{CallerName: long, CallDisplayName: long, Custom: map[string]any{"topic": long, "meta": map[string]any{"note": long}}}
	for _, pl := range allPlatforms {
		got := render(t, s, queue.EventNotification, pl, d)
		// Together they are cut to the budget, not below it by more than one rune and the ellipsis.
		if n := wireLen(got.Title) + wireLen(got.Body); n > templates.Budget(pl) || n < templates.Budget(pl)-12 {
			t.Errorf("%s: title and body take %d bytes, budget %d", pl, n, templates.Budget(pl))
		}
		if !utf8.ValidString(got.Title) || !utf8.ValidString(got.Body) {
			t.Errorf("%s: invalid UTF-8 in %+v", pl, got)
		}
		if !strings.HasSuffix(got.Body, "…") {
			t.Errorf("%s: body %q does not show it was cut", pl, got.Body)
		}
		if wireLen(got.Title) < templates.Budget(pl)/4-8 {
			t.Errorf("%s: title cut to %d bytes, want about a quarter of the budget at least", pl, wireLen(got.Title))
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
	}{
		{"hello", 5, "hello"},
		{"hello world", 8, "hello…"}, // "hello" + "…" (3 bytes); the space before the cut goes
		{"héllo", 5, "h…"},           // é is 2 bytes: "hé…" would be 6
		{"日本語", 8, "日…"},
		{"<<<<", 9, "<…"}, // '<' takes 6 escaped
		{"abc", 2, ""},    // no room even for the ellipsis
		{"a\xffb", 8, "a\ufffdb"},
		{"", 0, ""},
	}
	for _, tt := range tests {
		got := templates.Truncate(tt.in, tt.limit)
		if got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
		if wireLen(got) > tt.limit || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q: %d bytes escaped or invalid UTF-8", tt.in, tt.limit, got, wireLen(got))
		}
	}
}

func TestPayloadLimits(t *testing.T) {
	for _, tt := range []struct {
		platform string
		voip     bool
		limit    int
	}{
		{providers.APN, false, 4096},
		{providers.APN, true, 5120},
		{providers.Firebase, false, 4096},
		{"gcm", false, 0},
	} {
		if got := templates.PayloadLimit(tt.platform, tt.voip); got != tt.limit {
			t.Errorf("PayloadLimit(%s, %v) = %d, want %d", tt.platform, tt.voip, got, tt.limit)
		}
	}
	if got := templates.Budget(providers.APN); got != 4096-templates.DataReserve {
		t.Errorf("Budget(apn) = %d", got)
	}
}

// FuzzRender feeds any strings as the caller's name and custom values to the built-in templates and to
// overrides that print custom values many times: no panic, no error, valid UTF-8, within the budget.
func FuzzRender(f *testing.F) {
	f.Add("standup", "Alice")
	sets := []*templates.Set{load(f, ""), load(f, "testdata/long")}
	f.Fuzz(func(t *testing.T, custom, callerName string) {
		d := templates.Data{
			CallCID: "default:" + custom, CallDisplayName: custom, CallerID: "alice", CallerName: callerName,
			Custom: map[string]any{"topic": custom, "meta": map[string]any{"note": custom}, "gone": nil, "list": []any{custom}},
		}
		for _, s := range sets {
			for _, ev := range allEvents {
				for _, pl := range allPlatforms {
					got, err := s.Render(ev, pl, d)
					if err != nil {
						t.Fatalf("Render(%s, %s): %v", ev, pl, err)
					}
					if !utf8.ValidString(got.Title) || !utf8.ValidString(got.Body) {
						t.Fatalf("%s on %s: invalid UTF-8 in %q", ev, pl, got)
					}
					if n := wireLen(got.Title) + wireLen(got.Body); n > templates.Budget(pl) {
						t.Fatalf("%s on %s: %d bytes, budget %d", ev, pl, n, templates.Budget(pl))
					}
					if got.Title == "" {
						t.Fatalf("%s on %s: empty title", ev, pl)
					}
				}
			}
		}
	})
}

// TestAMemoReusesOnlyTextsThatCannotSeeTheReceiver: through one Memo, a notification to many members renders
// the same text as Render for each of them, the override that greets each by name included.
func TestAMemoReusesOnlyTextsThatCannotSeeTheReceiver(t *testing.T) {
	s := load(t, overrideDir(t, map[string]string{
		"call.notification.firebase.title.tmpl": `Hi {{.ReceiverID}}`,
		"call.notification.firebase.body.tmpl":  `{{.CallerName}} started a call`,
	}))
	memo := s.Memo()
	for _, receiver := range []string{"bob", "carol", "dave"} {
		for _, locale := range []string{"", "de", "de-AT"} {
			for _, platform := range []string{providers.Firebase, providers.APN} {
				d := templates.Data{CallCID: "default:c1", CallerName: "Alice", ReceiverID: receiver, Locale: locale}
				got, err := memo.Render(queue.EventNotification, platform, d)
				if err != nil {
					t.Fatal(err)
				}
				if want := render(t, s, queue.EventNotification, platform, d); got != want {
					t.Errorf("%s %s %q: memo rendered %+v, Render %+v", receiver, platform, locale, got, want)
				}
			}
		}
	}
	if got, err := memo.Render(queue.EventNotification, providers.Firebase, templates.Data{CallerName: "Alice", ReceiverID: "erin"}); err != nil || got.Title != "Hi erin" {
		t.Errorf("the override greeting erin: %+v, %v", got, err)
	}
}
