package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/gate"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
	"github.com/ringer-dev/ringer/tests/testredis"
)

// The verdict paths of the delivery engine, through the handlers, with a fake sender and the test Redis.

// fakeSender keeps every push it is given and answers each with the next answer queued for its token
// (answer), or Sent when none is left.
type fakeSender struct {
	// onSend, when set, runs at each push before it is answered.
	onSend func()

	mu     sync.Mutex
	queued map[string][]providers.Result
	pushes []providers.Push
}

// answer queues the answers to the next pushes to token.
func (f *fakeSender) answer(token string, rs ...providers.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queued == nil {
		f.queued = map[string][]providers.Result{}
	}
	f.queued[token] = append(f.queued[token], rs...)
}

func (f *fakeSender) Send(_ context.Context, p providers.Push) providers.Result {
	if f.onSend != nil {
		f.onSend()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes = append(f.pushes, p)
	if q := f.queued[p.Token]; len(q) > 0 {
		f.queued[p.Token] = q[1:]
		return q[0]
	}
	return providers.Result{Verdict: providers.Sent}
}

// tokens are the tokens pushed to so far, in order.
func (f *fakeSender) tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.pushes {
		out = append(out, p.Token)
	}
	return out
}

type noCalls struct{}

func (noCalls) Expire(context.Context, string, string) error { return nil }
func (noCalls) Reminder(context.Context, string, int64) (queue.CallInfo, []string, bool, error) {
	return queue.CallInfo{}, nil, false, nil
}

