package registry

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/providers"
)

// files writes a credentials file and a key file the entries below can name, and returns their paths.
func files(t *testing.T) (cred, key string) {
	t.Helper()
	dir := t.TempDir()
	cred, key = filepath.Join(dir, "fcm.json"), filepath.Join(dir, "AuthKey_ABC.p8")
	for _, p := range []string{cred, key} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cred, key
}

func TestAValidFileGivesEveryProviderWithItsDefaults(t *testing.T) {
	cred, key := files(t)
	specs, errs := Parse([]byte(`
providers:
  - name: android
    type: firebase
    credentials_file: ` + cred + `
    endpoint: http://127.0.0.1:9/v1
  - name: ios
    type: apn
    key_file: ` + key + `
    key_id: ABC
    team_id: TEAM
    topic: com.example.app
    environment: production
    default: true
  - name: ios-dev
    type: apn
    key_file: ` + key + `
    key_id: ABC
    team_id: TEAM
    topic: com.example.app.debug
    environment: development
`))
	if len(errs) > 0 {
		t.Fatalf("valid file refused: %v", errs)
	}
	want := []Spec{
		{Name: "android", Type: providers.Firebase, Default: true, CredentialsFile: cred, Endpoint: "http://127.0.0.1:9/v1"},
		{Name: "ios", Type: providers.APN, Default: true, KeyFile: key, KeyID: "ABC", TeamID: "TEAM", Topic: "com.example.app", Environment: "production"},
		{Name: "ios-dev", Type: providers.APN, KeyFile: key, KeyID: "ABC", TeamID: "TEAM", Topic: "com.example.app.debug", Environment: "development"},
	}
	if len(specs) != len(want) {
		t.Fatalf("got %d providers, want %d: %+v", len(specs), len(want), specs)
	}
	for i := range want {
		if specs[i] != want[i] {
			t.Errorf("provider %d = %+v, want %+v (the only firebase provider is its default)", i+1, specs[i], want[i])
		}
	}
}

