package notifychild

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
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