type rig struct {
	w    *Worker
	rdb  *redis.Client // the test's own connection: the worker's may be closed by a test
	wrdb *redis.Client // the worker's
	reg  *devices.Registry
	send *fakeSender
	logs *bytes.Buffer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := testredis.Start(t)
	r := &rig{rdb: srv.Client(t), wrdb: srv.Client(t), send: &fakeSender{}, logs: &bytes.Buffer{}}
	r.reg = devices.New(r.wrdb)
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r.w, err = New(Config{
		Redis: r.wrdb, Devices: r.reg, Templates: tmpl, FCM: r.send, APNs: r.send, Calls: noCalls{},
		Queue: queue.NewClient(r.wrdb), Logger: slog.New(slog.NewTextHandler(r.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.w.recordPatience = 200 * time.Millisecond
	return r
}

func (r *rig) register(t *testing.T, ds ...devices.Device) {
	t.Helper()
	for _, d := range ds {
		if _, err := r.reg.Register(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

// ledger is what the ledger under key holds, sorted.
func (r *rig) ledger(t *testing.T, key string) []string {
	t.Helper()
	got, err := r.rdb.SMembers(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func (r *rig) pushes(verdict, event string) float64 {
	return testutil.ToFloat64(r.w.cfg.Metrics.Pushes.WithLabelValues(providers.Firebase, providers.Firebase, event, verdict))
}

// pushLines are the log lines of pushes.
func (r *rig) pushLines() []string {
	var out []string
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(l, `msg="push `) && !strings.Contains(l, "suppressed") {
			out = append(out, l)
		}
	}
	return out
}

func task(t *testing.T, typ string, payload any) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(typ, b)
}

var testCall = queue.CallInfo{CID: "default:c1", Type: "default", ID: "c1", CreatedByID: "alice"}

func fcm(user string, n int) devices.Device {
	return devices.Device{UserID: user, PushProvider: devices.Firebase, ID: fmt.Sprintf("fcm-%s-%d", user, n)}
}

func notifyTask(t *testing.T, members ...string) *asynq.Task {
	return task(t, queue.TypeNotify, queue.NotifyTask{Call: testCall, NotifyID: "n1", Members: members})
}

// notifyLedger is the ledger of notifyTask: a batch ledger, under its own hash tag.
var notifyLedger = gate.BatchLedgerKey(testCall.CID, queue.NotifyTaskID("n1", 0))

func TestAPushTheProviderAsksToRetryRetriesTheTaskWhichThenSendsOnlyWhatTheLedgerLacks(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1), fcm("bob", 2))
	r.send.answer("fcm-bob-2", providers.Result{Verdict: providers.Retry, Reason: "UNAVAILABLE"})
	err := r.w.HandleNotify(context.Background(), notifyTask(t, "bob"))
	var ra *retryAfterError
	if !errors.As(err, &ra) || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("HandleNotify = %v, want a retry", err)
	}
	if got := r.ledger(t, notifyLedger); !slices.Equal(got, []string{"fcm-bob-1"}) {
		t.Errorf("ledger after the first try = %v, want the device that got its push", got)
	}
	if err := r.w.HandleNotify(context.Background(), notifyTask(t, "bob")); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	got := r.send.tokens()
	slices.Sort(got[:2])
	if want := []string{"fcm-bob-1", "fcm-bob-2", "fcm-bob-2"}; !slices.Equal(got, want) {
		t.Errorf("pushes = %v, want %v: the retry sends only what the ledger lacks", got, want)
	}
	if got := r.ledger(t, notifyLedger); !slices.Equal(got, []string{"fcm-bob-1", "fcm-bob-2"}) {
		t.Errorf("ledger after the retry = %v", got)
	}
	if s, rt := r.pushes("sent", queue.EventNotification), r.pushes("retry", queue.EventNotification); s != 2 || rt != 1 {
		t.Errorf("ringer_pushes_total sent %v retry %v, want 2 and 1", s, rt)
	}
	for _, l := range r.pushLines() {
		for _, want := range []string{"cid=default:c1", "notify_id=n1", "member=bob", "token="} {
			if !strings.Contains(l, want) {
				t.Errorf("push log line %q lacks %q", l, want)
			}
		}
	}
}

func TestAProviderRetryAfterHoldsTheTasksRetryThatLong(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1))
	r.send.answer("fcm-bob-1", providers.Result{Verdict: providers.Retry, RetryAfter: 30 * time.Second, Reason: "QUOTA_EXCEEDED"})
	err := r.w.HandleNotify(context.Background(), notifyTask(t, "bob"))
	var ra *retryAfterError
	if !errors.As(err, &ra) || ra.after != 30*time.Second {
		t.Fatalf("HandleNotify = %v, want a retry after 30s", err)
	}
	if d := notifyRetryDelay(0, err, nil); d < 30*time.Second {
		t.Errorf("the notify queue retries after %v, before the provider's Retry-After", d)
	}
	// The provider as a whole is held back: the next push to it does not leave.
	if err := r.w.HandleNotify(context.Background(), notifyTask(t, "bob")); err == nil {
		t.Error("a push left for a provider that asked to wait")
	}
	if n := len(r.send.tokens()); n != 1 {
		t.Errorf("%d pushes reached the provider, want 1", n)
	}
}

// TestANotificationBatchLogsOneInfoLineWithItsCountsAndEachSentPushAtDebug: a notification task's pushes that
// went out are Debug lines, so a 100,000-member notification is not 100,000 Info lines; its pushes to retry
// and refused stay Warn lines naming the member, and the task adds one Info line with the counts.
func TestANotificationBatchLogsOneInfoLineWithItsCountsAndEachSentPushAtDebug(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1), fcm("bob", 2), fcm("bob", 3))
	r.send.answer("fcm-bob-2", providers.Result{Verdict: providers.Retry, Reason: "UNAVAILABLE"})
	r.send.answer("fcm-bob-3", providers.Result{Verdict: providers.Unregistered, Reason: "UNREGISTERED"})
	run := func(level slog.Level) []string {
		t.Helper()
		var buf bytes.Buffer
		r.w.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		_ = r.w.HandleNotify(context.Background(), notifyTask(t, "bob"))
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	lines := run(slog.LevelInfo)
	var sent, retry, refused, summary []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, `msg="push sent"`):
			sent = append(sent, l)
		case strings.Contains(l, `level=WARN msg="push to retry"`):
			retry = append(retry, l)
		case strings.Contains(l, `level=WARN msg="push refused"`):
			refused = append(refused, l)
		case strings.Contains(l, `level=INFO msg="notification batch pushed"`):
			summary = append(summary, l)
		}
	}
	if len(sent) != 0 || len(retry) != 1 || len(refused) != 1 || len(summary) != 1 {
		t.Fatalf("at Info: %d push sent, %d push to retry, %d push refused, %d summary lines, want 0, 1, 1, 1:\n%s",
			len(sent), len(retry), len(refused), len(summary), strings.Join(lines, "\n"))
	}
	for _, l := range append(retry, refused...) {
		for _, want := range []string{"cid=default:c1", "notify_id=n1", "member=bob", "token="} {
			if !strings.Contains(l, want) {
				t.Errorf("%q lacks %q", l, want)
			}
		}
	}
	for _, want := range []string{"cid=default:c1", "notify_id=n1", "batch=0", "devices=3", "sent=1", "retry=1", "refused=1", "sent_before=0"} {
		if !strings.Contains(summary[0], want) {
			t.Errorf("summary %q lacks %q", summary[0], want)
		}
	}

	// The retry, at Debug: the pruned token is gone, the one on the ledger is counted and not sent again.
	lines = run(slog.LevelDebug)
	var debugSent []string
	summary = nil
	for _, l := range lines {
		if strings.Contains(l, `level=DEBUG msg="push sent"`) {
			debugSent = append(debugSent, l)
		}
		if strings.Contains(l, `msg="notification batch pushed"`) {
			summary = append(summary, l)
		}
	}
	if len(debugSent) != 1 || !strings.Contains(debugSent[0], "member=bob") || !strings.Contains(debugSent[0], "token=") {
		t.Errorf("at Debug, push sent lines %q, want one naming bob and the token", debugSent)
	}
	if len(summary) != 1 || !strings.Contains(summary[0], "devices=2 sent=1 retry=0 refused=0 sent_before=1") {
		t.Errorf("summary of the retry %q, want devices=2 sent=1 retry=0 refused=0 sent_before=1", summary)
	}
}

