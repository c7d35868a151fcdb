package fakefcm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/httptransport"
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/fakepush"
)

// sdkClient is the real Firebase Admin SDK messaging client on a service-account file and an endpoint, with
// an HTTP client that trusts the fake's certificate (the SDK's own trusts only the system roots).
func sdkClient(t *testing.T, fake *fakefcm.Server, credentialsFile string) *messaging.Client {
	t.Helper()
	ctx := context.Background()
	creds, err := credentials.NewCredentialsFromFile(credentials.ServiceAccount, credentialsFile,
		&credentials.DetectOptions{Scopes: []string{fakefcm.ScopeMessaging}, Client: fake.Client()})
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	hc, err := httptransport.NewClient(&httptransport.Options{Credentials: creds, BaseRoundTripper: fake.Client().Transport})
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: fake.ProjectID},
		option.WithHTTPClient(hc), option.WithEndpoint(fake.Endpoint))
	if err != nil {
		t.Fatalf("firebase.NewApp: %v", err)
	}
	c, err := app.Messaging(ctx)
	if err != nil {
		t.Fatalf("Messaging: %v", err)
	}
	return c
}

func TestRealSDKMessageIsRecordedAsSent(t *testing.T) {
	fake := fakefcm.Start(t)
	c := sdkClient(t, fake, fake.WriteCredentials(t.TempDir()))
	ttl := 25 * time.Second
	name, err := c.Send(fakepush.Context(t, 10*time.Second), &messaging.Message{
		Token:        "device-1",
		Data:         map[string]string{"type": "call.ring", "call_cid": "default:abc"},
		Notification: &messaging.Notification{Title: "Alice", Body: "is calling"},
		Android:      &messaging.AndroidConfig{Priority: "high", TTL: &ttl, CollapseKey: "ring-1"},
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	m := fake.Only(t, "device-1")
	if m.Name != name || name != "projects/"+fake.ProjectID+"/messages/1" {
		t.Errorf("name = %q, recorded %q", name, m.Name)
	}
	if m.Data["type"] != "call.ring" || m.Data["call_cid"] != "default:abc" || len(m.Data) != 2 {
		t.Errorf("data = %v", m.Data)
	}
	if m.Notification == nil || m.Notification.Title != "Alice" || m.Notification.Body != "is calling" {
		t.Errorf("notification = %+v", m.Notification)
	}
	if m.AndroidPriority != "high" || !m.HasTTL || m.TTL != ttl || m.CollapseKey != "ring-1" {
		t.Errorf("android = priority %q ttl %v (%v) collapse %q", m.AndroidPriority, m.TTL, m.HasTTL, m.CollapseKey)
	}
	var raw map[string]any
	if err := json.Unmarshal(m.Raw(), &raw); err != nil || raw["token"] != "device-1" {
		t.Errorf("raw = %s (%v)", m.Raw(), err)
	}
	if len(fake.Messages()) != 1 || fake.Count() != 1 || fake.Attempts("device-1") != 1 {
		t.Errorf("Messages %d, Count %d, Attempts %d; want 1 each", len(fake.Messages()), fake.Count(), fake.Attempts("device-1"))
	}
}

// TestRealSDKReadsScriptedErrorsAsFCMs checks that each scripted answer is, to the real SDK, the error FCM
// itself would have sent.
func TestRealSDKReadsScriptedErrorsAsFCMs(t *testing.T) {
	fake := fakefcm.Start(t)
	c := sdkClient(t, fake, fake.WriteCredentials(t.TempDir()))
	cases := []struct {
		name   string
		answer fakefcm.Answer
		is     func(error) bool
		status int
	}{
		{"unregistered", fakefcm.Unregistered(), messaging.IsUnregistered, 404},
		{"sender id mismatch", fakefcm.SenderIDMismatch(), messaging.IsSenderIDMismatch, 403},
		{"invalid token", fakefcm.InvalidToken(), messaging.IsInvalidArgument, 400},
		{"invalid payload", fakefcm.InvalidPayload("message.data[0].value"), messaging.IsInvalidArgument, 400},
		{"quota exceeded", fakefcm.QuotaExceeded("17"), messaging.IsQuotaExceeded, 429},
		{"unavailable", fakefcm.Unavailable("3600"), messaging.IsUnavailable, 503},
		{"internal", fakefcm.Internal(), messaging.IsInternal, 500},
		{"third party auth", fakefcm.ThirdPartyAuthError(), messaging.IsThirdPartyAuthError, 401},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := "device-" + strconv.Itoa(i)
			fake.Script(token, tc.answer)
			_, err := c.Send(fakepush.Context(t, 10*time.Second), &messaging.Message{Token: token, Data: map[string]string{"a": "b"}})
			if err == nil || !tc.is(err) {
				t.Fatalf("Send error = %v, not recognised by the SDK as %s", err, tc.name)
			}
			resp := errorutils.HTTPResponse(err)
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("HTTP response = %v, want status %d", resp, tc.status)
			}
			if tc.answer.RetryAfter != "" && resp.Header.Get("Retry-After") != tc.answer.RetryAfter {
				t.Errorf("Retry-After = %q, want %q", resp.Header.Get("Retry-After"), tc.answer.RetryAfter)
			}
			if err.Error() != tc.answer.Message {
				t.Errorf("error text = %q, want FCM's message %q", err.Error(), tc.answer.Message)
			}
			if n := len(fake.MessagesTo(token)); n != 0 {
				t.Errorf("a scripted failure was recorded as %d delivered messages", n)
			}
			if n := fake.Attempts(token); n != 1 {
				t.Errorf("attempts = %d, want 1", n)
			}
			// The script is used up: the next send is delivered.
			if _, err := c.Send(fakepush.Context(t, 10*time.Second), &messaging.Message{Token: token}); err != nil {
				t.Fatalf("send after the script: %v", err)
			}
			if n := len(fake.MessagesTo(token)); n != 1 {
				t.Errorf("delivered %d after the script, want 1", n)
			}
		})
	}
}

