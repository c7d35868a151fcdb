package ops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// drainSlack is what a drained process may take beyond RINGER_SHUTDOWN_TIMEOUT to exit: a race-enabled
// build on a busy two-core machine.
const drainSlack = 6 * time.Second

func TestSIGTERMDrainsWithinTheShutdownTimeoutAndHandsBackTheStuckPush(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	e := harness.Start(t, harness.Options{Command: "api", Env: []string{"RINGER_SHUTDOWN_TIMEOUT=" + timeout.String()}})
	w := e.StartProcess("worker")
	api := e.StartProcess("api")
	e.Android("bob")
	e.FCM.Script("bob-android", fakefcm.Hang())      // the provider never answers this push
	events := via(e, api).Events(e.Token("bob"), "") // an open event stream must not hold the api's drain
	e.MustCall(201, "POST", "/v1/call/default/drain", e.Token("alice"), ringBody([]string{"bob"}, 60000))
	harness.Eventually(t, 20*time.Second, "the worker to be stuck in the push", func() bool { return e.FCM.Attempts("bob-android") > 0 })

	for _, p := range []struct {
		name string
		proc *harness.Process
	}{{"worker", w}, {"api", api}} {
		start := time.Now()
		if !p.proc.Stop(timeout + drainSlack) {
			t.Fatalf("ringer %s still runs %s after SIGTERM with RINGER_SHUTDOWN_TIMEOUT=%s", p.name, timeout+drainSlack, timeout)
		}
		took := time.Since(start)
		t.Logf("ringer %s drained in %s", p.name, took.Round(time.Millisecond))
		if code := p.proc.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("ringer %s exit code after SIGTERM: %d, want 0\n%s", p.name, code, harness.Tail(p.proc.Logs(), 20))
		}
		for _, want := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
			if !strings.Contains(p.proc.Logs(), want) {
				t.Errorf("ringer %s logs lack %s", p.name, want)
			}
		}
	}
	events.Close()

	// Nothing is lost: the push the stopped worker held is handed back and another worker delivers it once.
	e.StartProcess("worker")
	harness.Eventually(t, 60*time.Second, "the handed-back ring push", func() bool { return len(e.FCM.MessagesTo("bob-android")) > 0 })
	if got := e.FCMTypes("bob-android"); len(got) != 1 || got[0] != "call.ring" {
		t.Errorf("bob-android got %v after the drain, want one call.ring", got)
	}
}

func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	status, body := get(t, base+"/readyz", "", "")
	return status, string(body)
}

func TestReadyzFailsWhileRedisIsUnreachable(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	w := e.StartProcess("worker") // a process without the API serves /readyz too
	bases := []string{e.URL, "http://" + w.Addr}
	for _, b := range bases {
		if status, body := readyz(t, b); status != 200 {
			t.Fatalf("%s/readyz with Redis up: %d %s", b, status, body)
		}
	}
	e.Redis.Stop()
	for _, b := range bases {
		harness.Eventually(t, 20*time.Second, b+"/readyz to fail with Redis stopped", func() bool {
			status, body := readyz(t, b)
			return status == 503 && strings.Contains(strings.ToLower(body), "redis")
		})
		if status, _ := get(t, b+"/healthz", "", ""); status != 200 {
			t.Errorf("%s/healthz with Redis stopped: %d, want 200 (the process is up)", b, status)
		}
	}
	e.Redis.Restart(t)
	for _, b := range bases {
		harness.Eventually(t, 30*time.Second, b+"/readyz to pass with Redis back", func() bool {
			status, _ := readyz(t, b)
			return status == 200
		})
	}
}

func TestReadyzFailsWhileFCMRejectsTheCredentials(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.FCM.FailTokenEndpoint(401) // Google's token endpoint refuses the service account
	p := e.StartProcess("api")   // a fresh process: no access token cached
	base := "http://" + p.Addr
	harness.Eventually(t, 20*time.Second, "/readyz to fail while FCM refuses the credentials", func() bool {
		status, body := readyz(t, base)
		return status == 503 && strings.Contains(strings.ToLower(body), "fcm")
	})
	e.FCM.FailTokenEndpoint(0)
	harness.Eventually(t, 20*time.Second, "/readyz to pass once FCM takes the credentials", func() bool {
		status, _ := readyz(t, base)
		return status == 200
	})
}

func TestReadyzFailsWhileAPNsRejectsTheKey(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	// A well-formed .p8 key that APNs does not know: every push with it gets 403 InvalidProviderToken.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "AuthKey_UNKNOWN123.p8")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.StartProcess("api", "APNS_KEY_FILE="+path, "APNS_KEY_ID=UNKNOWN123")
	harness.Eventually(t, 20*time.Second, "/readyz to fail while APNs rejects the key (403 InvalidProviderToken)", func() bool {
		status, body := readyz(t, "http://"+p.Addr)
		return status == 503 && strings.Contains(strings.ToLower(body), "apns")
	})
}