func TestAnUnregisteredTokenIsPrunedCountedAndNotRetried(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1), fcm("bob", 2))
	r.send.answer("fcm-bob-1", providers.Result{Verdict: providers.Unregistered, Reason: "UNREGISTERED"})
	if err := r.w.HandleNotify(context.Background(), notifyTask(t, "bob")); err != nil {
		t.Fatalf("HandleNotify = %v, want done: a dead token is no reason to retry", err)
	}
	devs, err := r.reg.List(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].ID != "fcm-bob-2" {
		t.Errorf("bob's devices = %v, want the dead token pruned", devs)
	}
	if got := testutil.ToFloat64(r.w.cfg.Metrics.Pruned.WithLabelValues(providers.Firebase, providers.Firebase)); got != 1 {
		t.Errorf("ringer_tokens_pruned_total = %v, want 1", got)
	}
	if got := r.ledger(t, notifyLedger); !slices.Equal(got, []string{"fcm-bob-2"}) {
		t.Errorf("ledger = %v, want only the device that got its push", got)
	}
}

func TestARejectedPayloadFailsTheTaskWithoutRetryAndKeepsWhatWasSent(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1), fcm("bob", 2))
	r.send.answer("fcm-bob-1", providers.Result{Verdict: providers.Rejected, Reason: "INVALID_ARGUMENT"})
	err := r.w.HandleNotify(context.Background(), notifyTask(t, "bob"))
	if !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), "INVALID_ARGUMENT") ||
		!strings.Contains(err.Error(), providers.TokenSuffix("fcm-bob-1")) {
		t.Fatalf("HandleNotify = %v, want a failure without retry naming the token and the reason", err)
	}
	if got := r.ledger(t, notifyLedger); !slices.Equal(got, []string{"fcm-bob-2"}) {
		t.Errorf("ledger = %v, want the device that got its push", got)
	}
	if got := r.pushes("rejected", queue.EventNotification); got != 1 {
		t.Errorf("ringer_pushes_total{outcome=rejected} = %v, want 1", got)
	}
	devs, _ := r.reg.List(context.Background(), "bob")
	if len(devs) != 2 {
		t.Errorf("bob has %d devices, want 2: a rejected payload says nothing of the token", len(devs))
	}
}

func TestAPushWhoseRecordFailsFailsTheTaskForARetry(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1))
	r.send.onSend = func() { r.wrdb.Close() } // Redis is gone for the worker between the send and its record
	err := r.w.HandleNotify(context.Background(), notifyTask(t, "bob"))
	var ra *retryAfterError
	if err == nil || errors.Is(err, asynq.SkipRetry) || errors.As(err, &ra) || !strings.Contains(err.Error(), "record push in") {
		t.Fatalf("HandleNotify = %v, want the record's failure, to be retried", err)
	}
	if got := r.ledger(t, notifyLedger); len(got) != 0 {
		t.Errorf("ledger = %v, want nothing recorded", got)
	}
	if got := r.pushes("sent", queue.EventNotification); got != 1 {
		t.Errorf("ringer_pushes_total{outcome=sent} = %v, want 1: the push left", got)
	}
}

func ringTask(t *testing.T, r *rig, member string) *asynq.Task {
	t.Helper()
	ends := time.Now().Add(time.Minute)
	if err := gate.New(r.rdb).Open(context.Background(), testCall.CID, "r1", time.Minute, []gate.Member{{ID: member, EndsAt: ends}}); err != nil {
		t.Fatal(err)
	}
	return task(t, queue.TypeRing, queue.RingTask{Call: testCall, RingID: "r1", Member: member, EndsAt: ends.UnixMilli(), EnqueuedAt: time.Now().UnixMilli()})
}

