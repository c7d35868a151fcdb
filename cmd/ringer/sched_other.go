//go:build !linux

package main

import "time"

// setSchedSlice is Linux's: elsewhere threads keep the system's scheduling, and the slice is not taken.
func setSchedSlice(time.Duration) (bool, error) { return false, nil }
