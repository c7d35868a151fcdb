package fcm

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The Firebase SDK retries a 503 and a network error by itself (at once, then after 1, 2 and 4 s), with no
// jitter and out of the worker's sight: the worker's own backoff and its provider-wide pause on Retry-After
// would not govern those tries. It gives up when Retry-After asks for more than its two-minute cap, so
// sdkRetryGuard, under the SDK, answers every 503 and every network error with a Retry-After past that cap,
// keeping the provider's own Retry-After in guardRetryAfter for verdict to read.
const (
	guardRetryAfter    = "X-Ringer-Retry-After"
	guardTransportErr  = "X-Ringer-Transport-Error"
	pastSDKRetryCapSec = "86400"
)

type sdkRetryGuard struct{ next http.RoundTripper }

func (g sdkRetryGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := g.next.RoundTrip(r)
	if err != nil {
		if r.Context().Err() != nil {
			return nil, err // the caller gave up: nothing to retry
		}
		msg := fmt.Sprintf("transport: %v", err)
		body := fmt.Sprintf(`{"error":{"code":503,"message":%q,"status":"UNAVAILABLE"}}`, msg)
		return &http.Response{
			StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{
				"Content-Type": {"application/json"}, "Retry-After": {pastSDKRetryCapSec},
				guardRetryAfter: {""}, guardTransportErr: {msg},
			},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r,
		}, nil
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		resp.Header.Set(guardRetryAfter, resp.Header.Get("Retry-After"))
		resp.Header.Set("Retry-After", pastSDKRetryCapSec)
	}
	return resp, nil
}

// providerRetryAfter is the Retry-After the provider sent, through the guard.
func providerRetryAfter(h http.Header) string {
	if v, guarded := h[guardRetryAfter]; guarded {
		return strings.Join(v, "")
	}
	return h.Get("Retry-After")
}