func TestARingPushTheProviderAsksToRetryIsRetriedWithinItsHandler(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1))
	r.send.answer("fcm-bob-1", providers.Result{Verdict: providers.Retry, Reason: "UNAVAILABLE"})
	if err := r.w.HandleRing(context.Background(), ringTask(t, r, "bob")); err != nil {
		t.Fatalf("HandleRing = %v, want the ring delivered by its handler's quick retry", err)
	}
	if got := r.send.tokens(); !slices.Equal(got, []string{"fcm-bob-1", "fcm-bob-1"}) {
		t.Errorf("pushes = %v, want one refused and one sent", got)
	}
	if got := r.ledger(t, gate.LedgerKey(testCall.CID, queue.RingTaskID("r1", "bob"))); !slices.Equal(got, []string{"fcm-bob-1"}) {
		t.Errorf("ring ledger = %v", got)
	}
	if s, rt := r.pushes("sent", queue.EventRing), r.pushes("retry", queue.EventRing); s != 1 || rt != 1 {
		t.Errorf("ringer_pushes_total sent %v retry %v, want 1 and 1", s, rt)
	}
	if got := testutil.CollectAndCount(r.w.cfg.Metrics.RingSeconds); got != 1 {
		t.Errorf("ringer_ring_latency_seconds has %d series, want 1", got)
	}
	lines := r.pushLines()
	if len(lines) != 2 {
		t.Fatalf("push log lines: %q", lines)
	}
	for _, l := range lines {
		for _, want := range []string{"cid=default:c1", "ring_id=r1", "member=bob"} {
			if !strings.Contains(l, want) {
				t.Errorf("push log line %q lacks %q", l, want)
			}
		}
	}
}

// A ring's ledger comes with its lease (gate.Admit) and its devices are read beside it: the quick retry within
// the handler, and the task's next run, must each read what the try before reached, not reuse the first read.
func TestARingsRetriesEachSendOnlyWhatTheLedgerLacksAtTheirOwnTry(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1), fcm("bob", 2))
	busy := providers.Result{Verdict: providers.Retry, Reason: "UNAVAILABLE"}
	// Device 2 asks for a retry at the first try and at every quick retry of the handler's first run.
	r.send.answer("fcm-bob-2", slices.Repeat([]providers.Result{busy}, 1+len(quickRetries))...)
	ring := ringTask(t, r, "bob")
	var ra *retryAfterError
	if err := r.w.HandleRing(context.Background(), ring); !errors.As(err, &ra) {
		t.Fatalf("first run = %v, want a retry", err)
	}
	want := append([]string{"fcm-bob-1"}, slices.Repeat([]string{"fcm-bob-2"}, 1+len(quickRetries))...)
	// The first try sends to both devices at once, in either order.
	sent := func() []string {
		got := r.send.tokens()
		slices.Sort(got[:min(2, len(got))])
		return got
	}
	if got := sent(); !slices.Equal(got, want) {
		t.Fatalf("pushes of the first run = %v, want %v: a quick retry sends only what the ledger lacks", got, want)
	}
	// The release left the lease waiting for the retry; the task's next run takes it with device 1 on record.
	if err := r.w.HandleRing(context.Background(), ring); err != nil {
		t.Fatalf("second run = %v", err)
	}
	if got := sent(); !slices.Equal(got, append(want, "fcm-bob-2")) {
		t.Errorf("pushes = %v, want the second run to push device 2 only", got)
	}
	if got := r.ledger(t, gate.LedgerKey(testCall.CID, queue.RingTaskID("r1", "bob"))); !slices.Equal(got, []string{"fcm-bob-1", "fcm-bob-2"}) {
		t.Errorf("ring ledger = %v", got)
	}
}

