//go:build !linux

package notifychild

import "errors"

// execReniced is Linux's only: lowering every thread of a process relies on its per-thread niceness.
func execReniced(int) error { return errors.New("lowering the notify worker's priority needs Linux") }
