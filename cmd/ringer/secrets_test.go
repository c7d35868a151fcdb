package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEverySecretIsReadFromTheFileItsFileVariableNames(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := map[string]string{"RINGER_ADDR": "0.0.0.0:8080"}
	want := map[string]string{}
	for _, name := range fileSecrets {
		env[name+"_FILE"] = write(name, "value of "+name+"\n")
		want[name] = "value of " + name
	}
	getenv, err := withFileSecrets(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range want {
		if got := getenv(name); got != v {
			t.Errorf("%s = %q, want %q (the file's content without its newline)", name, got, v)
		}
	}
	if got := getenv("RINGER_ADDR"); got != "0.0.0.0:8080" {
		t.Errorf("a variable without _FILE changed: %q", got)
	}
}

func TestASecretSetTwiceOrInAMissingFileStopsTheStartNamingIt(t *testing.T) {
	env := map[string]string{
		"RINGER_API_SECRET": "x", "RINGER_API_SECRET_FILE": "/dev/null",
		"RINGER_DASHBOARD_PASSWORD_FILE": filepath.Join(t.TempDir(), "missing"),
	}
	_, err := withFileSecrets(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"RINGER_API_SECRET and RINGER_API_SECRET_FILE are both set", "RINGER_DASHBOARD_PASSWORD_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}
