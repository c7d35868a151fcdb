package fcm

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// rawConn is the TCP side of a TLS connection under test: it counts the writes that reach it, can hold them
// until let go, and can fail them.
type rawConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	gate   chan struct{} // while open (non-nil), writes wait for it to close
	fail   error
}

func (r *rawConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	gate, fail := r.gate, r.fail
	r.writes++
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return 0, fail
	}
	return r.Conn.Write(p)
}

func (r *rawConn) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// tlsPair is a batchConn over a TLS client on raw, and what the TLS server side has read so far.
func tlsPair(t *testing.T) (*batchConn, *rawConn, func() []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil) // for its certificate and a client that trusts it
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a, b := net.Pipe()
	raw := &rawConn{Conn: a}
	server := tls.Server(b, srv.TLS)
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	client := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "example.com"})
	var mu sync.Mutex
	var got bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := server.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := newBatchConn(client)
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, raw, func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(got.Bytes())
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
	}
}

// What HTTP/2 writes while the connection is busy with a system call goes out together, in one write, after
// it, and in the order it was written.
func TestWritesGatheredWhileTheConnectionWritesGoOutTogetherInOrder(t *testing.T) {
	c, raw, received := tlsPair(t)
	before := raw.count()
	gate := make(chan struct{})
	raw.mu.Lock()
	raw.gate = gate
	raw.mu.Unlock()

	var want bytes.Buffer
	first := []byte("HEADERS 0;")
	want.Write(first)
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "write reaching the connection", func() bool { return raw.count() == before+1 })
	for i := range 50 {
		frame := []byte{'F', byte('0' + i%10), ';'}
		want.Write(frame)
		if n, err := c.Write(frame); err != nil || n != len(frame) {
			t.Fatalf("write %d while the connection was busy: %d, %v", i, n, err)
		}
	}
	raw.mu.Lock()
	raw.gate = nil
	raw.mu.Unlock()
	close(gate)
	waitUntil(t, "every byte at the other end", func() bool { return len(received()) >= want.Len() })
	if got := received(); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the other end read %q; want %q", got, want.Bytes())
	}
	if n := raw.count() - before; n != 2 {
		t.Errorf("%d writes reached the connection for 51 Writes, 50 of them made while it was busy; want 2", n)
	}
}

// A failed write fails every Write after it and closes the connection, so HTTP/2 gives up on it and the
// pushes in flight are tried again elsewhere.
func TestAFailedWriteIsKeptAndClosesTheConnection(t *testing.T) {
	c, raw, _ := tlsPair(t)
	broken := errors.New("connection reset")
	raw.mu.Lock()
	raw.fail = broken
	raw.mu.Unlock()
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatalf("the Write before the failure: %v; it only gathers", err)
	}
	waitUntil(t, "failure kept", func() bool {
		_, err := c.Write([]byte("next"))
		return errors.Is(err, broken)
	})
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the connection still reads after its write failed")
	}
}

// Close stops the writer; later Writes fail at once.
func TestWritesAfterCloseFail(t *testing.T) {
	c, _, _ := tlsPair(t)
	_ = c.Close()
	if _, err := c.Write([]byte("late")); !errors.Is(err, errConnClosed) {
		t.Fatalf("Write after Close: %v; want %v", err, errConnClosed)
	}
	select {
	case <-c.stopped:
	default:
		t.Fatal("the writer goroutine still runs after Close")
	}
}
