package fcm

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"

	"github.com/ringer-dev/ringer/providers"
)

// sdkRequest is the request body as the SDK's own marshalling writes it: the oracle for the wire shape.
func sdkRequest(t *testing.T, m *messaging.Message) []byte {
	t.Helper()
	b, err := json.Marshal(struct {
		Message *messaging.Message `json:"message"`
	}{m})
	if err != nil {
		t.Fatalf("SDK marshal: %v", err)
	}
	return b
}

func sameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("our body is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("SDK body is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body differs from the SDK's\n got %s\nwant %s", got, want)
	}
}

func TestRequestBodyIsWhatTheSDKWouldSend(t *testing.T) {
	now := time.Unix(1000, 0)
	awkward := map[string]string{
		"quote":    `say "hi"`,
		"slash":    `C:\path\`,
		"control":  "a\x00b\x01c\x1f\n\r\t\b\f\x7f",
		"unicode":  "Zoë 日本語 😀 \u2028\u2029",
		"html":     "<script>a && b</script>",
		"invalid":  "bad \xff\xfe utf8",
		`key "\<>`: "v",
		"empty":    "",
	}
	cases := map[string]providers.Push{
		"ring with fractional ttl and collapse id": {Token: "t", Kind: providers.KindRing, Data: data("call.ring"),
			Expires: now.Add(30*time.Second + 500*time.Millisecond), CollapseID: "c1"},
		"ring with whole-second ttl": {Token: "t", Kind: providers.KindRing, Data: data("call.ring"), Expires: now.Add(30 * time.Second)},
		"ring past its end":          {Token: "t", Kind: providers.KindRing, Data: data("call.ring"), Expires: now.Add(-time.Second)},
		"ring ending now":            {Token: "t", Kind: providers.KindRing, Data: data("call.ring"), Expires: now},
		"ring under a second left":   {Token: "t", Kind: providers.KindRing, Data: data("call.ring"), Expires: now.Add(1500 * time.Microsecond)},
		"ring without expiry":        {Token: "t", Kind: providers.KindRing, Data: data("call.ring")},
		"stop":                       {Token: "t", Kind: providers.KindStop, Data: data("call.accepted"), CollapseID: "c2"},
		"alert":                      {Token: "t", Kind: providers.KindAlert, Data: data("call.missed"), Title: "Missed call", Body: "Alice called"},
		"alert without data or text": {Token: "t", Kind: providers.KindAlert},
		"alert with awkward text": {Token: `tok"\<>&`, Kind: providers.KindAlert, Title: "<b>\"Zoë\"</b>\n", Body: "a\\b\x02 😀 &amp;",
			CollapseID: "<&>", Data: awkward},
		"ring with awkward data": {Token: "tok\u2028", Kind: providers.KindRing, Data: awkward, Expires: now.Add(time.Hour)},
		"empty data map":         {Token: "t", Kind: providers.KindStop, Data: map[string]string{}},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := message(p, now)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendRequest([]byte("junk left by an earlier push")[:0], m)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, sdkRequest(t, m))
		})
	}
}

// A message using fields ringer does not set goes through the SDK's marshalling rather than losing them.
func TestRequestBodyOfOtherMessagesIsTheSDKs(t *testing.T) {
	ttl := 1500 * time.Millisecond
	for name, m := range map[string]*messaging.Message{
		"topic and android extras": {Topic: "/topics/news", Android: &messaging.AndroidConfig{TTL: &ttl,
			RestrictedPackageName: "com.x", Data: map[string]string{"a": "b"}, DirectBootOK: true}},
		"condition and image": {Condition: "'a' in topics", Notification: &messaging.Notification{ImageURL: "https://x/i.png"}},
		"apns":                {Token: "t", APNS: &messaging.APNSConfig{Headers: map[string]string{"apns-priority": "10"}}},
		"android notification": {Token: "t", Android: &messaging.AndroidConfig{
			Notification: &messaging.AndroidNotification{Title: "x", Priority: messaging.PriorityHigh}}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := appendRequest(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, sdkRequest(t, m))
		})
	}
}

