package apns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sideshow/apns2"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakepush"
)

const topic = "dev.ringer.app"

// newSender starts a fake APNs and a Sender that trusts it through RootCAs.
func newSender(t *testing.T) (*Sender, *fakeapns.Server) {
	t.Helper()
	fake := fakeapns.Start(t)
	key, keyID, teamID := fake.WriteKey(t.TempDir())
	s, err := New(Config{KeyFile: key, KeyID: keyID, TeamID: teamID, Topic: topic, Endpoint: fake.URL, RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, fake
}

func data(typ string) map[string]string { return fakepush.CallData(typ, true) }

// tokenN is a device token in APNs' form: 64 hex digits.
func tokenN(n int) string { return fmt.Sprintf("%064x", n+1) }

func TestSendShapesEachKindAsAPIMdSays(t *testing.T) {
	s, fake := newSender(t)
	expires := time.Now().Add(30 * time.Second).Truncate(time.Second)
	cases := []struct {
		name     string
		push     providers.Push
		pushType string
		topic    string
		priority int
		aps      string // the aps dictionary, as JSON with sorted keys
	}{
		{
			name:     "ring to a VoIP token is a VoIP push to the .voip topic",
			push:     providers.Push{Token: tokenN(1), VoIP: true, Kind: providers.KindRing, Data: data("call.ring"), Expires: expires, CollapseID: "r1"},
			pushType: "voip", topic: topic + ".voip", priority: 10, aps: `{}`,
		},
		{
			name: "ring to a regular token is a time-sensitive alert with a sound and the ring's text",
			push: providers.Push{Token: tokenN(2), Kind: providers.KindRing, Data: data("call.ring"), Expires: expires,
				Title: "Alice", Body: "is calling", CollapseID: "r2"},
			pushType: "alert", topic: topic, priority: 10,
			aps: `{"alert":{"body":"is calling","title":"Alice"},"interruption-level":"time-sensitive","sound":"default"}`,
		},
		{
			name: "notify and missed are alerts",
			push: providers.Push{Token: tokenN(3), Kind: providers.KindAlert, Data: data("call.missed"),
				Title: "Missed call", Body: "from Alice", Expires: expires, CollapseID: "r3"},
			pushType: "alert", topic: topic, priority: 10, aps: `{"alert":{"body":"from Alice","title":"Missed call"}}`,
		},
		{
			name:     "stop is a background push at priority 5",
			push:     providers.Push{Token: tokenN(4), Kind: providers.KindStop, Data: data("call.accepted")},
			pushType: "background", topic: topic, priority: 5, aps: `{"content-available":1}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := fakepush.MustSend(t, s, c.push)
			n := fake.Only(t, c.push.Token)
			if res.ID == "" || res.ID != n.ID {
				t.Errorf("Result.ID = %q, want the apns-id %q", res.ID, n.ID)
			}
			if n.PushType != c.pushType || n.Topic != c.topic || n.Priority != c.priority {
				t.Errorf("headers: push-type %q topic %q priority %d; want %q %q %d",
					n.PushType, n.Topic, n.Priority, c.pushType, c.topic, c.priority)
			}
			if !n.Expiration.Equal(c.push.Expires) {
				t.Errorf("apns-expiration = %v, want %v", n.Expiration, c.push.Expires)
			}
			if n.CollapseID != c.push.CollapseID {
				t.Errorf("apns-collapse-id = %q, want %q", n.CollapseID, c.push.CollapseID)
			}
			if aps := jsonOf(t, n.Aps()); aps != c.aps {
				t.Errorf("aps = %s, want %s", aps, c.aps)
			}
			d := n.Data()
			if len(d) != len(c.push.Data) || len(n.Payload) != len(c.push.Data)+1 {
				t.Errorf("payload = %s, want the data fields beside aps and nothing else", n.Raw)
			}
			for k, v := range c.push.Data {
				if d[k] != v {
					t.Errorf("payload[%s] = %q, want %q", k, d[k], v)
				}
			}
		})
	}
}

// jsonOf encodes v with sorted keys, to compare with the JSON a test case spells out.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}

func TestVoIPTokenTakesOnlyRings(t *testing.T) {
	s, fake := newSender(t)
	for _, kind := range []providers.Kind{providers.KindAlert, providers.KindStop} {
		res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: tokenN(9), VoIP: true, Kind: kind, Data: data("call.missed")})
		if res.Verdict != providers.Rejected {
			t.Errorf("%s to a VoIP token = %v, want rejected", kind, res.Verdict)
		}
	}
	if got := fake.Attempts(tokenN(9)); got != 0 {
		t.Errorf("%d pushes reached APNs", got)
	}
}

// TestVerdictForEveryScriptedAPNsError drives Apple's real answers through the fake and the real apns2 client.
func TestVerdictForEveryScriptedAPNsError(t *testing.T) {
	s, fake := newSender(t)
	// Milliseconds, as APNs sends them: a token registered again 1 ms after its death must be kept.
	gone := time.Date(2026, 3, 1, 12, 0, 0, 987_000_000, time.UTC)
	cases := []struct {
		name         string
		answer       fakeapns.Answer
		verdict      providers.Verdict
		reason       string
		invalidSince time.Time
	}{
		{"410 Unregistered", fakeapns.Unregistered(gone), providers.Unregistered, "Unregistered", gone},
		{"410 ExpiredToken", fakeapns.ExpiredToken(gone), providers.Unregistered, "ExpiredToken", gone},
		{"400 BadDeviceToken", fakeapns.BadDeviceToken(), providers.Unregistered, "BadDeviceToken", time.Time{}},
		{"400 DeviceTokenNotForTopic", fakeapns.DeviceTokenNotForTopic(), providers.Unregistered, "DeviceTokenNotForTopic", time.Time{}},
		{"400 PayloadEmpty", fakeapns.Error(400, "PayloadEmpty"), providers.Rejected, "PayloadEmpty", time.Time{}},
		{"400 BadTopic", fakeapns.Error(400, "BadTopic"), providers.Rejected, "BadTopic", time.Time{}},
		{"400 TopicDisallowed", fakeapns.Error(400, "TopicDisallowed"), providers.Rejected, "TopicDisallowed", time.Time{}},
		{"400 IdleTimeout", fakeapns.Error(400, "IdleTimeout"), providers.Retry, "IdleTimeout", time.Time{}},
		{"413 PayloadTooLarge", fakeapns.PayloadTooLarge(), providers.Rejected, "PayloadTooLarge", time.Time{}},
		{"429 TooManyRequests", fakeapns.TooManyRequests(), providers.Retry, "TooManyRequests", time.Time{}},
		{"500 InternalServerError", fakeapns.InternalServerError(), providers.Retry, "InternalServerError", time.Time{}},
		{"503 ServiceUnavailable", fakeapns.ServiceUnavailable(), providers.Retry, "ServiceUnavailable", time.Time{}},
		{"403 InvalidProviderToken", fakeapns.InvalidProviderToken(), providers.Retry, "credentials: InvalidProviderToken", time.Time{}},
		{"403 ExpiredProviderToken", fakeapns.ExpiredProviderToken(), providers.Retry, "credentials: ExpiredProviderToken", time.Time{}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := tokenN(100 + i)
			fake.Script(tok, c.answer)
			res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: tok, VoIP: true, Kind: providers.KindRing, Data: data("call.ring")})
			if res.Verdict != c.verdict || res.Reason != c.reason || !res.InvalidSince.Equal(c.invalidSince) {
				t.Errorf("Send = %v %q since %v; want %v %q since %v",
					res.Verdict, res.Reason, res.InvalidSince, c.verdict, c.reason, c.invalidSince)
			}
			var apnsErr *Error
			if !errors.As(res.Err, &apnsErr) || apnsErr.Reason != c.answer.Reason {
				t.Errorf("Err = %v, want an *apns.Error with reason %s", res.Err, c.answer.Reason)
			}
			if fake.Attempts(tok) != 1 || len(fake.NotificationsTo(tok)) != 0 {
				t.Errorf("attempts %d, delivered %d; want 1 and 0", fake.Attempts(tok), len(fake.NotificationsTo(tok)))
			}
		})
	}
}

// TestVerdictTable covers every reason Apple documents, and failures to get an answer at all.
func TestVerdictTable(t *testing.T) {
	at := time.Unix(1767225600, 0)
	resp := func(status int, reason string) *apns2.Response {
		return &apns2.Response{StatusCode: status, Reason: reason, ApnsID: "id"}
	}
	cases := []struct {
		res     *apns2.Response
		err     error
		verdict providers.Verdict
		reason  string
	}{
		{resp(200, ""), nil, providers.Sent, ""},
		{&apns2.Response{StatusCode: 410, Reason: "Unregistered", Timestamp: apns2.Time{Time: at}}, nil, providers.Unregistered, "Unregistered"},
		{resp(410, "ExpiredToken"), nil, providers.Unregistered, "ExpiredToken"},
		{resp(400, "BadDeviceToken"), nil, providers.Unregistered, "BadDeviceToken"},
		{resp(400, "DeviceTokenNotForTopic"), nil, providers.Unregistered, "DeviceTokenNotForTopic"},
		{resp(400, "BadCollapseId"), nil, providers.Rejected, "BadCollapseId"},
		{resp(400, "BadExpirationDate"), nil, providers.Rejected, "BadExpirationDate"},
		{resp(400, "BadMessageId"), nil, providers.Rejected, "BadMessageId"},
		{resp(400, "BadPriority"), nil, providers.Rejected, "BadPriority"},
		{resp(400, "BadTopic"), nil, providers.Rejected, "BadTopic"},
		{resp(400, "DuplicateHeaders"), nil, providers.Rejected, "DuplicateHeaders"},
		{resp(400, "IdleTimeout"), nil, providers.Retry, "IdleTimeout"},
		{resp(400, "InvalidPushType"), nil, providers.Rejected, "InvalidPushType"},
		{resp(400, "MissingDeviceToken"), nil, providers.Rejected, "MissingDeviceToken"},
		{resp(400, "MissingTopic"), nil, providers.Rejected, "MissingTopic"},
		{resp(400, "PayloadEmpty"), nil, providers.Rejected, "PayloadEmpty"},
		{resp(400, "TopicDisallowed"), nil, providers.Rejected, "TopicDisallowed"},
		{resp(403, "BadCertificate"), nil, providers.Retry, "credentials: BadCertificate"},
		{resp(403, "BadCertificateEnvironment"), nil, providers.Retry, "credentials: BadCertificateEnvironment"},
		{resp(403, "ExpiredProviderToken"), nil, providers.Retry, "credentials: ExpiredProviderToken"},
		{resp(403, "Forbidden"), nil, providers.Retry, "credentials: Forbidden"},
		{resp(403, "InvalidProviderToken"), nil, providers.Retry, "credentials: InvalidProviderToken"},
		{resp(403, "MissingProviderToken"), nil, providers.Retry, "credentials: MissingProviderToken"},
		{resp(403, "UnrelatedKeyIdInToken"), nil, providers.Retry, "credentials: UnrelatedKeyIdInToken"},
		{resp(403, "BadEnvironmentKeyIdInToken"), nil, providers.Retry, "credentials: BadEnvironmentKeyIdInToken"},
		{resp(404, "BadPath"), nil, providers.Rejected, "BadPath"},
		{resp(405, "MethodNotAllowed"), nil, providers.Rejected, "MethodNotAllowed"},
		{resp(413, "PayloadTooLarge"), nil, providers.Rejected, "PayloadTooLarge"},
		{resp(429, "TooManyProviderTokenUpdates"), nil, providers.Retry, "credentials: TooManyProviderTokenUpdates"},
		{resp(429, "TooManyRequests"), nil, providers.Retry, "TooManyRequests"},
		{resp(500, "InternalServerError"), nil, providers.Retry, "InternalServerError"},
		{resp(503, "ServiceUnavailable"), nil, providers.Retry, "ServiceUnavailable"},
		{resp(503, "Shutdown"), nil, providers.Retry, "Shutdown"},
		{resp(502, ""), nil, providers.Retry, "HTTP_502"},
		{nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, providers.Retry, "Network"},
		{&apns2.Response{}, errors.New("invalid character '<' looking for beginning of value"), providers.Retry, "Network"},
		{nil, fmt.Errorf("post: %w", context.DeadlineExceeded), providers.Retry, "Timeout"},
		{nil, context.Canceled, providers.Retry, "Canceled"},
		{nil, &pushError{msg: "no token"}, providers.Rejected, "InvalidPush"},
	}
	for _, c := range cases {
		name := c.reason
		if c.res != nil {
			name = fmt.Sprintf("%d %s", c.res.StatusCode, c.reason)
		}
		t.Run(name, func(t *testing.T) {
			res := verdict(c.res, c.err)
			if res.Verdict != c.verdict || res.Reason != c.reason {
				t.Errorf("verdict = %v %q, want %v %q", res.Verdict, res.Reason, c.verdict, c.reason)
			}
			if c.res != nil && c.res.StatusCode == 410 && !res.InvalidSince.Equal(c.res.Timestamp.Time) {
				t.Errorf("InvalidSince = %v, want %v", res.InvalidSince, c.res.Timestamp.Time)
			}
			if (res.Err == nil) != (res.Verdict == providers.Sent) {
				t.Errorf("Err = %v with verdict %v", res.Err, res.Verdict)
			}
		})
	}
}

func TestKeyAPNsDoesNotKnowIsRetryNamingCredentials(t *testing.T) {
	fake := fakeapns.Start(t)
	other := fakeapns.Start(t)
	key, keyID, teamID := other.WriteKey(t.TempDir()) // a key the fake never issued
	s, err := New(Config{KeyFile: key, KeyID: keyID, TeamID: teamID, Topic: topic, Endpoint: fake.URL, RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: tokenN(1), Kind: providers.KindAlert, Data: data("call.missed")})
	if res.Verdict != providers.Retry || res.Reason != "credentials: InvalidProviderToken" {
		t.Fatalf("Send = %v %q, want retry credentials: InvalidProviderToken", res.Verdict, res.Reason)
	}
}

func TestPayloadOverAPNsLimitIsRejected(t *testing.T) {
	s, fake := newSender(t)
	d := data("call.notification")
	d["call_display_name"] = strings.Repeat("x", 4200)
	res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: tokenN(1), Kind: providers.KindAlert, Data: d})
	if res.Verdict != providers.Rejected || res.Reason != "PayloadTooLarge" {
		t.Fatalf("Send = %v %q, want rejected PayloadTooLarge", res.Verdict, res.Reason)
	}
	if fake.Count() != 0 {
		t.Fatalf("an oversized payload was delivered")
	}
}

func TestHangAndDropAreRetry(t *testing.T) {
	s, fake := newSender(t)
	fake.Script(tokenN(1), fakeapns.Hang())
	res := s.Send(fakepush.Context(t, 200*time.Millisecond), providers.Push{Token: tokenN(1), VoIP: true, Kind: providers.KindRing, Data: data("call.ring")})
	if res.Verdict != providers.Retry || res.Reason != "Timeout" {
		t.Errorf("hung push = %v %q (%v), want retry Timeout", res.Verdict, res.Reason, res.Err)
	}
	fake.Script(tokenN(2), fakeapns.Drop())
	res = s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: tokenN(2), VoIP: true, Kind: providers.KindRing, Data: data("call.ring")})
	if res.Verdict != providers.Retry || res.Reason != "Network" {
		t.Errorf("dropped push = %v %q (%v), want retry Network", res.Verdict, res.Reason, res.Err)
	}
	if fake.Count() != 0 {
		t.Errorf("failed pushes were recorded as delivered")
	}
	// The connection survives a reset stream: the next push goes through.
	if res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: tokenN(2), VoIP: true, Kind: providers.KindRing, Data: data("call.ring")}); res.Verdict != providers.Sent {
		t.Errorf("push after a drop = %+v", res)
	}
}

func TestTokenThatCouldChangeThePathStaysInItsSegment(t *testing.T) {
	s, fake := newSender(t)
	res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: "../../x?y", Kind: providers.KindAlert, Data: data("call.missed")})
	if res.Verdict != providers.Unregistered || res.Reason != "BadDeviceToken" {
		t.Fatalf("Send = %v %q, want APNs' BadDeviceToken", res.Verdict, res.Reason)
	}
	if fake.Attempts("../../x?y") != 1 {
		t.Fatalf("the token did not reach /3/device/{token} as one segment")
	}
}

// TestPushesShareHTTP2Connections proves the client multiplexes: a cold burst of 50 concurrent pushes dials
// a few connections, not 50, and once warm, 1,000 pushes from 50 goroutines dial none.
func TestPushesShareHTTP2Connections(t *testing.T) {
	s, fake := newSender(t)
	const workers, each = 50, 20
	burst := func(rounds int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range rounds {
					res := s.Send(fakepush.Context(t, 10*time.Second), providers.Push{Token: tokenN(w), VoIP: true, Kind: providers.KindRing, Data: data("call.ring")})
					if res.Verdict != providers.Sent {
						t.Errorf("Send = %+v", res)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	burst(1)
	cold := fake.Connections()
	if cold > workers/4 {
		t.Errorf("a cold burst of %d pushes dialled %d connections", workers, cold)
	}
	burst(each)
	if got := fake.Count(); got != workers*(each+1) {
		t.Fatalf("delivered %d, want %d", got, workers*(each+1))
	}
	if got := fake.Connections(); got != cold {
		t.Errorf("a warm client dialled %d more connections: pushes are not multiplexed", got-cold)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	fake := fakeapns.Start(t)
	key, keyID, teamID := fake.WriteKey(t.TempDir())
	good := Config{KeyFile: key, KeyID: keyID, TeamID: teamID, Topic: topic}
	cases := map[string]func(*Config){
		"no key file":        func(c *Config) { c.KeyFile = "" },
		"missing key file":   func(c *Config) { c.KeyFile = key + ".nope" },
		"not a key":          func(c *Config) { c.KeyFile = fake.WriteCAFile(t.TempDir()) },
		"no key id":          func(c *Config) { c.KeyID = "" },
		"no team":            func(c *Config) { c.TeamID = "" },
		"no topic":           func(c *Config) { c.Topic = "" },
		"bad environment":    func(c *Config) { c.Environment = "staging" },
		"plain http":         func(c *Config) { c.Endpoint = "http://127.0.0.1:1" },
		"endpoint not a url": func(c *Config) { c.Endpoint = "127.0.0.1:443" },
	}
	for name, change := range cases {
		cfg := good
		change(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	for _, env := range []string{"", "production", "development"} {
		cfg := good
		cfg.Environment = env
		s, err := New(cfg)
		if err != nil {
			t.Fatalf("environment %q: %v", env, err)
		}
		want := apns2.HostProduction
		if env == "development" {
			want = apns2.HostDevelopment
		}
		if s.client.Host != want {
			t.Errorf("environment %q: host %s, want %s", env, s.client.Host, want)
		}
	}
}

// Check asks APNs (here the fake) whether it takes the key: the fake, like APNs, answers the probe token
// 400 BadDeviceToken for a good key and 403 for a key it never issued.
func TestCheckProbesAPNsAndFailsOnlyWhenTheKeyIsRejected(t *testing.T) {
	fake := fakeapns.Start(t)
	dir := t.TempDir()
	keyPath, keyID, teamID := fake.WriteKey(dir)
	good, err := New(Config{KeyFile: keyPath, KeyID: keyID, TeamID: teamID, Topic: "com.example.app", Endpoint: fake.URL, RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Check(context.Background()); err != nil {
		t.Fatalf("Check with the key APNs issued: %v", err)
	}
	if n := len(fake.Notifications()); n != 0 {
		t.Fatalf("the probe was delivered %d times; it must reach no device", n)
	}
	bad, err := New(Config{KeyFile: keyPath, KeyID: "WRONGKEY01", TeamID: teamID, Topic: "com.example.app", Endpoint: fake.URL, RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("Check with a key APNs does not know: %v, want rejected", err)
	}
}

// BenchmarkSend measures Send against the fake over loopback HTTP/2 with many goroutines, as the worker
// calls it.
func BenchmarkSend(b *testing.B) {
	fake := fakeapns.Start(b)
	key, keyID, teamID := fake.WriteKey(b.TempDir())
	s, err := New(Config{KeyFile: key, KeyID: keyID, TeamID: teamID, Topic: topic, Endpoint: fake.URL, RootCAs: fake.CertPool()})
	if err != nil {
		b.Fatal(err)
	}
	push := providers.Push{Token: tokenN(1), VoIP: true, Kind: providers.KindRing, Data: data("call.ring"), Expires: time.Now().Add(time.Hour)}
	fakepush.BenchSend(b, s, push)
}