func TestScriptedAnswersAreConsumedInOrder(t *testing.T) {
	fake := fakefcm.Start(t)
	c := sdkClient(t, fake, fake.WriteCredentials(t.TempDir()))
	fake.Script("d", fakefcm.Internal())
	fake.Script("d", fakefcm.Unregistered())
	send := func() error {
		_, err := c.Send(fakepush.Context(t, 10*time.Second), &messaging.Message{Token: "d"})
		return err
	}
	if err := send(); !messaging.IsInternal(err) {
		t.Fatalf("first send: %v, want INTERNAL", err)
	}
	if err := send(); !messaging.IsUnregistered(err) {
		t.Fatalf("second send: %v, want UNREGISTERED", err)
	}
	if err := send(); err != nil {
		t.Fatalf("third send: %v, want success", err)
	}
	if got := fake.Attempts("d"); got != 3 {
		t.Errorf("attempts = %d, want 3", got)
	}
}

func TestHangWaitsForTheClientToGiveUp(t *testing.T) {
	fake := fakefcm.Start(t)
	c := sdkClient(t, fake, fake.WriteCredentials(t.TempDir()))
	fake.Script("h", fakefcm.Hang())
	_, err := c.Send(fakepush.Context(t, 200*time.Millisecond), &messaging.Message{Token: "h"})
	if err == nil {
		t.Fatalf("a hung send succeeded")
	}
	if fake.Attempts("h") != 1 || len(fake.MessagesTo("h")) != 0 {
		t.Errorf("attempts %d, delivered %d; want 1 and 0", fake.Attempts("h"), len(fake.MessagesTo("h")))
	}
}

