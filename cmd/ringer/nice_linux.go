package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// startNiced starts cmd with its niceness raised by nice. Linux keeps niceness per thread and a child
// inherits it from the thread that forks it, so the fork runs on a locked thread lowered for the purpose.
// An unprivileged process cannot raise a thread's priority back, so that thread is not unlocked: it ends
// with its goroutine, and the rest of this process keeps its priority.
func startNiced(cmd *exec.Cmd, nice int) error {
	if nice == 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		tid := syscall.Gettid()
		// The raw getpriority syscall answers 20 − niceness.
		raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
		if err != nil {
			errc <- fmt.Errorf("getpriority: %w", err)
			return
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(19, 20-raw+nice)); err != nil {
			errc <- fmt.Errorf("setpriority: %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}
