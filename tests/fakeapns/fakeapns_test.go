package fakeapns_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakepush"
)

const topic = "dev.ringer.app"

// client is the real apns2 token client over an HTTP/2 transport that trusts pool (apns2's own uses x/net's
// deprecated HTTP/2 transport and the system roots).
func client(t *testing.T, fake *fakeapns.Server, pool *x509.CertPool) *apns2.Client {
	t.Helper()
	path, keyID, teamID := fake.WriteKey(t.TempDir())
	key, err := token.AuthKeyFromFile(path)
	if err != nil {
		t.Fatalf("AuthKeyFromFile: %v", err)
	}
	c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: keyID, TeamID: teamID})
	c.Host = fake.URL
	c.HTTPClient.Transport = h2Transport(pool)
	return c
}

func h2Transport(pool *x509.CertPool) *http.Transport {
	p := new(http.Protocols)
	p.SetHTTP2(true)
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: p, ForceAttemptHTTP2: true, MaxConnsPerHost: 1}
}

func tokenN(n int) string { return fmt.Sprintf("%064x", n+1) }

func TestRealClientPushIsRecordedWithItsHeaders(t *testing.T) {
	fake := fakeapns.Start(t)
	c := client(t, fake, fake.CertPool())
	exp := time.Now().Add(time.Minute).Truncate(time.Second)
	res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{
		DeviceToken: tokenN(1), Topic: topic + ".voip", PushType: apns2.PushTypeVOIP, Priority: 10,
		Expiration: exp, CollapseID: "ring-1", ApnsID: "123e4567-e89b-12d3-a456-426614174000",
		Payload: []byte(`{"aps":{},"type":"call.ring","call_cid":"default:abc"}`),
	})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("push = %+v, %v", res, err)
	}
	n := fake.Only(t, tokenN(1))
	if n.PushType != "voip" || n.Topic != topic+".voip" || n.Priority != 10 || !n.Expiration.Equal(exp) ||
		n.CollapseID != "ring-1" || n.APNsID != "123e4567-e89b-12d3-a456-426614174000" {
		t.Errorf("headers recorded as %+v", n)
	}
	if res.ApnsID != n.ID || n.ID != n.APNsID {
		t.Errorf("apns-id answered %q, recorded %q, sent %q", res.ApnsID, n.ID, n.APNsID)
	}
	if d := n.Data(); d["type"] != "call.ring" || d["call_cid"] != "default:abc" || len(d) != 2 {
		t.Errorf("data = %v", d)
	}
	if aps := n.Aps(); aps == nil || len(aps) != 0 {
		t.Errorf("aps = %v, want an empty dictionary", aps)
	}
	if string(n.Raw) != `{"aps":{},"type":"call.ring","call_cid":"default:abc"}` {
		t.Errorf("raw = %s", n.Raw)
	}
	if fake.Attempts(tokenN(1)) != 1 || fake.Count() != 1 || len(fake.Notifications()) != 1 {
		t.Errorf("attempts %d, count %d", fake.Attempts(tokenN(1)), fake.Count())
	}
}

func TestWithoutApnsIDTheFakeAssignsOne(t *testing.T) {
	fake := fakeapns.Start(t)
	c := client(t, fake, fake.CertPool())
	res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{
		DeviceToken: tokenN(1), Topic: topic, Payload: `{"aps":{"alert":"hi"}}`})
	if err != nil || res.StatusCode != 200 || res.ApnsID == "" {
		t.Fatalf("push = %+v, %v", res, err)
	}
	if n := fake.NotificationsTo(tokenN(1))[0]; n.ID != res.ApnsID || n.APNsID != "" || n.PushType != "alert" || n.Priority != 0 {
		t.Errorf("recorded %+v", n)
	}
}