func TestLatencyAndDelayHoldTheAnswer(t *testing.T) {
	fake := fakefcm.Start(t)
	c := sdkClient(t, fake, fake.WriteCredentials(t.TempDir()))
	if _, err := c.Send(fakepush.Context(t, 10*time.Second), &messaging.Message{Token: "warm"}); err != nil {
		t.Fatal(err) // fetch the OAuth token before timing
	}
	fake.SetLatency(50 * time.Millisecond)
	fake.Script("x", fakefcm.Delay(50*time.Millisecond))
	start := time.Now()
	if _, err := c.Send(fakepush.Context(t, 10*time.Second), &messaging.Message{Token: "x"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("answer came after %v, want at least latency + delay = 100ms", d)
	}
}

func TestTokenEndpointRefusesAnAssertionSignedByAnotherKey(t *testing.T) {
	fake := fakefcm.Start(t)
	path := fake.WriteCredentials(t.TempDir())
	// Same service account, different private key: the signature no longer verifies.
	var sa map[string]string
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &sa); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b, _ = json.Marshal(sa)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	creds, err := credentials.NewCredentialsFromFile(credentials.ServiceAccount, path,
		&credentials.DetectOptions{Scopes: []string{fakefcm.ScopeMessaging}, Client: fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creds.Token(fakepush.Context(t, 10*time.Second)); err == nil {
		t.Fatalf("token endpoint issued a token for a forged assertion")
	}
	c := sdkClient(t, fake, path)
	if _, err := c.Send(fakepush.Context(t, 500*time.Millisecond), &messaging.Message{Token: "d"}); err == nil {
		t.Fatalf("send with forged credentials succeeded")
	}
	if fake.Attempts("d") != 0 {
		t.Errorf("a send without a valid token reached messages:send")
	}
}

func TestFailTokenEndpointAndRevokeAccessTokens(t *testing.T) {
	fake := fakefcm.Start(t)
	path := fake.WriteCredentials(t.TempDir())
	token := func() (string, error) {
		creds, err := credentials.NewCredentialsFromFile(credentials.ServiceAccount, path,
			&credentials.DetectOptions{Scopes: []string{fakefcm.ScopeMessaging}, Client: fake.Client()})
		if err != nil {
			return "", err
		}
		tok, err := creds.Token(fakepush.Context(t, 10*time.Second))
		if err != nil {
			return "", err
		}
		return tok.Value, nil
	}
	fake.FailTokenEndpoint(http.StatusUnauthorized)
	if _, err := token(); err == nil {
		t.Fatalf("token issued while the endpoint is told to fail")
	}
	fake.FailTokenEndpoint(0)
	access, err := token()
	if err != nil {
		t.Fatalf("token after recovery: %v", err)
	}
	post := func() (int, map[string]any) {
		body := `{"message":{"token":"d","data":{"k":"v"}}}`
		req, _ := http.NewRequest("POST", fake.Endpoint+"/projects/"+fake.ProjectID+"/messages:send", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := fake.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, out := post(); status != 200 || out["name"] == nil {
		t.Fatalf("send with a fresh token = %d %v", status, out)
	}
	fake.RevokeAccessTokens()
	status, out := post()
	if status != 401 {
		t.Fatalf("send with a revoked token = %d %v, want 401", status, out)
	}
	if e, _ := out["error"].(map[string]any); e["status"] != "UNAUTHENTICATED" {
		t.Errorf("error body = %v, want status UNAUTHENTICATED", out)
	}
	if fake.TokenRequests() != 2 {
		t.Errorf("token requests = %d, want 2", fake.TokenRequests())
	}
}

func TestFakeRefusesWhatFCMRefuses(t *testing.T) {
	fake := fakefcm.Start(t)
	path := fake.WriteCredentials(t.TempDir())
	creds, err := credentials.NewCredentialsFromFile(credentials.ServiceAccount, path,
		&credentials.DetectOptions{Scopes: []string{fakefcm.ScopeMessaging}, Client: fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := creds.Token(fakepush.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, project, auth, body string
		status                    int
	}{
		{"no bearer", fake.ProjectID, "", `{"message":{"token":"d"}}`, 401},
		{"another project", "other", "Bearer " + tok.Value, `{"message":{"token":"d"}}`, 403},
		{"unknown field", fake.ProjectID, "Bearer " + tok.Value, `{"message":{"token":"d","colour":"red"}}`, 400},
		{"unknown field beside the message", fake.ProjectID, "Bearer " + tok.Value, `{"colour":"red","message":{"token":"d"}}`, 400},
		{"no message", fake.ProjectID, "Bearer " + tok.Value, `{"validate_only":false}`, 400},
		{"message not an object", fake.ProjectID, "Bearer " + tok.Value, `{"message":"d"}`, 400},
		{"body not JSON", fake.ProjectID, "Bearer " + tok.Value, `{"message":{"token":"d"`, 400},
		{"empty body", fake.ProjectID, "Bearer " + tok.Value, ``, 400},
		{"data value not a string", fake.ProjectID, "Bearer " + tok.Value, `{"message":{"token":"d","data":{"n":1}}}`, 400},
		{"no target", fake.ProjectID, "Bearer " + tok.Value, `{"message":{"data":{"n":"1"}}}`, 400},
		{"bad priority", fake.ProjectID, "Bearer " + tok.Value, `{"message":{"token":"d","android":{"priority":"urgent"}}}`, 400},
		{"bad ttl", fake.ProjectID, "Bearer " + tok.Value, `{"message":{"token":"d","android":{"ttl":"30"}}}`, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", fake.Endpoint+"/projects/"+c.project+"/messages:send", bytes.NewBufferString(c.body))
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := fake.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Error struct {
					Code   int    `json:"code"`
					Status string `json:"status"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatalf("error body is not FCM's JSON: %v", err)
			}
			if resp.StatusCode != c.status || out.Error.Code != c.status || out.Error.Status == "" {
				t.Errorf("answer %d %+v, want %d", resp.StatusCode, out.Error, c.status)
			}
		})
	}
	if fake.Count() != 0 {
		t.Errorf("refused requests were recorded as messages")
	}
}

func TestConcurrentSendsAreAllRecordedInOrderPerToken(t *testing.T) {
	fake := fakefcm.Start(t)
	c := sdkClient(t, fake, fake.WriteCredentials(t.TempDir()))
	device := func(w int) string { return fmt.Sprintf("device-%d", w) }
	fakepush.PushConcurrently(t, fake.Recorder, 32, 40, device, func(token string, i int) error {
		_, err := c.Send(fakepush.Context(t, 10*time.Second), &messaging.Message{Token: token, Data: map[string]string{"i": strconv.Itoa(i)}})
		return err
	}, func(m fakefcm.Message) string { return m.Data["i"] })
}

func TestWaitForReturnsOnceMessagesArrive(t *testing.T) {
	fake := fakefcm.Start(t)
	c := sdkClient(t, fake, fake.WriteCredentials(t.TempDir()))
	go func() {
		for range 3 {
			_, _ = c.Send(context.Background(), &messaging.Message{Token: "w"})
		}
	}()
	got, err := fake.WaitFor(fakepush.Context(t, 10*time.Second), "w", 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("WaitFor = %d messages, %v", len(got), err)
	}
	if _, err := fake.WaitFor(fakepush.Context(t, 50*time.Millisecond), "never", 1); err == nil {
		t.Fatalf("WaitFor for a token that gets nothing returned no error")
	}
}
