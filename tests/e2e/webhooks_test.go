package e2e

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/tests/harness"
	"github.com/ringer-dev/ringer/webhook"
)

// hook is one webhook request a receiver got.
type hook struct {
	ID, Attempt, Signature, ContentType, UserAgent string
	SignatureOK                                    bool
	Body                                           map[string]any
}

// receiver is a webhook endpoint that checks each request's signature as API.md tells a receiver to, records
// it, and answers with what answer says (200 when nil).
type receiver struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	got    []hook
	answer func(h hook, nth int) int // nth: how many requests of this webhook id came before
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{secret: secret}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		h := hook{
			ID: req.Header.Get("X-Webhook-Id"), Attempt: req.Header.Get("X-Webhook-Attempt"),
			Signature: req.Header.Get("X-Signature"), ContentType: req.Header.Get("Content-Type"),
			UserAgent: req.Header.Get("User-Agent"),
		}
		want := webhook.Sign([]byte(r.secret), raw)
		h.SignatureOK = hmac.Equal([]byte(want), []byte(h.Signature))
		_ = json.Unmarshal(raw, &h.Body)
		r.mu.Lock()
		nth := 0
		for _, g := range r.got {
			if g.ID == h.ID {
				nth++
			}
		}
		r.got = append(r.got, h)
		answer := r.answer
		r.mu.Unlock()
		code := http.StatusOK
		if answer != nil {
			code = answer(h, nth)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) hooks() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hook(nil), r.got...)
}

// ofType is the requests of the event type typ.
func (r *receiver) ofType(typ string) []hook {
	var out []hook
	for _, h := range r.hooks() {
		if h.Body["type"] == typ {
			out = append(out, h)
		}
	}
	return out
}

func webhookEnv(url, secret string, extra ...string) []string {
	return append([]string{"RINGER_WEBHOOK_URL=" + url, "RINGER_WEBHOOK_SECRET=" + secret, "RINGER_WEBHOOK_RETRY_BASE=100ms"}, extra...)
}

func TestWebhooksAreSignedForARingAnAcknowledgementAndAnAccept(t *testing.T) {
	t.Parallel()
	const secret = "whsec-ring-ack-accept"
	rcv := newReceiver(t, secret)
	e := harness.Start(t, harness.Options{Env: webhookEnv(rcv.URL, secret)})
	e.MustCall(201, "POST", "/v1/call/default/wh1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": harness.MemberList("bob")},
	})
	e.MustCall(200, "POST", "/v1/call/default/wh1/ringing", e.Token("bob"), nil)
	e.MustCall(200, "POST", "/v1/call/default/wh1/accept", e.Token("bob"), nil)

	want := []string{"call.created", "call.ring", "call.ringing", "call.accepted"}
	e.Eventually(10*time.Second, "a webhook of each event", func() bool {
		for _, typ := range want {
			if len(rcv.ofType(typ)) == 0 {
				return false
			}
		}
		return true
	})
	ids := map[string]bool{}
	for _, typ := range want {
		h := rcv.ofType(typ)[0]
		if !h.SignatureOK {
			t.Errorf("%s: X-Signature %q does not verify", typ, h.Signature)
		}
		if h.ContentType != "application/json" || !strings.HasPrefix(h.UserAgent, "ringer/") || h.Attempt != "1" || h.ID == "" {
			t.Errorf("%s: headers Content-Type %q, User-Agent %q, X-Webhook-Attempt %q, X-Webhook-Id %q", typ, h.ContentType, h.UserAgent, h.Attempt, h.ID)
		}
		if ids[h.ID] {
			t.Errorf("%s: X-Webhook-Id %s used by another event", typ, h.ID)
		}
		ids[h.ID] = true
		if h.Body["call_cid"] != "default:wh1" || h.Body["call"] == nil || h.Body["created_at"] == nil {
			t.Errorf("%s: body %v", typ, h.Body)
		}
	}
	if u := rcv.ofType("call.ringing")[0].Body["user"].(map[string]any)["id"]; u != "bob" {
		t.Errorf("call.ringing names user %v, want bob", u)
	}
	call := rcv.ofType("call.accepted")[0].Body["call"].(map[string]any)
	if _, ok := call["session"].(map[string]any)["accepted_by"].(map[string]any)["bob"]; !ok {
		t.Errorf("call.accepted carries a call without bob in accepted_by: %v", call["session"])
	}
}

