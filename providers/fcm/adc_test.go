package fcm

import (
	"context"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/fakepush"
)

// Not parallel: it sets the process environment that Application Default Credentials read.
func TestWithoutACredentialsFileApplicationDefaultCredentialsAreUsed(t *testing.T) {
	fake := fakefcm.Start(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", fake.WriteCredentials(t.TempDir()))
	t.Setenv("HOME", t.TempDir()) // no gcloud well-known file to be found instead
	s, err := New(context.Background(), Config{Endpoint: fake.Endpoint, RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatalf("New without a credentials file: %v", err)
	}
	if s.ProjectID() != fake.ProjectID {
		t.Errorf("project = %q, want the ADC file's %q", s.ProjectID(), fake.ProjectID)
	}
	fakepush.MustSend(t, s, providers.Push{Token: "adc-token", Kind: providers.KindRing, Data: data("call.ring")})
	if got := len(fake.MessagesTo("adc-token")); got != 1 || fake.TokenRequests() == 0 {
		t.Errorf("fake FCM got %d messages and %d token requests; want 1 message sent with an ADC token", got, fake.TokenRequests())
	}
}

func TestWithoutAnyCredentialsNewSaysSo(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/missing.json")
	_, err := New(context.Background(), Config{})
	if err == nil || !strings.Contains(err.Error(), "application default credentials") {
		t.Fatalf("New with ADC pointing at a missing file: err %v, want one naming application default credentials", err)
	}
}
