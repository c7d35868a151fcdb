package notifychild

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a log sink the supervisor's goroutine writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A Supervisor given nothing to wait for starts its child at once, restarts one that exits, and stops on
// Shutdown.
func TestASupervisorWithoutAfterStartsItsChildAtOnceAndRestartsItWhenItExits(t *testing.T) {
	logs := &lockedBuffer{}
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), Grace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.exe = "/bin/true" // exits before it reports an address, as a child that crashes at start
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "restarting it") {
		if time.Now().After(deadline) {
			t.Fatalf("no child started and restarted within 10 s; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "notify worker process started") {
		t.Errorf("the start was not logged:\n%s", logs)
	}
	if err := s.Ready(); err == nil {
		t.Error("ready while its child is down")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The parent's ring work reaches the child as it changes; RingWork never waits for the child, and the child
// hears the parent is gone when the pipe closes.
func TestTheParentsRingWorkReachesTheChildOverItsPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The child's descriptor, as exec would give it: its own, not the test's *os.File.
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	work, err := ParentRingWork(func(string) string { return strconv.Itoa(fd) })
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	stop := s.tellRingWork(w)

	for _, busy := range []bool{true, false, true} {
		s.RingWork(busy)
		select {
		case got := <-work:
			if got != busy {
				t.Fatalf("the child heard %v; want %v", got, busy)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the child did not hear %v", busy)
		}
	}
	// A child that reads nothing holds up no ring task.
	for i := range 100000 {
		s.RingWork(i%2 == 0)
	}
	stop()
	for range work { // what was written before the pipe closed, then the close
	}
}

func TestAChildWithoutARingWorkDescriptorHasNoParentToGiveWayTo(t *testing.T) {
	if work, err := ParentRingWork(func(string) string { return "" }); work != nil || err != nil {
		t.Errorf("no descriptor named: %v, %v; want nil, nil", work, err)
	}
	if _, err := ParentRingWork(func(string) string { return "four" }); err == nil || !strings.Contains(err.Error(), ringWorkFD) {
		t.Errorf("a malformed descriptor: %v; want an error naming %s", err, ringWorkFD)
	}
}

// The child collects garbage less often than Go's default unless the operator chose a GOGC, which it keeps.
func TestTheChildRunsWithItsOwnGOGCUnlessTheOperatorSetOne(t *testing.T) {
	for _, c := range []struct{ set, want string }{{"", "GOGC=200"}, {"50", "GOGC=50"}} {
		t.Setenv("GOGC", c.set)
		s, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		var last string
		for _, kv := range s.env {
			if strings.HasPrefix(kv, "GOGC=") {
				last = kv // exec takes the last of a repeated name
			}
		}
		if last != c.want {
			t.Errorf("GOGC=%q in the environment: the child gets %q; want %q", c.set, last, c.want)
		}
	}
}