func TestAWebhookRefusedTwiceComesAThirdTimeWithTheSameIdAndThenNoMore(t *testing.T) {
	t.Parallel()
	const secret = "whsec-refused"
	rcv := newReceiver(t, secret)
	rcv.answer = func(h hook, nth int) int {
		if h.Body["type"] == "call.created" && nth < 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	e := harness.Start(t, harness.Options{Env: webhookEnv(rcv.URL, secret)})
	e.MustCall(201, "POST", "/v1/call/default/wh2", e.Token("alice"), map[string]any{
		"data": map[string]any{"members": harness.MemberList("bob")},
	})
	e.Eventually(15*time.Second, "the third attempt", func() bool { return len(rcv.ofType("call.created")) >= 3 })
	waitWebhooksQuiet(t, e)
	got := rcv.ofType("call.created")
	if len(got) != 3 {
		t.Fatalf("call.created came %d times, want 3", len(got))
	}
	for i, h := range got {
		if h.ID != got[0].ID {
			t.Errorf("attempt %d has X-Webhook-Id %s, the first had %s", i+1, h.ID, got[0].ID)
		}
		if h.Attempt != strconv.Itoa(i+1) {
			t.Errorf("request %d says X-Webhook-Attempt %s", i+1, h.Attempt)
		}
		if !h.SignatureOK {
			t.Errorf("attempt %d: signature does not verify", i+1)
		}
	}
}

func TestAWebhookAnsweredWithARedirectIsRetriedNotFollowed(t *testing.T) {
	t.Parallel()
	const secret = "whsec-redirect"
	var followed sync.Map
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Store("hit", true) }))
	t.Cleanup(elsewhere.Close)
	rcv := newReceiver(t, secret)
	rcv.answer = func(h hook, nth int) int {
		if nth == 0 {
			return http.StatusTemporaryRedirect
		}
		return http.StatusOK
	}
	// The receiver answers the first attempt of each webhook with a redirect to another server.
	rcv.Config.Handler = redirectFirst(rcv.Config.Handler, elsewhere.URL)
	e := harness.Start(t, harness.Options{Env: webhookEnv(rcv.URL, secret)})
	e.MustCall(201, "POST", "/v1/call/default/wh3", e.Token("alice"), map[string]any{})
	e.Eventually(15*time.Second, "the retry after the redirect", func() bool { return len(rcv.ofType("call.created")) >= 2 })
	if _, hit := followed.Load("hit"); hit {
		t.Error("the redirect was followed")
	}
	if got := rcv.ofType("call.created"); got[1].Attempt != "2" {
		t.Errorf("the request after the redirect says attempt %s, want 2", got[1].Attempt)
	}
}

// redirectFirst sets the Location of next's redirect answers to target.
func redirectFirst(next http.Handler, target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target)
		next.ServeHTTP(w, r)
	})
}

func TestStartIsRefusedWithAWebhookURLButNoSecret(t *testing.T) {
	t.Parallel()
	res := configRun(t, configWith(configBase(), "RINGER_WEBHOOK_URL=http://127.0.0.1:9/hooks"), "serve")
	if res.code == 0 || !strings.Contains(res.stderr, "RINGER_WEBHOOK_SECRET") {
		t.Fatalf("exit %d; stderr does not name RINGER_WEBHOOK_SECRET:\n%s", res.code, res.stderr)
	}
	res = configRun(t, configWith(configBase(), "RINGER_WEBHOOK_URL=ftp://example/hooks", "RINGER_WEBHOOK_SECRET=s"), "serve")
	if res.code == 0 || !strings.Contains(res.stderr, "RINGER_WEBHOOK_URL") {
		t.Fatalf("exit %d; stderr does not name RINGER_WEBHOOK_URL:\n%s", res.code, res.stderr)
	}
}

// waitWebhooksQuiet waits until the webhook queue has nothing pending, running or waiting for a retry.
func waitWebhooksQuiet(t *testing.T, e *harness.Env) {
	t.Helper()
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	e.Eventually(20*time.Second, "the webhook queue to drain", func() bool {
		info, err := in.GetQueueInfo("webhook")
		return err == nil && info.Pending+info.Active+info.Retry+info.Scheduled == 0
	})
}
