package faults

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// faultProxy is a TCP proxy on 127.0.0.1 in front of a fake provider whose behaviour the test switches:
// pass the traffic through, refuse connections (nothing listens on its port), or reset each connection
// (TCP RST) once the client has sent its first bytes, in the middle of a request or a TLS handshake.
type faultProxy struct {
	t      testing.TB
	addr   string
	target string
	resets atomic.Int64 // connections reset in reset mode

	mu    sync.Mutex
	ln    net.Listener
	reset bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.Refuse()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c)
			}()
		}
	}()
}

func (p *faultProxy) handle(c net.Conn) {
	p.mu.Lock()
	reset := p.reset
	p.conns[c] = true
	p.mu.Unlock()
	defer p.forget(c)
	if reset {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1))
		p.resets.Add(1)
		rst(c)
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		rst(c)
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	defer p.forget(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	rst(c)
	rst(up)
	<-done
}

func (p *faultProxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// rst closes c with a TCP reset rather than an orderly FIN.
func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// cut resets every open connection, so clients must dial again and meet the new mode.
func (p *faultProxy) cut() {
	for c := range p.conns {
		rst(c)
	}
}

// Refuse stops listening and resets every open connection: dials get "connection refused".
func (p *faultProxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.cut()
}

// Reset listens again if needed and resets every connection, open or new, after its first bytes.
func (p *faultProxy) Reset() { p.serveAs(true) }

// Pass listens again if needed and forwards every new connection to the target.
func (p *faultProxy) Pass() { p.serveAs(false) }

// serveAs listens again if needed and sets what new connections meet: a reset after their first bytes, or
// the target. Setting resets cuts the open connections too.
func (p *faultProxy) serveAs(reset bool) {
	p.listen()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reset = reset
	if reset {
		p.cut()
	}
}

func (p *faultProxy) listen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond) // the port is ours; a closing socket may hold it for a moment
	}
	p.t.Errorf("proxy: listen again on %s: %v", p.addr, err)
}

// hostPort is the host:port of an http(s) URL.
func hostPort(url string) string {
	_, rest, _ := strings.Cut(url, "://")
	h, _, _ := strings.Cut(rest, "/")
	return h
}

// retryLogged reports whether p logged a retry for provider whose error contains one of words.
func retryLogged(p *harness.Process, provider string, words ...string) bool {
	_, ok := findLog(p, func(rec map[string]any) bool {
		if str(rec, "msg") != "push to retry" || str(rec, "provider") != provider {
			return false
		}
		msg := strings.ToLower(str(rec, "err"))
		for _, w := range words {
			if strings.Contains(msg, w) {
				return true
			}
		}
		return false
	})
	return ok
}

