package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
)

func TestSignIsTheLowercaseHexHMACSHA256OfTheBody(t *testing.T) {
	// RFC 4231, test case 2.
	got := Sign([]byte("Jefe"), []byte("what do ya want for nothing?"))
	if want := "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestRetriesStartWithinSecondsGrowAndLastMoreThanADay(t *testing.T) {
	s, err := New(Config{Secret: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	first := s.RetryDelay(0, nil, nil)
	if first < DefaultRetryBase || first > 2*DefaultRetryBase {
		t.Errorf("first retry after %s, want within [%s, %s]", first, DefaultRetryBase, 2*DefaultRetryBase)
	}
	var least time.Duration // the shortest the retries can take: each wait without its jitter
	for n := 0; n < queue.WebhookMaxRetry; n++ {
		d := s.RetryDelay(n, nil, nil)
		if d > maxRetryDelay*3/2 {
			t.Fatalf("retry %d waits %s, past the cap", n, d)
		}
		least += min(DefaultRetryBase<<min(n, 20), maxRetryDelay)
	}
	if least < 24*time.Hour {
		t.Errorf("retries end after at least %s, want more than a day", least)
	}
}

func TestARedirectIsNotFollowedAndFailsTheAttempt(t *testing.T) {
	hit := false
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer other.Close()
	rcv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusFound))
	defer rcv.Close()
	s, err := New(Config{Secret: []byte("k"), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"url":"` + rcv.URL + `","id":"wh_1","body":{"type":"call.created"}}`)
	err = s.Handle(context.Background(), asynq.NewTask(queue.TypeWebhook, payload))
	if err == nil || hit {
		t.Fatalf("Handle = %v, redirect followed: %v; want an error and no request to the redirect's target", err, hit)
	}
	if errors.Is(err, asynq.SkipRetry) {
		t.Errorf("a redirect must be retried, got %v", err)
	}
}
