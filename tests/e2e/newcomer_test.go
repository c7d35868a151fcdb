package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// runBinary runs `ringer args...` with exactly env (no provider credentials unless env has them).
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runRinger(t, append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...), args...)
}

// runRinger runs `ringer args...` with the whole environment env and returns what it printed and its exit code.
func runRinger(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("ringer %v did not exit within 60s; stderr:\n%s", args, errOut.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run ringer %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func TestPushCommandWithoutCredentialsSaysThePushWasOnlyLoggedAndFails(t *testing.T) {
	t.Parallel()
	for _, provider := range []string{"firebase", "apn"} {
		out, errOut, code := runBinary(t, nil, "push", "--token", harness.APNsToken("x"), "--provider", provider)
		if code == 0 {
			t.Errorf("%s: exit 0 with no credentials; stdout %q", provider, out)
		}
		if strings.Contains(out, "verdict=sent") || !strings.Contains(out, "only logged") {
			t.Errorf("%s: stdout %q, want it to say the push was only logged", provider, out)
		}
		if !strings.Contains(errOut, "credentials") {
			t.Errorf("%s: stderr %q, want it to name the missing credentials", provider, errOut)
		}
	}
}

func TestVersionPrintsTheModuleAndItsRevision(t *testing.T) {
	t.Parallel()
	out, _, code := runBinary(t, nil, "version")
	if code != 0 || !regexp.MustCompile(`^ringer \S+`).MatchString(out) || !strings.Contains(out, "github.com/ringer-dev/ringer") {
		t.Fatalf("ringer version: exit %d, %q", code, out)
	}
}

func TestSecretsAreReadFromFilesNamedByTheirFileVariables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := dir + "/api-secret"
	if err := os.WriteFile(secret, []byte("a-secret-from-a-file-of-at-least-32-bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, _, code := runBinary(t, []string{"RINGER_API_SECRET_FILE=" + secret}, "token", "--user", "alice", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("ringer token with RINGER_API_SECRET_FILE: exit %d", code)
	}
	fromEnv, _, _ := runBinary(t, []string{"RINGER_API_SECRET=a-secret-from-a-file-of-at-least-32-bytes"}, "token", "--user", "alice", "--ttl", "1h")
	// Tokens carry iat in seconds: compare the signatures only when minted in the same second.
	if strings.Count(fromFile, ".") != 2 || fromFile[:strings.LastIndex(fromFile, ".")] == fromEnv[:strings.LastIndex(fromEnv, ".")] && fromFile != fromEnv {
		t.Errorf("a token signed with the file's secret (%q) differs from one signed with the same secret in the environment (%q)", fromFile, fromEnv)
	}

	_, errOut, code := runBinary(t, []string{"RINGER_API_SECRET_FILE=" + dir + "/missing"}, "token", "--user", "alice")
	if code == 0 || !strings.Contains(errOut, "RINGER_API_SECRET_FILE") {
		t.Errorf("a missing secret file: exit %d, stderr %q; want a failure naming RINGER_API_SECRET_FILE", code, errOut)
	}
	_, errOut, code = runBinary(t, []string{"RINGER_API_SECRET=x", "RINGER_API_SECRET_FILE=" + secret}, "token", "--user", "alice")
	if code == 0 || !strings.Contains(errOut, "RINGER_API_SECRET") {
		t.Errorf("both variables set: exit %d, stderr %q; want a failure naming them", code, errOut)
	}
}
