package logwriter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// recorder is an io.Writer that keeps each Write apart, so a test sees what each write(2) would have carried.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recorder) chunks() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

func (r *recorder) text() string {
	return string(bytes.Join(r.chunks(), nil))
}

// records is every JSON record the recorder got, in order; a line that is not one whole record fails t.
func (r *recorder) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(r.text(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line is not a whole record (%v): %q", err, line)
		}
		out = append(out, rec)
	}
	return out
}

func jsonLogger(w *Writer) *slog.Logger {
	return slog.New(NewHandler(slog.NewJSONHandler(w, nil), w))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRecordsStayWholeUnderManyConcurrentWriters(t *testing.T) {
	var out recorder
	w := New(&out, time.Millisecond)
	log := jsonLogger(w)
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				// Records of many lengths, so they end at every place in the buffer.
				log.Info("push sent", "g", g, "i", i, "pad", strings.Repeat("x", (g*each+i)%300))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range out.chunks() {
		if len(c) > BufferSize {
			t.Errorf("one write carried %d bytes, more than the %d-byte buffer", len(c), BufferSize)
		}
		if !bytes.HasSuffix(c, []byte("\n")) {
			t.Errorf("a write ends mid-record: %q", c[max(0, len(c)-40):])
		}
	}
	seen := map[string]bool{}
	for _, rec := range out.records(t) {
		seen[fmt.Sprint(rec["g"], "/", rec["i"])] = true
	}
	if len(seen) != goroutines*each {
		t.Errorf("%d distinct records out, want %d", len(seen), goroutines*each)
	}
}

// A worker and its notify child write to one stderr, most often a pipe: each has a Writer of its own on its
// own descriptor, and no line of one may land inside a line of the other.
func TestTwoProcessesWritersOnOnePipeNeverCutALine(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd, err := syscall.Dup(int(pw.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	childEnd := os.NewFile(uintptr(fd), "child stderr")
	read := make(chan []string)
	go func() {
		var lines []string
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		read <- lines
	}()

	const each = 2000
	ends := []*os.File{pw, childEnd}
	var wg sync.WaitGroup
	var writers []*Writer
	for p, end := range ends {
		w := New(end, time.Millisecond)
		writers = append(writers, w)
		log := jsonLogger(w).With("process", p)
		for g := range 4 {
			wg.Go(func() {
				for i := range each {
					log.Info("push sent", "g", g, "i", i, "pad", strings.Repeat("x", i%500))
				}
			})
		}
	}
	wg.Wait()
	for i, w := range writers {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		ends[i].Close()
	}
	lines := <-read
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a line is not one whole record (%v): %q", err, l[:min(len(l), 200)])
		}
	}
	if len(lines) != 2*4*each {
		t.Errorf("%d lines, want %d", len(lines), 2*4*each)
	}
}

func TestARecordIsWrittenOutWithinTheIntervalWithoutClose(t *testing.T) {
	var out recorder
	w := New(&out, 5*time.Millisecond)
	t.Cleanup(func() { w.Close() })
	jsonLogger(w).Info("push sent", "cid", "default:abc")
	eventually(t, "the record to be written out by the ticker", func() bool {
		return strings.Contains(out.text(), `"cid":"default:abc"`)
	})
}

func TestCloseWritesOutEverythingAndStopsTheTicker(t *testing.T) {
	var out recorder
	w := New(&out, time.Hour)
	log := jsonLogger(w)
	for i := range 3 {
		log.Info("push sent", "i", i)
	}
	if got := out.text(); got != "" {
		t.Fatalf("written out before Close with an hour's interval: %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(out.records(t)); n != 3 {
		t.Fatalf("%d records out after Close, want 3", n)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("the ticker goroutine still runs after Close returned")
	}
	// Records after Close go straight out, and closing again is harmless.
	log.Info("late")
	if !strings.Contains(out.text(), `"msg":"late"`) {
		t.Error("a record after Close was not written out at once")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWarnAndErrorRecordsAreWrittenOutAtOnceWithWhatWaitedBeforeThem(t *testing.T) {
	var out recorder
	w := New(&out, time.Hour)
	t.Cleanup(func() { w.Close() })
	// Derived loggers keep the behaviour.
	log := jsonLogger(w).With("process", "notify-child").WithGroup("g")

	log.Info("push sent")
	log.Debug("not enabled")
	if got := out.text(); got != "" {
		t.Fatalf("an Info record went out at once with an hour's interval: %q", got)
	}
	log.Warn("redis client", "detail", "dial failed")
	recs := out.records(t)
	if len(recs) != 2 || recs[0]["msg"] != "push sent" || recs[1]["msg"] != "redis client" {
		t.Fatalf("right after a Warn record: %v, want the Info record then the Warn record", recs)
	}
	log.Error("notify worker process exited")
	if recs := out.records(t); len(recs) != 3 || recs[2]["msg"] != "notify worker process exited" || recs[2]["process"] != "notify-child" {
		t.Fatalf("right after an Error record: %v", recs)
	}
}

func TestIntervalZeroWritesEachRecordAtOnce(t *testing.T) {
	var out recorder
	w := New(&out, 0)
	log := jsonLogger(w)
	for i := range 3 {
		log.Info("push sent", "i", i)
		if n := len(out.chunks()); n != i+1 {
			t.Fatalf("after %d Info records, %d writes; want one write per record", i+1, n)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestARecordLargerThanTheBufferIsWrittenWholeAfterThoseBeforeIt(t *testing.T) {
	var out recorder
	w := New(&out, time.Hour)
	t.Cleanup(func() { w.Close() })
	log := jsonLogger(w)
	log.Info("small")
	big := strings.Repeat("b", 3*BufferSize)
	log.Info("big", "body", big)

	chunks := out.chunks()
	if len(chunks) != 2 {
		t.Fatalf("%d writes, want the buffered record, then the large one on its own", len(chunks))
	}
	recs := out.records(t)
	if len(recs) != 2 || recs[0]["msg"] != "small" || recs[1]["body"] != big {
		t.Fatalf("records out of order or cut: %d records", len(recs))
	}
	// The buffer is usable afterwards.
	log.Info("after")
	if len(out.chunks()) != 2 {
		t.Error("a small record after the large one was not buffered")
	}
}

func TestARecordThatDoesNotFitWritesOutTheBufferFirst(t *testing.T) {
	var out recorder
	w := New(&out, time.Hour)
	t.Cleanup(func() { w.Close() })
	rec := []byte(strings.Repeat("r", BufferSize/2-1) + "\n")
	for range 3 {
		if _, err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	chunks := out.chunks()
	if len(chunks) != 1 || !bytes.Equal(chunks[0], append(bytes.Clone(rec), rec...)) {
		t.Fatalf("writes %d; want the first two records in one write, the third kept", len(chunks))
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("stderr closed") }

func TestAFailedWriteIsReportedAndItsRecordsDropped(t *testing.T) {
	w := New(failing{}, time.Hour)
	t.Cleanup(func() { w.Close() })
	if _, err := w.Write([]byte("a\n")); err != nil {
		t.Fatalf("a buffered record: %v", err)
	}
	if err := w.Flush(); err == nil {
		t.Fatal("Flush reported no error from a failing output")
	}
	if err := w.Flush(); err != nil {
		t.Errorf("the failed records were kept and written again: %v", err)
	}
}