// TestNetworkFaultsAreRetriedWithoutLeakingGoroutinesOrHoldingSlots puts a TCP proxy between one worker and
// each fake provider and breaks the network in every way a push can meet: connections refused, connections
// reset mid-request (at the TCP level through the proxy, and by the providers dropping a request), and a
// provider that takes the request and never answers. Every push is retried and reaches its device exactly
// once; a push that hangs frees its worker slot (sendTimeout) so that the notifications queued behind it go
// out; and once all is quiet the worker runs no more goroutines than before the faults.
func TestNetworkFaultsAreRetriedWithoutLeakingGoroutinesOrHoldingSlots(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api"})
	fcmP := startProxy(t, hostPort(e.FCM.URL))
	apnsP := startProxy(t, hostPort(e.APNs.URL))
	// Two notification slots, so that two hung pushes fill them.
	w := e.StartProcess("worker", "FCM_ENDPOINT=https://"+fcmP.addr+"/v1", "APNS_ENDPOINT=https://"+apnsP.addr,
		"RINGER_NOTIFY_CONCURRENCY=2")
	base := "http://" + w.Addr
	alice := e.Token("alice")
	type member struct{ user, android, iphone string }
	mk := func(user string) member {
		m := member{user, user + "-android", harness.APNsToken(user + "-iphone")}
		e.Device(user, m.android, "firebase", false)
		e.Device(user, m.iphone, "apn", false)
		return m
	}
	ids := func(ms []member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.user)
		}
		return out
	}
	// Notifications for the hung pushes and the slots: their queue has few slots and a first retry within a
	// second. Rings for the rest: their retries stay quick however many there are (a notification's second
	// retry waits 16 s or more), and they last longer than the test, so no stop push comes. A member without
	// a VoIP token is rung through its regular APNs token.
	notify := func(call string, ms ...member) {
		e.MustCall(201, "POST", "/v1/call/default/"+call, alice, notifyBody(ids(ms)...))
	}
	ring := func(call string, ms ...member) {
		e.MustCall(201, "POST", "/v1/call/default/"+call, alice, ringBody(180_000, ids(ms)...))
	}
	delivered := func(what string, ms ...member) {
		t.Helper()
		harness.Eventually(t, 60*time.Second, what, func() bool {
			for _, m := range ms {
				if len(e.FCM.MessagesTo(m.android)) == 0 || len(e.APNs.NotificationsTo(m.iphone)) == 0 {
					return false
				}
			}
			return true
		})
	}

	// Warm up: both providers' connections open, every code path run once, then the baseline.
	warm := []member{mk("warm1"), mk("warm2")}
	notify("warm", warm...)
	delivered("the warm-up pushes", warm...)
	e.QuietWithin(30 * time.Second)
	before := goroutines(t, base)

	// Refused: FCM refuses connections while APNs resets them; then the other way round.
	fcmP.Refuse()
	apnsP.Reset()
	p1 := mk("refused1")
	ring("refused1", p1)
	// FCM's SDK retries a network error four times itself (over 7 s) before ringer sees it.
	harness.Eventually(t, 30*time.Second, "ringer to retry FCM pushes refused a connection", func() bool { return retryLogged(w, "firebase", "refused") })
	harness.Eventually(t, 30*time.Second, "ringer to retry APNs pushes whose connection was reset", func() bool { return retryLogged(w, "apn", "reset", "eof") })
	fcmP.Reset()
	apnsP.Refuse()
	p2 := mk("refused2")
	ring("refused2", p2)
	harness.Eventually(t, 30*time.Second, "ringer to retry FCM pushes whose connection was reset", func() bool { return retryLogged(w, "firebase", "reset", "eof") })
	harness.Eventually(t, 30*time.Second, "ringer to retry APNs pushes refused a connection", func() bool { return retryLogged(w, "apn", "refused") })
	t.Logf("the proxies reset %d FCM and %d APNs connections", fcmP.resets.Load(), apnsP.resets.Load())
	fcmP.Pass()
	apnsP.Pass()
	delivered("the pushes that met refused and reset connections", p1, p2)

	// The providers drop a request without answering (the connection or stream reset mid-request).
	p3 := mk("dropped")
	e.FCM.Script(p3.android, fakefcm.Drop())
	e.APNs.Script(p3.iphone, fakeapns.Drop())
	ring("dropped", p3)
	delivered("the dropped pushes", p3)

	// The providers take a request and never answer. Two notifications hang, one per slot; a third waits
	// behind them and goes out once sendTimeout frees the slots.
	h1, h2, h3 := mk("hung1"), mk("hung2"), mk("behind")
	e.FCM.Script(h1.android, fakefcm.Hang())
	e.APNs.Script(h2.iphone, fakeapns.Hang())
	notify("hung1", h1)
	notify("hung2", h2)
	harness.Eventually(t, 30*time.Second, "both slots to hang", func() bool {
		return e.FCM.Attempts(h1.android) == 1 && e.APNs.Attempts(h2.iphone) == 1
	})
	hungAt := time.Now()
	notify("behind", h3)
	delivered("the notification queued behind two hung pushes", h3)
	t.Logf("the notification behind two hung pushes went out %s after they hung", time.Since(hungAt).Round(time.Millisecond))
	delivered("the hung pushes, retried", h1, h2)

	e.QuietWithin(60 * time.Second)
	for _, m := range []member{warm[0], warm[1], p1, p2, p3, h1, h2, h3} {
		want := "call.notification"
		if m == p1 || m == p2 || m == p3 {
			want = "call.ring"
		}
		if got := fcmTypes(e, m.android); !same(got, want) {
			t.Errorf("%s got %v, want one %s", m.android, got, want)
		}
		if got := apnsTypes(e, m.iphone); !same(got, want) {
			t.Errorf("%s's iPhone got %v, want one %s", m.user, got, want)
		}
	}
	for _, tok := range []string{p3.android, h1.android} {
		if n := e.FCM.Attempts(tok); n < 2 {
			t.Errorf("%s tried %d times at FCM, want the failed try and the delivery", tok, n)
		}
	}
	for _, tok := range []string{p3.iphone, h2.iphone} {
		if n := e.APNs.Attempts(tok); n != 2 {
			t.Errorf("APNs token tried %d times, want 2 (the failed try and the delivery)", n)
		}
	}
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	if archived, _ := in.ListArchivedTasks(queue.QueueNotify); len(archived) != 0 {
		t.Errorf("notifications archived after network faults: %v", taskIDs(archived))
	}

	// No leak: the goroutines the faults started have ended. Connections the clients keep for the next
	// push account for a few more than before.
	const slack = 12
	var after int
	harness.Poll(30*time.Second, 100*time.Millisecond, func() bool {
		after = goroutines(t, base)
		return after <= before+slack
	})
	t.Logf("worker goroutines: %d before the faults, %d after", before, after)
	if after > before+slack {
		t.Errorf("worker runs %d goroutines after the faults, %d before: a leak", after, before)
	}
}

