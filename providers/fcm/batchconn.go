package fcm

import (
	"crypto/tls"
	"errors"
	"sync"
)

// batchConn gathers what HTTP/2 writes to one FCM connection and writes it out in as few TLS records and
// system calls as it can. x/net/http2 writes and flushes each request's HEADERS and then its DATA under the
// connection's write lock, one TLS record and one write(2) each, so pushes in flight on one connection queue
// for that lock one system call at a time. Here a Write only appends to a buffer and wakes one goroutine that
// writes out everything gathered since its last write: while it is in a system call the next requests append
// theirs, and under load one write carries many pushes. An idle connection pays one goroutine hand-off.
//
// A write error is kept: every later Write returns it, and the connection is closed, so that HTTP/2 fails the
// requests in flight on it (the pushes are retried, as after any broken connection).
type batchConn struct {
	*tls.Conn // ConnectionState, reads and deadlines are the TLS connection's own

	mu      sync.Mutex
	room    sync.Cond // signalled when the buffer has been taken out, for Writes waiting for room
	buf     []byte    // what Writes gathered since the writer last took it
	spare   []byte    // the writer's last batch, reused
	err     error     // the first write error, or errConnClosed after Close
	kick    chan struct{}
	stopped chan struct{} // closed when the writer goroutine has returned
}

// batchLimit bounds what Writes may gather while the writer is in a system call: past it they wait, so a
// connection that stopped draining holds memory of its own size and no more.
const batchLimit = 1 << 20

var errConnClosed = errors.New("fcm: connection closed")

func newBatchConn(c *tls.Conn) *batchConn {
	b := &batchConn{Conn: c, kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	b.room.L = &b.mu
	go b.writeOut()
	return b
}

// Write gathers p to be written out with whatever else comes before the writer's next system call.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for b.err == nil && len(b.buf) >= batchLimit {
		b.room.Wait()
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	wake := len(b.buf) == 0
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	if wake {
		select {
		case b.kick <- struct{}{}:
		default: // already woken: it takes p with the rest
		}
	}
	return len(p), nil
}

// writeOut writes out what Writes gathered, a batch at a time, until the connection fails or is closed.
func (b *batchConn) writeOut() {
	defer close(b.stopped)
	for range b.kick {
		for {
			b.mu.Lock()
			if b.err != nil {
				b.mu.Unlock()
				return
			}
			if len(b.buf) == 0 {
				b.mu.Unlock()
				break
			}
			batch := b.buf
			b.buf, b.spare = b.spare[:0], nil
			b.room.Broadcast()
			b.mu.Unlock()

			_, err := b.Conn.Write(batch)

			b.mu.Lock()
			b.spare = batch[:0]
			if err != nil && b.err == nil {
				b.err = err
				b.room.Broadcast()
			}
			b.mu.Unlock()
			if err != nil {
				_ = b.Conn.Close() // HTTP/2's read loop sees it and fails the streams in flight
				return
			}
		}
	}
}

// Close closes the connection and stops the writer; what was gathered and not yet written is dropped, as a
// TLS connection's own Close drops what the kernel has not sent.
func (b *batchConn) Close() error {
	b.mu.Lock()
	if b.err == nil {
		b.err = errConnClosed
	}
	b.room.Broadcast()
	b.mu.Unlock()
	err := b.Conn.Close()
	select {
	case b.kick <- struct{}{}: // wake the writer so it sees err and returns
	default:
	}
	<-b.stopped
	return err
}
