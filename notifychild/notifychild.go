// Package notifychild runs a worker's notification server in a child process at a lower CPU priority
// (RINGER_NOTIFY_PROCESS=child, RINGER_NOTIFY_NICE), and is both halves of it: the parent's Supervisor, one of
// the worker process's components, and the child's side of their protocol (Lower, ReportAddr, UntilParentGone).
//
// Go has no goroutine priorities: in one process a notification backlog keeps every core busy and a ring's
// wake-ups queue behind it, so under a 100,000-member drain rings and timeouts were late by seconds. The
// worker's ring-first admission (package worker) narrows that inside one process; the kernel's scheduler
// still does better where the cores are shared with Redis and the API, because it also puts the notification
// work behind them (BENCHMARKS.md has both side by side). The parent supervises the child: it restarts it
// when it dies, stops it on shutdown, serves its metrics on its own /metrics, and is not ready while it is down.
package notifychild

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Command is the hidden subcommand the parent runs: `ringer worker` with RINGER_QUEUES=notify, plus the
// child's side of the protocol (report its address on fd 3, stop when stdin closes, label its metrics).
const Command = "notify-child"

// MetricLabel marks the child's series on the parent's /metrics (value "notify"), so they never collide with
// the parent's own (the Go runtime's, the process's).
const MetricLabel = "worker_process"

// reniced marks a child that has already lowered its priority, so it does not do it again.
const reniced = "RINGER_NOTIFY_RENICED"

// ringWorkFD names, in the child's environment, the descriptor on which the parent reports its ring work
// (Supervisor.RingWork): one byte each time it changes, ringBusy or ringIdle.
const (
	ringWorkFD = "RINGER_NOTIFY_RING_WORK_FD"
	ringBusy   = '1'
	ringIdle   = '0'
)

// Lower runs this process nice levels lower than its parent, every thread of it, unless it already does
// (getenv says so): it replaces the process with itself lowered and returns only on failure, with the error.
func Lower(nice int, getenv func(string) string) error {
	if nice <= 0 || getenv(reniced) != "" {
		return nil
	}
	return execReniced(nice)
}

// childGOGC is the child's GOGC unless the operator sets one: a notification drain allocates per push on a
// small live heap, so the collector runs often for little; collecting at three times the live heap rather than
// twice gives a tenth or so of the child's CPU back to pushes for a few MB (BENCHMARKS.md).
const childGOGC = 200

// Config sets up a Supervisor.
type Config struct {
	// Env is set in the child's environment on top of this process's.
	Env []string
	// Stderr takes the child's logs.
	Stderr io.Writer
	Logger *slog.Logger
	// After, when set, holds the child's start back until it closes (this process's "listening" line, which
	// tools that start ringer wait for), so that a slow child start never holds up the API; nil starts it at
	// once.
	After <-chan struct{}
	// Grace is how long a stopping child may drain before it is killed.
	Grace time.Duration
}

// Supervisor keeps a child running as one of the process's components (app.Run): first in the list, so it is
// stopped last and the parent waits for it after everything else has drained; its context ends with the
// process's, so it drains alongside them. It is a prometheus.Gatherer of the child's series.
type Supervisor struct {
	after  <-chan struct{}
	grace  time.Duration
	cancel context.CancelFunc

	exe    string
	env    []string
	stderr io.Writer
	log    *slog.Logger
	http   *http.Client

	mu   sync.Mutex
	addr string // the running child's ops address; "" while it is down
	down bool   // a child died and its successor does not listen yet
	done chan struct{}

	// ringBusy is the parent's ring work as RingWork last heard it; ringChanged wakes the goroutine that
	// writes it to the running child.
	ringBusy    atomic.Bool
	ringChanged chan struct{}
}

// New returns a Supervisor of a child running this process's own binary.
func New(cfg Config) (*Supervisor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("notify child: find ringer's own binary: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.After == nil {
		now := make(chan struct{})
		close(now)
		cfg.After = now
	}
	env := append(append(os.Environ(), cfg.Env...), "RINGER_QUEUES=notify", "RINGER_ADDR=127.0.0.1:0",
		ringWorkFD+"=4")
	if os.Getenv("GOGC") == "" {
		env = append(env, "GOGC="+strconv.Itoa(childGOGC))
	}
	return &Supervisor{
		after: cfg.After, grace: cfg.Grace, env: env,
		exe: exe, stderr: cfg.Stderr, log: cfg.Logger.With("process", "notify-child"),
		http: &http.Client{Timeout: 5 * time.Second}, done: make(chan struct{}),
		ringChanged: make(chan struct{}, 1),
	}, nil
}

// Start spawns the child once After closes, and keeps one running until ctx ends or Shutdown.
func (c *Supervisor) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	go func() {
		select {
		case <-c.after:
			c.run(ctx)
		case <-ctx.Done():
			close(c.done)
		}
	}()
	return nil
}

// Shutdown stops the child with SIGTERM and waits until it has drained, or been killed after Grace.
func (c *Supervisor) Shutdown(context.Context) error {
	c.cancel()
	<-c.done
	return nil
}