// TestRealClientReadsScriptedErrorsAsApples checks that each scripted answer reaches apns2 as APNs' own.
func TestRealClientReadsScriptedErrorsAsApples(t *testing.T) {
	fake := fakeapns.Start(t)
	c := client(t, fake, fake.CertPool())
	gone := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	cases := []fakeapns.Answer{
		fakeapns.Unregistered(gone),
		fakeapns.ExpiredToken(gone),
		fakeapns.BadDeviceToken(),
		fakeapns.DeviceTokenNotForTopic(),
		fakeapns.PayloadTooLarge(),
		fakeapns.TooManyRequests(),
		fakeapns.InternalServerError(),
		fakeapns.ServiceUnavailable(),
		fakeapns.InvalidProviderToken(),
		fakeapns.ExpiredProviderToken(),
		fakeapns.Error(400, "TopicDisallowed"),
	}
	for i, a := range cases {
		t.Run(a.Reason, func(t *testing.T) {
			tok := tokenN(10 + i)
			fake.Script(tok, a)
			res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{DeviceToken: tok, Topic: topic, Payload: `{"aps":{}}`})
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			if res.StatusCode != a.Status || res.Reason != a.Reason || res.ApnsID == "" {
				t.Errorf("answer %d %q (apns-id %q), want %d %q", res.StatusCode, res.Reason, res.ApnsID, a.Status, a.Reason)
			}
			if a.Status == 410 && !res.Timestamp.Equal(gone) {
				t.Errorf("timestamp = %v, want %v", res.Timestamp.Time, gone)
			}
			if fake.Attempts(tok) != 1 || len(fake.NotificationsTo(tok)) != 0 {
				t.Errorf("attempts %d, delivered %d; want 1 and 0", fake.Attempts(tok), len(fake.NotificationsTo(tok)))
			}
			// The script is used up: the next push is delivered.
			res, err = c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{DeviceToken: tok, Topic: topic, Payload: `{"aps":{}}`})
			if err != nil || res.StatusCode != 200 {
				t.Errorf("push after the script = %+v, %v", res, err)
			}
		})
	}
}

func TestFakeChecksProviderTokens(t *testing.T) {
	fake := fakeapns.Start(t)
	push := func(c *apns2.Client) *apns2.Response {
		t.Helper()
		res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{DeviceToken: tokenN(1), Topic: topic, Payload: `{"aps":{}}`})
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		return res
	}

	t.Run("a key the fake did not write", func(t *testing.T) {
		c := client(t, fakeapns.Start(t), fake.CertPool())
		c.Host = fake.URL
		if res := push(c); res.StatusCode != 403 || res.Reason != "InvalidProviderToken" {
			t.Errorf("answer %d %s", res.StatusCode, res.Reason)
		}
	})
	t.Run("another team", func(t *testing.T) {
		c := client(t, fake, fake.CertPool())
		c.Token.TeamID = "OTHERTEAM1"
		if res := push(c); res.StatusCode != 403 || res.Reason != "InvalidProviderToken" {
			t.Errorf("answer %d %s", res.StatusCode, res.Reason)
		}
	})
	t.Run("no token", func(t *testing.T) {
		c := client(t, fake, fake.CertPool())
		c.Token = nil
		if res := push(c); res.StatusCode != 403 || res.Reason != "MissingProviderToken" {
			t.Errorf("answer %d %s", res.StatusCode, res.Reason)
		}
	})
	t.Run("issued over an hour ago", func(t *testing.T) {
		c := client(t, fake, fake.CertPool())
		old := time.Now().Add(-2 * time.Hour).Unix()
		jt := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": c.Token.TeamID, "iat": old})
		jt.Header["kid"] = c.Token.KeyID
		signed, err := jt.SignedString(c.Token.AuthKey)
		if err != nil {
			t.Fatal(err)
		}
		// Leave apns2 believing its token is fresh, so it sends the stale one.
		c.Token.Bearer, c.Token.IssuedAt = signed, time.Now().Unix()
		if res := push(c); res.StatusCode != 403 || res.Reason != "ExpiredProviderToken" {
			t.Errorf("answer %d %s", res.StatusCode, res.Reason)
		}
	})
	if fake.Count() != 0 {
		t.Errorf("unauthenticated pushes were delivered")
	}
}