func TestAStopReachesOnlyTheDevicesItsRingReachedAndOnlyOnce(t *testing.T) {
	r := newRig(t)
	r.register(t, fcm("bob", 1))
	if err := r.w.HandleRing(context.Background(), ringTask(t, r, "bob")); err != nil {
		t.Fatal(err)
	}
	r.register(t, fcm("bob", 2)) // after the ring: it never rang
	stop := task(t, queue.TypeStop, queue.StopTask{Call: testCall, RingID: "r1", Member: "bob", Event: queue.EventAccepted})
	for range 2 {
		if err := r.w.HandleStop(context.Background(), stop); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.send.tokens(); !slices.Equal(got, []string{"fcm-bob-1", "fcm-bob-1"}) {
		t.Errorf("pushes = %v, want the ring and one stop to the device that rang", got)
	}
	r.send.mu.Lock()
	last := r.send.pushes[len(r.send.pushes)-1]
	r.send.mu.Unlock()
	if last.Kind != providers.KindStop || last.Data["type"] != queue.EventAccepted || last.CollapseID != "ring-r1" {
		t.Errorf("the stop push = %+v", last)
	}
}

func TestAMissedCallIsAnAlertToEveryDeviceThatShowsAlertsUnlessTheMemberTurnedPushesOff(t *testing.T) {
	apn := devices.Device{UserID: "bob", PushProvider: devices.APN, ID: strings.Repeat("ab", 32)}
	voip := devices.Device{UserID: "bob", PushProvider: devices.APN, ID: strings.Repeat("cd", 32), VoIPToken: true}
	for _, muted := range []bool{false, true} {
		t.Run(fmt.Sprint("muted=", muted), func(t *testing.T) {
			r := newRig(t)
			r.register(t, fcm("bob", 1), apn, voip)
			if err := r.w.HandleRing(context.Background(), ringTask(t, r, "bob")); err != nil {
				t.Fatal(err)
			}
			if muted {
				if _, err := r.reg.SetPreferences(context.Background(), devices.Preferences{UserID: "bob", CallLevel: devices.CallLevelNone}); err != nil {
					t.Fatal(err)
				}
			}
			r.send.mu.Lock()
			r.send.pushes = nil
			r.send.mu.Unlock()
			stop := task(t, queue.TypeStop, queue.StopTask{Call: testCall, RingID: "r1", Member: "bob", Event: queue.EventMissed})
			if err := r.w.HandleStop(context.Background(), stop); err != nil {
				t.Fatal(err)
			}
			r.send.mu.Lock()
			defer r.send.mu.Unlock()
			var got []string
			for _, p := range r.send.pushes {
				if p.Data["type"] != queue.EventMissed || p.CollapseID != "ring-r1" {
					t.Errorf("push %+v: want type call.missed and the ring's collapse id", p)
				}
				texted := p.Title != "" && p.Body != "" && !p.Expires.IsZero()
				got = append(got, fmt.Sprintf("%s:%s:%v", p.Token[:4], p.Kind, texted))
			}
			slices.Sort(got)
			// The ring went to the VoIP token and the FCM token; the stop to every regular token.
			want := []string{"abab:alert:true", "fcm-:alert:true"}
			if muted {
				want = []string{"abab:stop:false", "fcm-:stop:false"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("pushes = %v, want %v", got, want)
			}
			if got, want := testutil.ToFloat64(r.w.cfg.Metrics.Suppressed.WithLabelValues(queue.EventMissed)), map[bool]float64{false: 0, true: 2}[muted]; got != want {
				t.Errorf("ringer_pushes_suppressed_total{type=call.missed} = %v, want %v", got, want)
			}
		})
	}
}

func TestARingAlertCarriesTheTemplatesTextAndTheRingsLifetimeAndAVoIPRingNoText(t *testing.T) {
	r := newRig(t)
	ends := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	m := newMessage(testCall, queue.EventRing, "bob", "r1")
	m.expires, m.collapseID = ends, collapseID("r1")
	apn := devices.Device{UserID: "bob", PushProvider: devices.APN, ID: strings.Repeat("ab", 32)}
	voip := devices.Device{UserID: "bob", PushProvider: devices.APN, ID: strings.Repeat("cd", 32), VoIPToken: true}
	got, err := r.w.targets([]route{{apn, ringAlert}, {voip, ringVoIP}, {fcmDev, ringData}}, m)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		if p.push.Kind != providers.KindRing || !p.push.Expires.Equal(ends) || p.push.CollapseID != "ring-r1" || p.push.Data["type"] != queue.EventRing {
			t.Errorf("push %d = %+v: want a ring that lives until the ring's end", i, p.push)
		}
		if texted := p.push.Title != "" && p.push.Body != ""; texted != (i == 0) {
			t.Errorf("push %d has text %v, want only the alert ring to", i, texted)
		}
		if p.push.VoIP != (i == 1) {
			t.Errorf("push %d VoIP = %v", i, p.push.VoIP)
		}
	}
}
