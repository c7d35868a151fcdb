package fcm

//lint:file-ignore SA1019 x/net/http2.Transport is deprecated for net/http's HTTP/2, whose pool (Go 1.26) dials a connection per request waiting past the stream limit; TestPushesToATLSEndpointAreMultiplexedOverHTTP2OnAFewConnections says when net/http alone will do.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// transport is the one connection pool every FCM request shares, OAuth token fetches included.
//
// FCM speaks HTTP/2 over TLS, where one connection carries as many pushes at once as the server's stream limit.
// net/http negotiates HTTP/2 too, but a burst past that limit makes it dial one connection per waiting request
// and close all but one once they are up: a TLS handshake per push in the burst. x/net/http2's own pool dials
// one connection at a time per host and shares it among the waiters, so https requests go through it.
//
// An http:// endpoint, a TLS one that offers only HTTP/1.1 (emulators, proxies) and any request that must go
// through a proxy (x/net/http2 dials directly) go through net/http, which keeps many idle HTTP/1.1 connections
// for the next burst, since there each request in flight holds a connection.
type transport struct {
	h1 *http.Transport
	h2 *http2.Transport

	// h1Only holds the host:port of every TLS endpoint that answered ALPN without h2.
	h1Only sync.Map
}

// errNoHTTP2 is a dial to a TLS endpoint that did not choose HTTP/2; nothing was sent on it.
var errNoHTTP2 = errors.New("fcm: endpoint offers no HTTP/2")

func newTransport(roots *x509.CertPool) *transport {
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &transport{h1: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true, // through a proxy, HTTP/2 is still worth having
		MaxIdleConns:          0,    // no limit across hosts; the per-host limit below is the one that matters
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		HTTP2:                 &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}}
	t.h2 = &http2.Transport{
		TLSClientConfig: tlsConfig,
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			// Offering http/1.1 as well lets an endpoint without HTTP/2 say so instead of failing the handshake.
			cfg.NextProtos = append(cfg.NextProtos, "http/1.1")
			conn, err := (&tls.Dialer{NetDialer: dialer, Config: cfg}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := conn.(*tls.Conn)
			if p := tc.ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
				conn.Close()
				t.h1Only.Store(addr, true)
				return nil, fmt.Errorf("%w: %s chose %q", errNoHTTP2, addr, p)
			}
			return newBatchConn(tc), nil
		},
		// Pings find a dead connection before a push is lost on it.
		ReadIdleTimeout: 30 * time.Second,
		PingTimeout:     15 * time.Second,
		IdleConnTimeout: 90 * time.Second,
	}
	return t
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.viaHTTP2(req) {
		return t.h1.RoundTrip(req)
	}
	resp, err := t.h2.RoundTrip(req)
	if !errors.Is(err, errNoHTTP2) {
		return resp, err
	}
	// The dial found an HTTP/1.1 endpoint before anything was sent: send it there, with a fresh body.
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, err
		}
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, errors.Join(err, gerr)
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	return t.h1.RoundTrip(req)
}

// viaHTTP2 says whether req goes through the HTTP/2 pool: https, no proxy, and not known to lack HTTP/2.
func (t *transport) viaHTTP2(req *http.Request) bool {
	if req.URL.Scheme != "https" {
		return false
	}
	if proxy, err := http.ProxyFromEnvironment(req); err != nil || proxy != nil {
		return false
	}
	port := req.URL.Port()
	if port == "" {
		port = "443"
	}
	_, h1 := t.h1Only.Load(net.JoinHostPort(req.URL.Hostname(), port))
	return !h1
}