// Each configuration problem is one line naming the entry and the key.
func TestEachProblemOfTheFileIsOneLineNamingTheEntryAndTheKey(t *testing.T) {
	cred, key := files(t)
	apn := func(name string, extra string) string {
		return "  - name: " + name + "\n    type: apn\n    key_file: " + key + "\n    key_id: ABC\n    team_id: TEAM\n    topic: com.example.app\n    environment: production\n" + extra
	}
	cases := []struct {
		name, doc string
		want      []string // each a substring of its own line
	}{
		{"unknown key", "providers:\n  - name: android\n    type: firebase\n    credentials_file: " + cred + "\n    projectid: x\n",
			[]string{`provider 1 "android": unknown key "projectid" for a firebase provider`}},
		{"a key of the other type", "providers:\n  - name: android\n    type: firebase\n    topic: com.example.app\n",
			[]string{`provider 1 "android": unknown key "topic" for a firebase provider (it belongs to apn providers)`}},
		{"missing fields", "providers:\n  - name: ios\n    type: apn\n    key_file: " + key + "\n    environment: production\n",
			[]string{`provider 1 "ios": key_id is missing`, `provider 1 "ios": team_id is missing`, `provider 1 "ios": topic is missing`}},
		{"missing name", "providers:\n  - type: firebase\n", []string{"provider 1: name is missing"}},
		{"missing type", "providers:\n  - name: x\n", []string{`provider 1 "x": type is missing`}},
		{"bad type", "providers:\n  - name: x\n    type: webpush\n", []string{`provider 1 "x": type "webpush" is neither firebase nor apn`}},
		{"bad name", "providers:\n  - name: Android App\n    type: firebase\n", []string{`provider 1 "Android App": name: must match`}},
		{"two defaults of a type", "providers:\n" + apn("ios", "    default: true\n") + apn("ios-dev", "    default: true\n"),
			[]string{"default: apn providers ios, ios-dev are each marked default"}},
		{"several of a type and no default", "providers:\n" + apn("ios", "") + apn("ios-dev", ""),
			[]string{"default: none of the apn providers ios, ios-dev is marked default"}},
		{"same name twice", "providers:\n" + apn("ios", "") + "  - name: ios\n    type: firebase\n",
			[]string{`provider 2 "ios": name: provider 1 has the same name`}},
		{"unreadable credentials file", "providers:\n  - name: android\n    type: firebase\n    credentials_file: /nonexistent/fcm.json\n",
			[]string{`provider 1 "android": credentials_file: open /nonexistent/fcm.json: no such file or directory`}},
		{"bad environment", "providers:\n  - name: ios\n    type: apn\n    key_file: " + key + "\n    key_id: A\n    team_id: T\n    topic: t\n    environment: sandbox\n",
			[]string{`provider 1 "ios": environment "sandbox" is neither production nor development`}},
		{"apn endpoint not https", "providers:\n" + apn("ios", "    endpoint: http://127.0.0.1:9\n"),
			[]string{`provider 1 "ios": endpoint "http://127.0.0.1:9" is not an https URL`}},
		{"default not a bool", "providers:\n  - name: android\n    type: firebase\n    default: yes please\n",
			[]string{`provider 1 "android": default: want true or false`}},
		{"unknown top-level key", "provider:\n  - name: android\n", []string{`field provider not found`}},
		{"empty list", "providers: []\n", []string{"providers: the list is empty or missing"}},
		{"empty file", "", []string{"the file is empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			specs, errs := Parse([]byte(c.doc))
			if len(errs) == 0 {
				t.Fatalf("accepted: %+v", specs)
			}
			if specs != nil {
				t.Errorf("a refused file still gave providers: %+v", specs)
			}
			if len(errs) != len(c.want) {
				t.Errorf("got %d problems, want %d: %q", len(errs), len(c.want), errs)
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), "\n") {
					t.Errorf("problem spans lines: %q", e)
				}
			}
			for _, w := range c.want {
				found := false
				for _, e := range errs {
					found = found || strings.Contains(e.Error(), w)
				}
				if !found {
					t.Errorf("no problem says %q; got %q", w, errs)
				}
			}
		})
	}
}

func TestAFileThatCannotBeReadIsNamed(t *testing.T) {
	_, err := ReadFile("/nonexistent/providers.yaml")
	if err == nil || !strings.Contains(err.Error(), "RINGER_PROVIDERS_FILE: open /nonexistent/providers.yaml") {
		t.Fatalf("err = %v, want one naming RINGER_PROVIDERS_FILE and the path", err)
	}
}

func TestEveryProblemOfAFileIsReportedAtOnceEachOnItsOwnLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "providers.yaml")
	doc := "providers:\n  - name: a\n    type: firebase\n    colour: red\n  - name: b\n    type: apn\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	// a's unknown key; b's five missing keys
	if len(lines) != 6 {
		t.Fatalf("got %d lines, want 6:\n%s", len(lines), err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "RINGER_PROVIDERS_FILE "+path+": provider ") {
			t.Errorf("line %q does not name the file and the entry", l)
		}
	}
}

func TestADeviceMayNameOnlyAProviderOfItsType(t *testing.T) {
	set, err := Build(context.Background(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing configured: each type's pushes go to the log sink, and no name is known.
	if p := set.Default(providers.Firebase); p == nil || !p.Logged {
		t.Errorf("firebase default with nothing configured = %+v, want the log sink", p)
	}
	if err := set.Known(providers.Firebase, ""); err != nil {
		t.Errorf("no name with nothing configured: %v", err)
	}
	if err := set.Known(providers.Firebase, "android"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown name: err = %v, want ErrUnknown", err)
	}
	if err := set.Check(context.Background()); err != nil {
		t.Errorf("nothing configured is ready: %v", err)
	}
}
