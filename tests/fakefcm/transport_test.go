package fakefcm_test

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/tests/fakefcm"
)

// post sends a token request the fake refuses (no grant): enough to see which protocol carried it.
func post(t *testing.T, c *http.Client, fake *fakefcm.Server) *http.Response {
	t.Helper()
	resp, err := c.Post(fake.TokenURL, "application/x-www-form-urlencoded", strings.NewReader("grant_type=none"))
	if err != nil {
		t.Fatalf("POST %s: %v", fake.TokenURL, err)
	}
	resp.Body.Close()
	return resp
}

func TestTheFakeServesHTTP2OverTLSAndStillAnswersAnHTTP1Client(t *testing.T) {
	fake := fakefcm.Start(t)
	if !strings.HasPrefix(fake.Endpoint, "https://") {
		t.Fatalf("endpoint %s, want https://", fake.Endpoint)
	}
	if resp := post(t, fake.Client(), fake); resp.ProtoMajor != 2 {
		t.Errorf("answered over %s, want HTTP/2", resp.Proto)
	}
	// As Google's front end, the fake offers http/1.1 too over ALPN.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: fake.CertPool(), NextProtos: []string{"http/1.1"}}}}
	defer h1.CloseIdleConnections()
	if resp := post(t, h1, fake); resp.ProtoMajor != 1 {
		t.Errorf("an HTTP/1.1 client was answered over %s", resp.Proto)
	}
	if got1, got2 := fake.RequestsOver(1), fake.RequestsOver(2); got1 != 1 || got2 != 1 {
		t.Errorf("RequestsOver(1) = %d, RequestsOver(2) = %d; want 1 and 1", got1, got2)
	}
	if got := fake.Connections(); got != 2 {
		t.Errorf("Connections = %d, want 2", got)
	}
}

func TestAnHTTP1FakeNeverSpeaksHTTP2(t *testing.T) {
	for name, o := range map[string]fakefcm.Options{"tls": {HTTP1: true}, "plain": {Plain: true}} {
		t.Run(name, func(t *testing.T) {
			fake := fakefcm.StartWith(t, o)
			c := fake.Client()
			if tr, ok := c.Transport.(*http.Transport); ok {
				tr.ForceAttemptHTTP2 = true // offer h2: the fake must still choose HTTP/1.1
			}
			if resp := post(t, c, fake); resp.ProtoMajor != 1 {
				t.Errorf("answered over %s, want HTTP/1.1", resp.Proto)
			}
			if got := fake.RequestsOver(2); got != 0 {
				t.Errorf("RequestsOver(2) = %d, want 0", got)
			}
		})
	}
}
