package fakefcm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/fakepush"
)

// BenchmarkHandleSend is the fake's own work for one notification, HTTP and TLS aside: in a benchmark of the
// whole system the fake shares the cores with ringer, so what it spends a push is taken from ringer's.
func BenchmarkHandleSend(b *testing.B) {
	s := Start(b)
	s.accessTokens["ya29.bench"] = time.Now().Add(time.Hour)
	payload, err := json.Marshal(map[string]any{"message": map[string]any{
		"token":        "fcm-token-0123456789abcdef",
		"data":         fakepush.CallData("call.notification", true),
		"notification": map[string]string{"title": "Alice is in a call", "body": "Standup: tap to join"},
		"android":      map[string]string{"ttl": "3600s"},
	}})
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.NewReader(payload)
	r := httptest.NewRequest("POST", "/v1/projects/ringer-test/messages:send", body)
	r.SetPathValue("project", "ringer-test")
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(payload)
		r.Header.Set("Authorization", "Bearer ya29.bench") // the handler takes it out of what it records
		w := httptest.NewRecorder()
		s.handleSend(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