// TestAPNsTLSFailureIsRetriedAndNamedInTheLog runs a worker that does not trust the fake APNs' certificate
// (SSL_CERT_FILE=/dev/null: no test CA). Its APNs pushes fail in the TLS handshake and never reach APNs; they
// are retried, not dropped, without piling up goroutines, and the log says the certificate is the trouble.
// FCM pushes of the same ring go out (the fake FCM serves plain http:// here, so that the missing CA is APNs'
// trouble alone); the worker's /readyz fails naming APNs (its readiness check pushes to a
// token no device has, so it meets the same handshake). Once a worker that trusts APNs takes over, the VoIP
// ring push arrives exactly once.
func TestAPNsTLSFailureIsRetriedAndNamedInTheLog(t *testing.T) {
	t.Parallel()
	e := harness.Start(t, harness.Options{Command: "api", FCM: fakefcm.Options{Plain: true}})
	voip := e.AndroidAndVoIP("bob", "tls")
	bad := e.StartProcess("worker", "SSL_CERT_FILE=/dev/null", "SSL_CERT_DIR=/nonexistent")
	badBase := "http://" + bad.Addr
	e.MustCall(201, "POST", "/v1/call/default/tls", e.Token("alice"), ringBody(60_000, "bob"))

	harness.Eventually(t, 30*time.Second, "the FCM ring push", func() bool { return len(e.FCM.MessagesTo("tls-android")) == 1 })
	harness.Eventually(t, 30*time.Second, "a retry naming the certificate", func() bool { return retryLogged(bad, "apn", "certificate", "x509", "tls") })
	retries := func() float64 {
		return harness.Scrape(t, badBase).Get("ringer_pushes_total", "provider", "apn", "type", "call.ring", "outcome", "retry")
	}
	first, g1 := retries(), goroutines(t, badBase)
	harness.Eventually(t, 40*time.Second, "ten more failed handshakes", func() bool { return retries() >= first+10 })
	g2 := goroutines(t, badBase)
	t.Logf("untrusting worker: goroutines %d after the first failed handshake, %d after %v more", g1, g2, retries()-first)
	if g2 > g1+10 {
		t.Errorf("goroutines grew from %d to %d over ten failed TLS handshakes", g1, g2)
	}
	if n := e.APNs.Attempts(voip); n != 0 {
		t.Errorf("APNs saw %d requests from a client that cannot complete the handshake", n)
	}
	in := asynq.NewInspectorFromRedisClient(e.RDB)
	if archived, _ := in.ListArchivedTasks(queue.QueueRing); len(archived) != 0 {
		t.Errorf("ring tasks archived on a TLS failure: %v", taskIDs(archived))
	}
	code, body := readyzNaming(t, badBase, "apns")
	t.Logf("/readyz of the worker that cannot reach APNs over TLS: %d %s", code, strings.TrimSpace(body))
	if code != 503 || !strings.Contains(strings.ToLower(body), "apns") {
		t.Errorf("/readyz of a worker that cannot reach APNs over TLS: %d, want 503 naming apns", code)
	}

	// Hand over to a worker that trusts APNs: the ring push, still owed, goes out once.
	if !bad.Stop(30 * time.Second) {
		t.Fatalf("the untrusting worker did not exit within 30 s of SIGTERM")
	}
	e.StartProcess("worker")
	harness.Eventually(t, 30*time.Second, "the VoIP ring push", func() bool { return len(e.APNs.NotificationsTo(voip)) >= 1 })
	if got := apnsTypes(e, voip); !same(got, "call.ring") {
		t.Errorf("VoIP token got %v, want one call.ring", got)
	}
	if got := fcmTypes(e, "tls-android"); !same(got, "call.ring") {
		t.Errorf("tls-android got %v, want one call.ring (the ledger keeps it from a second)", got)
	}
}