// run keeps a child running until ctx ends, then stops it with SIGTERM (it drains for its own
// RINGER_SHUTDOWN_TIMEOUT) and kills it if it has not exited after Grace.
func (c *Supervisor) run(ctx context.Context) {
	defer close(c.done)
	backoff := 500 * time.Millisecond
	for {
		started := time.Now()
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.down = true
		c.mu.Unlock()
		if time.Since(started) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		c.log.Error("notify worker process exited; restarting it", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (c *Supervisor) runOnce(ctx context.Context) error {
	report, reportW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("address pipe: %w", err)
	}
	defer report.Close()
	// The child reads stdin until it closes: when this process dies, even by SIGKILL, the kernel closes the
	// write end and the child drains and exits instead of running unsupervised.
	lifeline, lifelineW, err := os.Pipe()
	if err != nil {
		reportW.Close()
		return fmt.Errorf("lifeline pipe: %w", err)
	}
	defer lifelineW.Close()
	ringWork, ringWorkW, err := os.Pipe()
	if err != nil {
		reportW.Close()
		lifeline.Close()
		return fmt.Errorf("ring work pipe: %w", err)
	}
	cmd := exec.Command(c.exe, Command)
	cmd.Env = c.env
	cmd.Stdin = lifeline
	cmd.Stderr = c.stderr
	cmd.ExtraFiles = []*os.File{reportW, ringWork} // fd 3 and 4
	err = cmd.Start()
	reportW.Close()
	lifeline.Close()
	ringWork.Close()
	if err != nil {
		ringWorkW.Close()
		return fmt.Errorf("start %s %s: %w", c.exe, Command, err)
	}
	stopTelling := c.tellRingWork(ringWorkW)
	defer stopTelling()
	c.log.Info("notify worker process started", "pid", cmd.Process.Pid)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(report).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a != "" {
			c.mu.Lock()
			c.addr, c.down = a, false
			c.mu.Unlock()
		}
	case err := <-exited:
		return fmt.Errorf("exited before it listened: %w", err)
	case <-ctx.Done():
	}
	defer func() {
		c.mu.Lock()
		c.addr = ""
		c.mu.Unlock()
	}()

	select {
	case err := <-exited:
		return fmt.Errorf("pid %d: %w", cmd.Process.Pid, errOrExit(err))
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(c.grace):
		c.log.Warn("notify worker process did not stop in time; killing it", "pid", cmd.Process.Pid)
		_ = cmd.Process.Kill()
		<-exited
	}
	return nil
}

// RingWork is worker.Config.RingWork of the parent's worker: it tells the child when the parent begins and
// ends running ring-side tasks, so that the child's notification pushes give way to them. It never blocks a
// ring task: a goroutine writes the newest state to the child, and states that changed back in between are
// never written.
func (c *Supervisor) RingWork(busy bool) {
	c.ringBusy.Store(busy)
	select {
	case c.ringChanged <- struct{}{}:
	default: // a wake-up is pending; it will read the newest state
	}
}

// tellRingWork writes the parent's ring work to the child on w until the returned stop is called, which closes
// w (the child then stops giving way) and waits for the writer to end.
func (c *Supervisor) tellRingWork(w *os.File) (stop func()) {
	quit, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		told := false // what the child starts from
		for {
			if busy := c.ringBusy.Load(); busy != told {
				state := []byte{ringIdle}
				if busy {
					state[0] = ringBusy
				}
				if _, err := w.Write(state); err != nil {
					return // the child is gone, or stop closed w
				}
				told = busy
			}
			select {
			case <-c.ringChanged:
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		w.Close() // ends a write blocked on a child that stopped reading
		<-ended
	}
}

func errOrExit(err error) error {
	if err == nil {
		return errors.New("exited")
	}
	return err
}

// Ready fails while a child that died is being restarted. Until the first child listens the worker counts as
// ready: notifications wait in their queue for a moment, and a niced child's start must not hold up an API
// process beside it.
func (c *Supervisor) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return errors.New("notify worker process is down; restarting it")
	}
	return nil
}

func (c *Supervisor) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Gather makes the child's series part of the parent's /metrics (prometheus.Gatherer). A child that is down
// or restarting contributes nothing and an error, which the handler logs.
func (c *Supervisor) Gather() ([]*dto.MetricFamily, error) {
	addr := c.current()
	if addr == "" {
		return nil, errors.New("notify worker process is not running")
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("notify worker process metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("notify worker process metrics: %s", res.Status)
	}
	dec := expfmt.NewDecoder(res.Body, expfmt.ResponseFormat(res.Header))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("notify worker process metrics: %w", err)
		}
		out = append(out, mf)
	}
}

var _ prometheus.Gatherer = (*Supervisor)(nil)

// The child's half of the protocol: ReportAddr and UntilParentGone.

// ReportAddr writes the child's ops address to fd 3, which the parent reads.
func ReportAddr(addr string) error {
	f := os.NewFile(3, "parent")
	if f == nil {
		return errors.New("notify child: no fd 3 to report on; this command is run by `ringer worker`")
	}
	defer f.Close()
	_, err := fmt.Fprintln(f, addr)
	return err
}

// ParentRingWork returns the parent's ring work as the parent reports it (Supervisor.RingWork): true while
// the parent runs ring-side tasks. It closes when the parent is gone; getenv saying no descriptor was passed
// gives nil (a worker not started by a supervisor has no parent to give way to).
func ParentRingWork(getenv func(string) string) (<-chan bool, error) {
	v := getenv(ringWorkFD)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("notify child: %s=%q is not a descriptor", ringWorkFD, v)
	}
	f := os.NewFile(uintptr(fd), "parent ring work")
	out := make(chan bool)
	go func() {
		defer f.Close()
		defer close(out)
		buf := make([]byte, 64)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				// Only the newest state counts; the ones before it in the same read are already over.
				out <- buf[n-1] == ringBusy
			}
			if err != nil {
				return
			}
		}
	}()
	return out, nil
}

// UntilParentGone returns a context that ends with ctx or when stdin closes (the parent is gone).
func UntilParentGone(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, cancel
}
