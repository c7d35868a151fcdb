//go:build !linux

package main

import "os/exec"

// startNiced starts cmd at this process's priority: lowering one child's needs Linux's per-thread niceness.
func startNiced(cmd *exec.Cmd, _ int) error { return cmd.Start() }