func TestTTLIsWrittenAsTheSDKWritesIt(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: `"0s"`, 30 * time.Second: `"30s"`, 30*time.Second + 500*time.Millisecond: `"30.500000000s"`,
		time.Millisecond: `"0.001000000s"`, 28 * 24 * time.Hour: `"2419200s"`, time.Nanosecond: `"0.000000001s"`,
	} {
		if got := string(appendDuration(nil, d)); got != want {
			t.Errorf("ttl %v = %s, want %s", d, got, want)
		}
		b, _ := (&messaging.AndroidConfig{TTL: &d}).MarshalJSON()
		if !strings.Contains(string(b), `"ttl":`+want) {
			t.Errorf("ttl %v: SDK writes %s, we write %s", d, b, want)
		}
	}
}

// Answers that the fake FCM never gives: a bare status without Google's JSON.
func TestVerdictOfAnswersWithoutAStatusInTheBody(t *testing.T) {
	cases := []struct {
		status  int
		body    string
		header  http.Header
		verdict providers.Verdict
		reason  string
		after   time.Duration
	}{
		{429, "", http.Header{"Retry-After": {"12"}}, providers.Retry, "RESOURCE_EXHAUSTED", 12 * time.Second},
		{502, "<html>Bad Gateway</html>", nil, providers.Retry, "UNKNOWN", 0},
		{503, "", http.Header{"Retry-After": {"5"}}, providers.Retry, "UNAVAILABLE", 5 * time.Second},
		{500, "oops", nil, providers.Retry, "INTERNAL", 0},
		{401, "", nil, providers.Retry, "credentials: UNAUTHENTICATED", 0},
		{403, "", nil, providers.Retry, "credentials: PERMISSION_DENIED", 0},
		{404, "", nil, providers.Retry, "NOT_FOUND: endpoint or project", 0},
		{400, "bad registration token", nil, providers.Unregistered, "INVALID_ARGUMENT: registration token", 0},
		{400, "", nil, providers.Rejected, "INVALID_ARGUMENT", 0},
		{409, "", nil, providers.Rejected, "HTTP_409", 0},
		{413, "", nil, providers.Rejected, "UNKNOWN", 0},
	}
	for _, c := range cases {
		err := newAnswerError(c.status, c.header, []byte(c.body))
		res := verdict(err)
		if res.Verdict != c.verdict || res.Reason != c.reason || res.RetryAfter != c.after {
			t.Errorf("%d %q: %v %q after %v, want %v %q after %v", c.status, c.body, res.Verdict, res.Reason, res.RetryAfter,
				c.verdict, c.reason, c.after)
		}
		if res.Err == nil {
			t.Errorf("%d: no Err", c.status)
		}
	}
}

func TestTransportErrorsAreRetryUnavailable(t *testing.T) {
	res := verdict(&transportError{err: errString("read: connection reset by peer")})
	if res.Verdict != providers.Retry || res.Reason != "UNAVAILABLE" || res.RetryAfter != 0 {
		t.Fatalf("verdict = %v %q after %v, want retry UNAVAILABLE at once", res.Verdict, res.Reason, res.RetryAfter)
	}
}

func TestSDKVersionIsTheOneBuiltIn(t *testing.T) {
	if sdkVersion != firebase.Version {
		t.Errorf("sdkVersion = %q, want firebase.Version %q: update it with go.mod", sdkVersion, firebase.Version)
	}
}

func TestMessageNameReadsFCMsAnswerAsEncodingJSONDoes(t *testing.T) {
	for _, body := range []string{
		`{"name":"projects/p/messages/0:1"}`,
		"{\n  \"name\": \"projects/p/messages/0:1500000000000000%2500\"\n}\n",
		`{"name":"with \"escapes\" \u00e9"}`,
		`{"name":"zoë"}`,
		`{"name":"a","extra":1}`,
		`{"other":"x"}`,
		`{}`,
		`{"name":"unterminated}`,
		`not json`,
		``,
		`{"name":"a"} trailing`,
	} {
		var want struct {
			Name string `json:"name"`
		}
		wantErr := json.Unmarshal([]byte(body), &want)
		got, err := messageName([]byte(body))
		if (err != nil) != (wantErr != nil) || got != want.Name {
			t.Errorf("messageName(%q) = %q, %v; encoding/json says %q, %v", body, got, err, want.Name, wantErr)
		}
	}
}
