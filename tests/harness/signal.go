package harness

import "syscall"

var (
	sigterm = syscall.SIGTERM
	sigquit = syscall.SIGQUIT
)
