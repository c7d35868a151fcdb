package worker

import (
	"slices"
	"time"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/providers"
)

// Which device of a member gets which push is the contract's table (API.md, "Which device gets what"). It is
// worked out here by pure functions of the member's devices, so that the table has a table test of its own
// (targets_test.go) and the handlers only ask.

// form is the shape one push takes on one device.
type form int

const (
	// ringData is a ring as a data-only message: FCM tokens.
	ringData form = iota
	// ringVoIP is a ring as a VoIP push: APNs VoIP tokens.
	ringVoIP
	// ringAlert is a ring as a time-sensitive alert with the templates' text: the regular APNs tokens of a
	// member with no VoIP token.
	ringAlert
	// silentStop tells a device that rang to stop: FCM data-only, APNs background.
	silentStop
	// alert is a notification, missed-call or reminder push with the templates' text.
	alert
)

// kind is the wire shape of a push of form f.
func (f form) kind() providers.Kind {
	switch f {
	case silentStop:
		return providers.KindStop
	case alert:
		return providers.KindAlert
	}
	return providers.KindRing
}

// texted says whether a push of form f carries the templates' title and body.
func (f form) texted() bool { return f == ringAlert || f == alert }

// route is one push to make: a device and the form its push takes there.
type route struct {
	dev  devices.Device
	form form
}

// ringRoutes are the ring pushes of a member's devices: FCM tokens a data message, VoIP tokens a VoIP push,
// regular APNs tokens an alert only when the member has no VoIP token (its VoIP push shows the call).
func ringRoutes(devs []devices.Device) []route {
	hasVoIP := slices.ContainsFunc(devs, func(d devices.Device) bool { return d.PushProvider == providers.APN && d.VoIPToken })
	var routes []route
	for _, d := range devs {
		switch {
		case d.PushProvider == providers.Firebase:
			routes = append(routes, route{d, ringData})
		case d.VoIPToken:
			routes = append(routes, route{d, ringVoIP})
		case !hasVoIP:
			routes = append(routes, route{d, ringAlert})
		}
	}
	return routes
}

// stopRoutes are the silent stops of a ring to a member whose ring reached the devices in reached (the ring
// ledger): each device that rang, and, when a VoIP token rang, every regular APNs token of the member, since
// a VoIP push must show a call and so cannot be the stop. VoIP tokens get none.
func stopRoutes(devs []devices.Device, reached map[string]bool) []route {
	voipRang := slices.ContainsFunc(devs, func(d devices.Device) bool { return d.VoIPToken && reached[d.ID] })
	var routes []route
	for _, d := range devs {
		switch {
		case d.VoIPToken:
			continue
		case reached[d.ID], d.PushProvider == providers.APN && voipRang:
			routes = append(routes, route{d, silentStop})
		}
	}
	return routes
}

// alertRoutes are the notification, missed-call or reminder pushes of a member's devices: every device that
// shows alerts, rung or not, which is every device but VoIP tokens (a VoIP push must show a call).
func alertRoutes(devs []devices.Device) []route {
	var routes []route
	for _, d := range devs {
		if !d.VoIPToken {
			routes = append(routes, route{d, alert})
		}
	}
	return routes
}

// muteReason says whether a member's push preferences withhold its ring, notification, missed-call and
// reminder pushes at now, and why, as the log line gives it. Stop pushes are never withheld.
func muteReason(prefs devices.Preferences, now time.Time) (reason string, muted bool) {
	switch {
	case !prefs.Muted(now):
		return "", false
	case prefs.CallLevel == devices.CallLevelNone:
		return "call_level none", true
	}
	return "disabled_until " + prefs.DisabledUntil.Format(time.RFC3339), true
}