func TestFakeRefusesWhatAPNsRefuses(t *testing.T) {
	fake := fakeapns.Start(t)
	c := client(t, fake, fake.CertPool())
	cases := []struct {
		name   string
		n      apns2.Notification
		status int
		reason string
	}{
		{"no topic", apns2.Notification{DeviceToken: tokenN(1), Payload: `{"aps":{}}`}, 400, "MissingTopic"},
		{"background at priority 10", apns2.Notification{DeviceToken: tokenN(1), Topic: topic, PushType: apns2.PushTypeBackground, Priority: 10, Payload: `{"aps":{"content-available":1}}`}, 400, "BadPriority"},
		{"priority 7", apns2.Notification{DeviceToken: tokenN(1), Topic: topic, Priority: 7, Payload: `{"aps":{}}`}, 400, "BadPriority"},
		{"voip to the app topic", apns2.Notification{DeviceToken: tokenN(1), Topic: topic, PushType: apns2.PushTypeVOIP, Payload: `{"aps":{}}`}, 400, "DeviceTokenNotForTopic"},
		{"alert to the voip topic", apns2.Notification{DeviceToken: tokenN(1), Topic: topic + ".voip", Payload: `{"aps":{}}`}, 400, "DeviceTokenNotForTopic"},
		{"unknown push type", apns2.Notification{DeviceToken: tokenN(1), Topic: topic, PushType: "telepathy", Payload: `{"aps":{}}`}, 400, "InvalidPushType"},
		{"payload over 4 KB", apns2.Notification{DeviceToken: tokenN(1), Topic: topic, Payload: `{"x":"` + strings.Repeat("a", 4096) + `"}`}, 413, "PayloadTooLarge"},
		{"long collapse id", apns2.Notification{DeviceToken: tokenN(1), Topic: topic, CollapseID: strings.Repeat("c", 65), Payload: `{"aps":{}}`}, 400, "BadCollapseId"},
		{"apns-id not a UUID", apns2.Notification{DeviceToken: tokenN(1), Topic: topic, ApnsID: "nope", Payload: `{"aps":{}}`}, 400, "BadMessageId"},
		{"token not hex", apns2.Notification{DeviceToken: "not-a-token", Topic: topic, Payload: `{"aps":{}}`}, 400, "BadDeviceToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &tc.n)
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			if res.StatusCode != tc.status || res.Reason != tc.reason {
				t.Errorf("answer %d %q, want %d %q", res.StatusCode, res.Reason, tc.status, tc.reason)
			}
		})
	}
	// A VoIP payload may be 5 KB.
	res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{DeviceToken: tokenN(2), Topic: topic + ".voip",
		PushType: apns2.PushTypeVOIP, Payload: `{"x":"` + strings.Repeat("a", 5000) + `"}`})
	if err != nil || res.StatusCode != 200 {
		t.Errorf("5 KB VoIP push = %+v, %v", res, err)
	}
	if fake.Count() != 1 {
		t.Errorf("delivered %d, want only the VoIP push", fake.Count())
	}
}

// TestRequestsApns2CannotMake covers what apns2 never sends: it always POSTs to /3/device/ with a body.
func TestRequestsApns2CannotMake(t *testing.T) {
	fake := fakeapns.Start(t)
	bearer := client(t, fake, fake.CertPool()).Token.GenerateIfExpired() // a valid provider token
	hc := &http.Client{Transport: h2Transport(fake.CertPool())}
	for _, c := range []struct{ method, path, reason string }{
		{"GET", "/3/device/" + tokenN(1), "MethodNotAllowed"},
		{"POST", "/2/device/" + tokenN(1), "BadPath"},
		{"POST", "/3/device/" + tokenN(1), "PayloadEmpty"},
	} {
		req, _ := http.NewRequest(c.method, fake.URL+c.path, nil)
		req.Header.Set("authorization", "bearer "+bearer)
		req.Header.Set("apns-topic", topic)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 256)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if !strings.Contains(string(body[:n]), `"reason":"`+c.reason+`"`) {
			t.Errorf("%s %s = %d %s, want reason %s", c.method, c.path, resp.StatusCode, body[:n], c.reason)
		}
	}
}

