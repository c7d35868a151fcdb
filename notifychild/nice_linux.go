package notifychild

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// execReniced replaces this process with itself running nice levels lower, every thread of it. Linux keeps
// niceness per thread, and a thread that calls execve becomes the new image's only thread, keeping its own
// niceness; every thread the new image starts inherits it. So the exec runs on a locked thread lowered for the
// purpose. It returns only on failure, when that thread is left lowered and locked, to end with its goroutine.
func execReniced(nice int) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find ringer's own binary: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is lowered for good
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
		errc <- syscall.Exec(self, os.Args, append(os.Environ(), reniced+"=1"))
	}()
	return <-errc
}
