// Package testredis starts a private redis-server on a free loopback port for one test, so tests run in
// parallel and never touch the machine's own Redis.
package testredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server owned by one test.
type Server struct {
	Addr   string
	Dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited and been waited for
	args   []string
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a go-redis client closed at the test's end.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Start runs redis-server on a free port and stops it when the test ends. extra are more redis-server
// arguments ("--appendonly", "yes").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found on PATH (apt-get install redis-server): %v", err)
	}
	s := startOn(t, bin, FreePort, extra...)
	t.Cleanup(s.Stop)
	return s
}

// startOn runs redis-server on a port pick chooses, trying again on another when it is taken.
func startOn(t testing.TB, bin string, pick func(testing.TB) int, extra ...string) *Server {
	t.Helper()
	s := &Server{Dir: t.TempDir()}
	// The port is free when pick returns, but another process may bind it before redis-server does (tests
	// run in parallel, and every connection takes an ephemeral port): then redis-server exits, and a new port
	// is tried.
	for attempt := 1; ; attempt++ {
		port := pick(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = append([]string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", s.Dir,
			"--save", "", "--appendonly", "no", "--logfile", filepath.Join(s.Dir, "redis.log"),
		}, extra...)
		s.bin(bin)
		err := s.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errExited) || attempt == 5 {
			t.Fatal(err)
		}
	}
	return s
}

func (s *Server) bin(path string) { s.cmd = exec.Command(path, s.args...) }

// errExited is a redis-server that exited at start, as it does when its port is taken.
var errExited = errors.New("redis-server exited at start")

func (s *Server) start() error {
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("redis-server on %s: %w (log: %s)", s.Addr, errExited, filepath.Join(s.Dir, "redis.log"))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready: %w", s.Addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the server; Restart brings it back on the same port and data folder.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Restart starts the server again after Stop, on the same address and folder (its AOF, when enabled).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.bin(s.cmd.Path)
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