func TestOnlyHTTP2IsSpoken(t *testing.T) {
	fake := fakeapns.Start(t)
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: fake.CertPool(), NextProtos: []string{"http/1.1"}}}}
	if resp, err := h1.Post(fake.URL+"/3/device/"+tokenN(1), "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		t.Fatalf("an HTTP/1.1 client got %d; APNs speaks only HTTP/2", resp.StatusCode)
	}
}

func TestWriteCAFileTrustsTheServer(t *testing.T) {
	fake := fakeapns.Start(t)
	pem, err := os.ReadFile(fake.WriteCAFile(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file holds no certificate")
	}
	c := client(t, fake, pool)
	res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{DeviceToken: tokenN(1), Topic: topic, Payload: `{"aps":{}}`})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("push trusting the CA file = %+v, %v", res, err)
	}
	// And without it the server is not trusted.
	untrusted := client(t, fake, x509.NewCertPool())
	if _, err := untrusted.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{DeviceToken: tokenN(1), Topic: topic, Payload: `{"aps":{}}`}); err == nil {
		t.Fatalf("a client without the CA trusted the fake")
	}
}

func TestHangDropDelayAndLatency(t *testing.T) {
	fake := fakeapns.Start(t)
	c := client(t, fake, fake.CertPool())
	n := func(tok string) *apns2.Notification {
		return &apns2.Notification{DeviceToken: tok, Topic: topic, Payload: `{"aps":{}}`}
	}
	fake.Script(tokenN(1), fakeapns.Hang())
	if _, err := c.PushWithContext(fakepush.Context(t, 200*time.Millisecond), n(tokenN(1))); err == nil {
		t.Errorf("a hung push returned without error")
	}
	fake.Script(tokenN(2), fakeapns.Drop())
	if _, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), n(tokenN(2))); err == nil {
		t.Errorf("a dropped push returned without error")
	}
	if fake.Count() != 0 {
		t.Errorf("hung or dropped pushes were delivered")
	}
	fake.SetLatency(50 * time.Millisecond)
	fake.Script(tokenN(3), fakeapns.Delay(50*time.Millisecond))
	start := time.Now()
	if res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), n(tokenN(3))); err != nil || res.StatusCode != 200 {
		t.Fatalf("delayed push = %+v, %v", res, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("answer after %v, want at least latency + delay = 100ms", d)
	}
}

func TestConcurrentPushesAreAllRecordedInOrderPerToken(t *testing.T) {
	fake := fakeapns.Start(t)
	c := client(t, fake, fake.CertPool())
	const workers, each = 50, 40
	fakepush.PushConcurrently(t, fake.Recorder, workers, each, tokenN, func(token string, i int) error {
		res, err := c.PushWithContext(fakepush.Context(t, 10*time.Second), &apns2.Notification{
			DeviceToken: token, Topic: topic, Payload: fmt.Sprintf(`{"aps":{},"i":"%d"}`, i)})
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("answered %+v", res)
		}
		return err
	}, func(n fakeapns.Notification) string { return n.Data()["i"] })
	if fake.Connections() != 1 {
		t.Errorf("%d connections for one apns2 client, want 1", fake.Connections())
	}
	got, err := fake.WaitFor(fakepush.Context(t, time.Second), "", workers*each)
	if err != nil || len(got) != workers*each {
		t.Errorf("WaitFor all = %d, %v", len(got), err)
	}
	if _, err := fake.WaitFor(fakepush.Context(t, 50*time.Millisecond), tokenN(999), 1); err == nil {
		t.Errorf("WaitFor a token that gets nothing returned no error")
	}
}
