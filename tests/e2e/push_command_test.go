package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// runPushCommand runs `ringer push args...` with the harness's provider configuration (the fakes) and returns
// its stdout and exit code.
func runPushCommand(t *testing.T, e *harness.Env, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runRinger(t, append(os.Environ(), e.Env...), append([]string{"push"}, args...)...)
}

func TestPushCommandSendsOneFCMPushAndPrintsTheAnswer(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	out, stderr, code := runPushCommand(t, e, "--token", "check-android", "--provider", "firebase")
	if code != 0 || !strings.HasPrefix(out, "verdict=sent ") || !strings.Contains(out, `id="projects/`) {
		t.Fatalf("ringer push firebase: exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	msgs := e.FCM.MessagesTo("check-android")
	if len(msgs) != 1 {
		t.Fatalf("fake FCM got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Data["type"] != "call.ring" || m.Data["sender"] != "ringer" || m.AndroidPriority != "high" || m.Notification != nil {
		t.Errorf("the test push is not a ring as API.md shapes it: %+v", m)
	}
}

func TestPushCommandSendsOneAPNsVoIPPush(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	tok := harness.APNsToken("check-voip")
	out, stderr, code := runPushCommand(t, e, "--token", tok, "--provider", "apn", "--voip")
	if code != 0 || !strings.HasPrefix(out, "verdict=sent ") {
		t.Fatalf("ringer push apn --voip: exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	ns := e.APNs.NotificationsTo(tok)
	if len(ns) != 1 {
		t.Fatalf("fake APNs got %d pushes, want 1", len(ns))
	}
	if n := ns[0]; n.PushType != "voip" || n.Topic != harness.Topic+".voip" || n.Data()["type"] != "call.ring" {
		t.Errorf("VoIP test push: push type %q, topic %q, type %q", n.PushType, n.Topic, n.Data()["type"])
	}
}

// TestPushCommandPrintsTheProvidersVerdictAndFails: a dead token is what a team checking its setup must see,
// in the provider's own terms, with a failing exit code for scripts.
func TestPushCommandPrintsTheProvidersVerdictAndFails(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.FCM.Script("dead-android", fakefcm.Unregistered())
	out, _, code := runPushCommand(t, e, "--token", "dead-android", "--provider", "firebase")
	if code == 0 || !strings.HasPrefix(out, "verdict=unregistered ") {
		t.Fatalf("ringer push to an unregistered token: exit %d, stdout %q", code, out)
	}
	if _, stderr, code := runPushCommand(t, e, "--token", "x", "--provider", "carrier-pigeon"); code == 0 ||
		!strings.Contains(stderr, "--provider firebase|apn") {
		t.Errorf("ringer push --provider carrier-pigeon: exit %d, stderr %q", code, stderr)
	}
}
