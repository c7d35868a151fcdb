package faults

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// Provider faults: what ringer does with each answer a provider gives when things go wrong. Token verdicts
// (APNs 410 Unregistered and 400 BadDeviceToken, FCM UNREGISTERED, SENDER_ID_MISMATCH and INVALID_ARGUMENT
// for the token) are proven in tests/e2e/devices_test.go (TestDeadTokensArePrunedOnTheProvidersWord: pruned,
// tried once, the member's other devices still rung), and /readyz on refused FCM credentials in
// tests/e2e/config_test.go (TestReadyzIs503WhenFCMCredentialsFail).

// minRetryGap is the least time between two tries of one push that still counts as backing off. The ring
// queue's first retry waits 50-100 ms (jittered 100 ms), the notify queue's 0.5-1 s; an immediate retry comes
// within a few milliseconds. The bound is low because the attempt watcher can see an attempt late on a busy
// machine, which shortens the gap it measures.
const minRetryGap = 25 * time.Millisecond

// TestProviderOutagesAreRetriedWithBackoffAndDeliveredOnce scripts each provider's outage answers three
// times for one device: FCM 503 UNAVAILABLE and 500 INTERNAL, APNs 500, 503 and 429 TooManyRequests (APNs
// sends no Retry-After). Each push must be tried again, never at once, with waits that grow, and reach its
// device exactly once.
func TestProviderOutagesAreRetriedWithBackoffAndDeliveredOnce(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	type outage struct {
		name     string
		token    string
		provider string
		notify   bool
		answers  int
		// minSpan is the least time from the first try to the delivery: the sum of the shortest waits.
		minSpan time.Duration
	}
	ringSpan := 300 * time.Millisecond // 50 + 100 + 200 ms, the least of three jittered ring retries, less slack
	cases := []outage{
		{"fcm-unavailable", "out-fcm-unavailable", "firebase", false, 3, ringSpan},
		{"fcm-internal", "out-fcm-internal", "firebase", false, 3, ringSpan},
		{"apns-500", harness.APNsToken("out-apns-500"), "apn", false, 3, ringSpan},
		{"apns-503", harness.APNsToken("out-apns-503"), "apn", false, 3, ringSpan},
		{"apns-429", harness.APNsToken("out-apns-429"), "apn", false, 3, ringSpan},
		// A notification's first retry waits 0.5 to 1 s.
		{"notify-fcm-internal", "out-notify-fcm-internal", "firebase", true, 1, 400 * time.Millisecond},
	}
	var fcmTokens, apnsTokens []string
	for _, c := range cases {
		user := "u-" + c.name
		switch c.provider {
		case "firebase":
			e.Device(user, c.token, "firebase", false)
			fcmTokens = append(fcmTokens, c.token)
		case "apn":
			e.Device(user, c.token, "apn", true)
			apnsTokens = append(apnsTokens, c.token)
		}
		for range c.answers {
			switch c.name {
			case "fcm-unavailable":
				e.FCM.Script(c.token, fakefcm.Unavailable(""))
			case "fcm-internal", "notify-fcm-internal":
				e.FCM.Script(c.token, fakefcm.Internal())
			case "apns-500":
				e.APNs.Script(c.token, fakeapns.InternalServerError())
			case "apns-503":
				e.APNs.Script(c.token, fakeapns.ServiceUnavailable())
			case "apns-429":
				e.APNs.Script(c.token, fakeapns.TooManyRequests())
			}
		}
	}
	fcmClock := watchAttempts(t, e.FCM.Attempts, fcmTokens...)
	apnsClock := watchAttempts(t, e.APNs.Attempts, apnsTokens...)
	for _, c := range cases {
		body := ringBody(60_000, "u-"+c.name)
		if c.notify {
			body = notifyBody("u-" + c.name)
		}
		e.MustCall(201, "POST", "/v1/call/default/"+c.name, e.Token("alice"), body)
	}
	for _, c := range cases {
		want := "call.ring"
		if c.notify {
			want = "call.notification"
		}
		var types []string
		var attempts int
		var clock *attemptClock
		if c.provider == "firebase" {
			e.WaitFCM(c.token, 1)
			types, attempts, clock = fcmTypes(e, c.token), e.FCM.Attempts(c.token), fcmClock
		} else {
			e.WaitAPNs(c.token, 1)
			types, attempts, clock = apnsTypes(e, c.token), e.APNs.Attempts(c.token), apnsClock
		}
		gaps := clock.gaps(c.token)
		t.Logf("%s: %d tries, gaps between them %v", c.name, attempts, roundAll(gaps))
		if !same(types, want) {
			t.Errorf("%s: device got %v, want one %s", c.name, types, want)
		}
		if attempts != c.answers+1 {
			t.Errorf("%s: %d tries, want %d (%d scripted failures, then the delivery)", c.name, attempts, c.answers+1, c.answers)
		}
		var span time.Duration
		for i, g := range gaps {
			span += g
			if g < minRetryGap {
				t.Errorf("%s: try %d came %s after the failure before it: a retry without backoff", c.name, i+2, g.Round(time.Millisecond))
			}
		}
		if span < c.minSpan {
			t.Errorf("%s: first try to delivery took %s, want at least %s of backoff", c.name, span.Round(time.Millisecond), c.minSpan)
		}
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// TestRetryAfterHoldsBackTheWholeProviderNotJustTheJob has FCM answer one ring push 429 QUOTA_EXCEEDED with
// Retry-After: 4. That push must not be tried again for 4 s; neither may any other FCM push of that worker,
// even one enqueued after the 429 (the quota is the project's, not the job's); APNs pushes go on meanwhile.
func TestRetryAfterHoldsBackTheWholeProviderNotJustTheJob(t *testing.T) {
	t.Parallel()
	const retryAfter = 4 * time.Second
	e := harness.Start(t)
	carolVoIP := harness.APNsToken("carol-voip")
	e.Android("bob", "carol")
	e.Device("carol", carolVoIP, "apn", true)
	quota := fakefcm.QuotaExceeded(fmt.Sprint(int(retryAfter.Seconds())))
	// Answered 300 ms after it arrives, so the watcher surely sees the try before ringer sees the 429.
	quota.Delay = 300 * time.Millisecond
	e.FCM.Script("bob-android", quota)
	clock := watchAttempts(t, e.FCM.Attempts, "bob-android", "carol-android")

	e.MustCall(201, "POST", "/v1/call/default/quota-bob", e.Token("alice"), ringBody(60_000, "bob"))
	harness.Eventually(t, 20*time.Second, "the 429 to reach ringer", func() bool {
		return harness.Scrape(t, e.URL).Get("ringer_pushes_total", "provider", "firebase", "outcome", "retry") >= 1
	})
	t429 := clock.times("bob-android")[0]
	// Another member's ring, enqueued while FCM is held back.
	e.MustCall(201, "POST", "/v1/call/default/quota-carol", e.Token("alice"), ringBody(60_000, "carol"))

	bob := e.WaitFCM("bob-android", 1)
	carol := e.WaitFCM("carol-android", 1)
	voip := e.WaitAPNs(carolVoIP, 1)
	t.Logf("after the 429: bob's retry %s, carol's first FCM push %s, carol's VoIP push %s",
		bob[0].At.Sub(t429).Round(time.Millisecond), carol[0].At.Sub(t429).Round(time.Millisecond), voip[0].At.Sub(t429).Round(time.Millisecond))
	if d := bob[0].At.Sub(t429); d < retryAfter {
		t.Errorf("the push that got 429 Retry-After: %s was tried again %s later", retryAfter, d.Round(time.Millisecond))
	}
	if d := carol[0].At.Sub(t429); d < retryAfter {
		t.Errorf("another member's FCM push went %s after a 429 Retry-After: %s: the wait held back only the one job", d.Round(time.Millisecond), retryAfter)
	}
	if n := e.FCM.Attempts("carol-android"); n != 1 {
		t.Errorf("carol-android was tried %d times at FCM, want 1: a held-back push must not reach the provider", n)
	}
	if d := voip[0].At.Sub(t429); d >= retryAfter {
		t.Errorf("carol's VoIP push waited %s: FCM's Retry-After held back APNs too", d.Round(time.Millisecond))
	}
	if n := e.FCM.Attempts("bob-android"); n != 2 {
		t.Errorf("bob-android was tried %d times, want 2 (the 429, then the delivery)", n)
	}
	for _, tok := range []string{"bob-android", "carol-android"} {
		if got := fcmTypes(e, tok); !same(got, "call.ring") {
			t.Errorf("%s got %v, want one call.ring", tok, got)
		}
	}
}

// TestPayloadRejectedForItsContentFailsTheJobVisiblyWithoutRetry has FCM refuse one device's notification as
// INVALID_ARGUMENT about a payload field and APNs refuse another's as 413 PayloadTooLarge. Neither is retried
// or pruned; the member's third device still gets its push; the task is archived with the reason, the push
// counter says rejected, and a log line names the provider and the reason.
func TestPayloadRejectedForItsContentFailsTheJobVisiblyWithoutRetry(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	w := e.StartProcess("worker")
	iphone := harness.APNsToken("rej-iphone")
	e.Device("bob", "rej-bad-android", "firebase", false)
	e.Device("bob", iphone, "apn", false)
	e.Device("bob", "rej-good-android", "firebase", false)
	e.FCM.Script("rej-bad-android", fakefcm.InvalidPayload("message.android.ttl"))
	e.APNs.Script(iphone, fakeapns.PayloadTooLarge())
	e.MustCall(201, "POST", "/v1/call/default/rejected", e.Token("alice"), notifyBody("bob"))

	e.WaitFCM("rej-good-android", 1)
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	var archived []*asynq.TaskInfo
	harness.Eventually(t, 30*time.Second, "the notify task to be archived", func() bool {
		archived, _ = in.ListArchivedTasks(queue.QueueNotify)
		return len(archived) > 0
	})
	e.Quiet()
	var task queue.NotifyTask
	if len(archived) != 1 || json.Unmarshal(archived[0].Payload, &task) != nil || !slices.Contains(task.Members, "bob") {
		t.Fatalf("archived notify tasks: %v, want the one of bob's batch", taskIDs(archived))
	}
	a := archived[0]
	t.Logf("archived %s after %d retries: %s", a.ID, a.Retried, a.LastErr)
	if a.Retried != 0 {
		t.Errorf("archived task was retried %d times, want 0", a.Retried)
	}
	if !strings.Contains(a.LastErr, "rejected") {
		t.Errorf("archived task's last error %q does not say the payload was rejected", a.LastErr)
	}
	if n := e.FCM.Attempts("rej-bad-android"); n != 1 {
		t.Errorf("FCM device with the refused payload tried %d times, want 1", n)
	}
	if n := e.APNs.Attempts(iphone); n != 1 {
		t.Errorf("APNs device with the refused payload tried %d times, want 1", n)
	}
	if n := len(e.FCM.MessagesTo("rej-bad-android")) + len(e.APNs.NotificationsTo(iphone)); n != 0 {
		t.Errorf("refused devices got %d pushes", n)
	}
	if got := fcmTypes(e, "rej-good-android"); !same(got, "call.notification") {
		t.Errorf("the member's other device got %v, want one call.notification", got)
	}
	// A payload problem is not the token's: both stay registered.
	devs := e.MustCall(200, "GET", "/v1/devices", e.Token("bob"), nil)
	for _, tok := range []string{"rej-bad-android", iphone} {
		if !strings.Contains(string(devs.Raw), tok) {
			t.Errorf("token %s was pruned for a payload the provider refused", tok)
		}
	}
	ms := harness.Scrape(t, "http://"+w.Addr)
	for _, p := range []string{"firebase", "apn"} {
		if n := ms.Get("ringer_pushes_total", "provider", p, "type", "call.notification", "outcome", "rejected"); n != 1 {
			t.Errorf("ringer_pushes_total{provider=%q,outcome=\"rejected\"} = %v, want 1", p, n)
		}
	}
	for _, want := range []struct{ provider, reason string }{{"firebase", "INVALID_ARGUMENT"}, {"apn", "PayloadTooLarge"}} {
		if _, ok := findLog(w, func(rec map[string]any) bool {
			return str(rec, "msg") == "push refused" && str(rec, "provider") == want.provider && strings.Contains(str(rec, "reason"), want.reason)
		}); !ok {
			t.Errorf("no \"push refused\" log line naming %s and %s", want.provider, want.reason)
		}
	}
	if _, ok := findLog(w, func(rec map[string]any) bool {
		return str(rec, "msg") == "task failed" && str(rec, "task") == queue.TypeNotify && strings.Contains(str(rec, "err"), "rejected")
	}); !ok {
		t.Errorf("no \"task failed\" log line for the notify task")
	}
}

func taskIDs(ts []*asynq.TaskInfo) []string {
	out := make([]string, len(ts))
	for i, ti := range ts {
		out[i] = ti.ID
	}
	return out
}

// TestRingWhoseRetriesOutlastTheRingIsDroppedNotDeliveredLate rings bob and carol for 1.5 s. FCM asks for
// 3 s of quiet on bob's ring push (429 Retry-After: 3), so its retry falls after the ring's end; APNs answers
// carol's VoIP token 500 again and again, so its retries run up to the end. No ring push may leave after the
// ring's end: bob's Android phone gets the missed-call push (the stop of a ring that timed out) and nothing
// else; carol's VoIP token is tried while the ring lasts, never after, and gets nothing (VoIP takes only rings).
func TestRingWhoseRetriesOutlastTheRingIsDroppedNotDeliveredLate(t *testing.T) {
	t.Parallel()
	const ringFor = 1500 * time.Millisecond
	e := harness.Start(t)
	voip := harness.APNsToken("late-voip")
	e.Device("bob", "late-android", "firebase", false)
	e.Device("carol", voip, "apn", true)
	e.FCM.Script("late-android", fakefcm.QuotaExceeded("3"))
	for range 100 {
		e.APNs.Script(voip, fakeapns.InternalServerError())
	}
	clock := watchAttempts(t, e.APNs.Attempts, voip)
	r := e.MustCall(201, "POST", "/v1/call/default/late", e.Token("alice"), ringBody(int(ringFor.Milliseconds()), "bob", "carol"))
	ends := callCreatedAt(t, r).Add(ringFor)

	e.Eventually(30*time.Second, "the missed-call push", func() bool { return len(e.FCM.MessagesTo("late-android")) >= 1 })
	e.Quiet()
	if got := fcmTypes(e, "late-android"); !same(got, "call.missed") {
		t.Errorf("bob's Android phone got %v, want only call.missed: a ring push left after the ring's end", got)
	}
	if n := e.FCM.Attempts("late-android"); n != 2 {
		t.Errorf("bob's Android phone was tried %d times, want 2 (the 429 and the missed-call push)", n)
	}
	if got := apnsTypes(e, voip); len(got) != 0 {
		t.Errorf("carol's VoIP token got %v, want nothing", got)
	}
	tries := clock.times(voip)
	if len(tries) < 2 {
		t.Errorf("carol's VoIP token tried %d times during the ring, want it retried", len(tries))
	}
	for i, at := range tries {
		// Slack: the ring's end is taken from created_at, and on a busy machine the fake and the watcher may
		// count a try that left before the end a little after it. Late retries would run on for seconds.
		if late := at.Sub(ends); late > 500*time.Millisecond {
			t.Errorf("VoIP try %d of %d came %s after the ring's end", i+1, len(tries), late.Round(time.Millisecond))
		}
	}
	t.Logf("carol's VoIP token tried %d times in the %s ring; bob's FCM ring push, held back past the end, was dropped", len(tries), ringFor)
}

// TestBadProviderCredentialsRetryJobsAndSayWhichProvider runs a worker whose credentials both providers
// refuse: FCM's OAuth token endpoint answers 401, and APNs answers 403 InvalidProviderToken to a .p8 key it
// does not know. Ring pushes are retried, not dropped; the worker's log names each provider and says it is
// its credentials; its /readyz fails naming the provider. When the credentials work again (FCM's endpoint
// recovers; a worker with the right APNs key takes over) each device gets its ring push exactly once.
// /readyz of an API process on FCM's 401 is also covered by tests/e2e/config_test.go.
func TestBadProviderCredentialsRetryJobsAndSayWhichProvider(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	voip := e.AndroidAndVoIP("bob", "cred")
	e.FCM.FailTokenEndpoint(401)
	unknownKey := writeUnknownAPNsKey(t)
	w := e.StartProcess("worker", "APNS_KEY_FILE="+unknownKey, "APNS_KEY_ID=UNKNOWN123") // no OAuth token cached yet
	base := "http://" + w.Addr
	e.MustCall(201, "POST", "/v1/call/default/creds", e.Token("alice"), ringBody(60_000, "bob"))

	credLog := func(provider string) func(rec map[string]any) bool {
		return func(rec map[string]any) bool {
			return str(rec, "msg") == "push to retry" && str(rec, "provider") == provider &&
				strings.HasPrefix(str(rec, "reason"), "credentials") && (str(rec, "level") == "WARN" || str(rec, "level") == "ERROR")
		}
	}
	for _, p := range []string{"firebase", "apn"} {
		harness.Eventually(t, 30*time.Second, "a log line naming "+p+"'s credentials", func() bool { _, ok := findLog(w, credLog(p)); return ok })
		rec, _ := findLog(w, credLog(p))
		t.Logf("%s: %s %q", p, str(rec, "msg"), str(rec, "reason"))
	}
	if code, body := status(t, base+"/readyz"); code != 503 || !strings.Contains(strings.ToLower(body), "fcm") {
		t.Errorf("worker /readyz while FCM refuses the credentials: %d %q, want 503 naming fcm", code, body)
	}
	// The ring push waits, alive, for the credentials to work: not archived, not sent.
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	if archived, _ := in.ListArchivedTasks(queue.QueueRing); len(archived) != 0 {
		t.Errorf("ring tasks archived while the credentials were refused: %v", taskIDs(archived))
	}
	if n := len(e.FCM.MessagesTo("cred-android")) + len(e.APNs.NotificationsTo(voip)); n != 0 {
		t.Fatalf("%d pushes went out while the credentials were refused", n)
	}

	e.FCM.FailTokenEndpoint(0)
	harness.Eventually(t, 30*time.Second, "the FCM ring push once FCM takes the credentials", func() bool { return len(e.FCM.MessagesTo("cred-android")) >= 1 })
	// Now only APNs refuses: /readyz must say so.
	if code, body := readyzNaming(t, base, "apns"); code != 503 || !strings.Contains(strings.ToLower(body), "apns") {
		t.Errorf("worker /readyz while APNs answers 403 InvalidProviderToken: %d %q, want 503 naming apns", code, strings.TrimSpace(body))
	}
	if n := e.APNs.Attempts(voip); n < 2 {
		t.Errorf("VoIP ring push tried %d times with a refused key, want it retried", n)
	}

	// A worker with the right key takes over: the ring push, still owed, goes out once.
	if !w.Stop(30 * time.Second) {
		t.Fatalf("the worker did not exit within 30 s of SIGTERM")
	}
	e.StartProcess("worker")
	harness.Eventually(t, 30*time.Second, "the VoIP ring push with the right key", func() bool { return len(e.APNs.NotificationsTo(voip)) >= 1 })
	e.Quiet()
	if got := fcmTypes(e, "cred-android"); !same(got, "call.ring") {
		t.Errorf("cred-android got %v, want one call.ring", got)
	}
	if got := apnsTypes(e, voip); !same(got, "call.ring") {
		t.Errorf("VoIP token got %v, want one call.ring", got)
	}
}

// writeUnknownAPNsKey writes a well-formed .p8 key the fake APNs does not know: every push signed with it
// gets 403 InvalidProviderToken.
func writeUnknownAPNsKey(t *testing.T) string {
	t.Helper()
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
	return path
}

// TestFCMAccessTokenRefusedLaterIsReplaced has FCM stop accepting the OAuth access token ringer holds (it
// was revoked or expired early: the token endpoint itself still works). FCM answers every send 401
// UNAUTHENTICATED; ringer must fetch a new token rather than retry with the refused one until it would have
// expired (an hour), and the ring push must go out once, while the ring lasts.
func TestFCMAccessTokenRefusedLaterIsReplaced(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	e.Device("bob", "revoked-android", "firebase", false)
	e.Device("carol", "revoked-carol", "firebase", false)
	e.MustCall(201, "POST", "/v1/call/default/revoke-1", e.Token("alice"), ringBody(60_000, "carol"))
	e.WaitFCM("revoked-carol", 1) // ringer now holds an access token
	tokens := e.FCM.TokenRequests()
	e.FCM.RevokeAccessTokens()
	e.MustCall(201, "POST", "/v1/call/default/revoke-2", e.Token("alice"), ringBody(60_000, "bob"))
	harness.Poll(30*time.Second, 10*time.Millisecond, func() bool { return len(e.FCM.MessagesTo("revoked-android")) > 0 })
	if n := len(e.FCM.MessagesTo("revoked-android")); n != 1 {
		t.Fatalf("30 s after FCM refused the access token: bob got %d ring pushes, want 1; token endpoint asked %d times since (want a new token)",
			n, e.FCM.TokenRequests()-tokens)
	}
	e.Quiet()
	if got := fcmTypes(e, "revoked-android"); !same(got, "call.ring") {
		t.Errorf("bob got %v, want one call.ring", got)
	}
}
