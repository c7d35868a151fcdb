package api

import (
	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
)

// The real store and registry are what cmd/ringer wires into Config: a change to either's method set that
// breaks the handlers' needs fails here, beside the interfaces, rather than in the wiring.
var (
	_ Calls   = (*calls.Store)(nil)
	_ Devices = (*devices.Registry)(nil)
)
