// Package logwriter is the output of a process's log: a Writer that gathers whole log records and writes
// them out together, so that a process logging one line per push does not make one write(2) per line, and a
// slog.Handler wrapper that writes a Warn or Error record out at once.
//
// # Records stay whole
//
// Every Write is one whole record: slog's handlers write each record with a single Write call. The Writer
// only ever writes out whole records: one that does not fit in what is left of the buffer flushes the buffer
// first, and one larger than the buffer is written straight through, on its own.
//
// The buffer is BufferSize bytes, PIPE_BUF on Linux, and that is what keeps lines whole when more than one
// process writes to the same stderr: a worker and its notify child share theirs, and stderr is most often a
// pipe (a container runtime, a supervisor, a test harness). A write of at most PIPE_BUF bytes to a pipe is
// atomic, so two processes' flushes never interleave within a line; a larger flush could be split by the
// kernel and another process's write land in the middle of a record. A single record larger than the
// buffer gets no such promise, as it had none before.
//
// # When records go out
//
// Records are written out when the buffer would overflow, every interval (a ticker that writes only when
// something waits), on Flush, and on Close. A record at Warn or above logged through NewHandler is written
// out at once, so only the Info and Debug stream waits: if the process is killed (SIGKILL), at most the last
// interval's Info and Debug lines are lost. Interval 0 writes every record at once.
package logwriter

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// BufferSize is the most the Writer writes at once, short of a single larger record: PIPE_BUF on Linux
// (see the package doc for why it must not be larger).
const BufferSize = 4096

// DefaultInterval is how long a record may wait in the buffer unless configured otherwise.
const DefaultInterval = 100 * time.Millisecond

// Writer buffers whole log records for out and writes them out together. It is safe for concurrent use.
// Close flushes it and stops its ticker; it never closes out, which is not the Writer's.
type Writer struct {
	out io.Writer

	mu sync.Mutex
	// buf holds whole records; nil when unbuffered (interval 0) or closed.
	buf []byte

	stop chan struct{} // closed by Close; nil when unbuffered
	done chan struct{} // closed when the ticker goroutine has returned
}

// New is a Writer on out that writes out what it holds at least every interval; interval 0 writes every
// record at once, as if out had no Writer in front. A buffered Writer runs a goroutine until Close.
func New(out io.Writer, interval time.Duration) *Writer {
	w := &Writer{out: out}
	if interval <= 0 {
		return w
	}
	w.buf = make([]byte, 0, BufferSize)
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.tick(interval)
	return w
}

func (w *Writer) tick(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// A write error here has nowhere to go: the log is where it would be reported.
			_ = w.Flush()
		case <-w.stop:
			return
		}
	}
}

// Write takes one whole record. It is written out at once when the Writer is unbuffered or closed, or when
// it is larger than the buffer (after what the buffer holds, so records keep their order); otherwise it is
// kept, after writing out the buffer if the record does not fit in what is left of it.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil {
		return w.out.Write(p)
	}
	var err error
	if len(w.buf)+len(p) > cap(w.buf) {
		err = w.flushLocked()
	}
	if len(p) > cap(w.buf) {
		n, werr := w.out.Write(p)
		if werr != nil {
			return n, werr
		}
		return n, err
	}
	w.buf = append(w.buf, p...)
	// p is kept whatever became of the records before it, so it counts as written.
	return len(p), err
}

// Flush writes out the records the Writer holds, if any.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// flushLocked writes the buffer out in one Write. The records are dropped even if the write fails: keeping
// them would only grow the next write, and a log that cannot be written has nowhere to say so.
func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// Close writes out what the Writer holds and stops its ticker, waiting for it; records written after Close
// go straight to out. Closing twice does nothing more.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.buf == nil {
		w.mu.Unlock()
		return nil
	}
	err := w.flushLocked()
	w.buf = nil
	w.mu.Unlock()
	// The ticker takes the lock to flush, so it is waited for only once the lock is released.
	close(w.stop)
	<-w.done
	return err
}

// NewHandler wraps h, which writes its records to w, so that a record at Warn or above is written out as
// soon as it is handled, with everything buffered before it: a problem reaches the operator at once.
func NewHandler(h slog.Handler, w *Writer) slog.Handler {
	return &flushingHandler{Handler: h, w: w}
}

type flushingHandler struct {
	slog.Handler
	w *Writer
}

func (h *flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &flushingHandler{Handler: h.Handler.WithAttrs(attrs), w: h.w}
}

func (h *flushingHandler) WithGroup(name string) slog.Handler {
	return &flushingHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}
