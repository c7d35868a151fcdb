package worker

import (
	"slices"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/providers"
)

var (
	fcmDev  = devices.Device{ID: "fcm-1", UserID: "bob", PushProvider: devices.Firebase}
	fcmDev2 = devices.Device{ID: "fcm-2", UserID: "bob", PushProvider: devices.Firebase}
	apnDev  = devices.Device{ID: "apn-1", UserID: "bob", PushProvider: devices.APN}
	apnDev2 = devices.Device{ID: "apn-2", UserID: "bob", PushProvider: devices.APN}
	voipDev = devices.Device{ID: "voip-1", UserID: "bob", PushProvider: devices.APN, VoIPToken: true}
)

// routesOf spells routes as "token:form" for a readable comparison.
func routesOf(routes []route) []string {
	names := map[form]string{ringData: "data", ringVoIP: "voip", ringAlert: "alert-ring", silentStop: "stop", alert: "alert"}
	var out []string
	for _, r := range routes {
		out = append(out, r.dev.ID+":"+names[r.form])
	}
	return out
}

// API.md, "Which device gets what", the ring row.
func TestARingIsDataOnFCMVoIPOnVoIPTokensAndAnAlertOnRegularAPNsTokensOnlyWithoutAVoIPToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		devs []devices.Device
		want []string
	}{
		{"no device", nil, nil},
		{"fcm only", []devices.Device{fcmDev, fcmDev2}, []string{"fcm-1:data", "fcm-2:data"}},
		{"regular apns without voip rings as an alert", []devices.Device{apnDev, fcmDev}, []string{"apn-1:alert-ring", "fcm-1:data"}},
		{"a voip token takes the ring from regular apns tokens", []devices.Device{apnDev, voipDev, apnDev2}, []string{"voip-1:voip"}},
		{"every kind", []devices.Device{fcmDev, apnDev, voipDev}, []string{"fcm-1:data", "voip-1:voip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := routesOf(ringRoutes(tc.devs)); !slices.Equal(got, tc.want) {
				t.Errorf("ring routes = %v, want %v", got, tc.want)
			}
		})
	}
}

// API.md, "Which device gets what", the stop row, and "Stop pushes go only to members who were rung".
func TestAStopGoesToDevicesThatRangAndToRegularAPNsTokensWhenAVoIPTokenRangNeverToVoIP(t *testing.T) {
	all := []devices.Device{fcmDev, fcmDev2, apnDev, apnDev2, voipDev}
	for _, tc := range []struct {
		name    string
		devs    []devices.Device
		reached []string
		want    []string
	}{
		{"nothing rang", all, nil, nil},
		{"only the fcm token that rang", all, []string{"fcm-2"}, []string{"fcm-2:stop"}},
		{"a voip ring is stopped through every regular apns token", all, []string{"voip-1", "fcm-1"}, []string{"fcm-1:stop", "apn-1:stop", "apn-2:stop"}},
		{"an alert ring on regular apns is stopped there", []devices.Device{apnDev, apnDev2}, []string{"apn-2"}, []string{"apn-2:stop"}},
		{"a voip token that rang alone gets no stop itself", []devices.Device{voipDev}, []string{"voip-1"}, nil},
		{"a device registered after the ring is not stopped", []devices.Device{fcmDev2}, []string{"fcm-1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reached := map[string]bool{}
			for _, tok := range tc.reached {
				reached[tok] = true
			}
			if got := routesOf(stopRoutes(tc.devs, reached)); !slices.Equal(got, tc.want) {
				t.Errorf("stop routes = %v, want %v", got, tc.want)
			}
		})
	}
}

// API.md, "Which device gets what", the notify / missed / reminder row: never to a VoIP token.
func TestAnAlertGoesToEveryDeviceButVoIPTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		devs []devices.Device
		want []string
	}{
		{"no device", nil, nil},
		{"voip only", []devices.Device{voipDev}, nil},
		{"every kind", []devices.Device{fcmDev, voipDev, apnDev}, []string{"fcm-1:alert", "apn-1:alert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := routesOf(alertRoutes(tc.devs)); !slices.Equal(got, tc.want) {
				t.Errorf("alert routes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEachFormHasItsWireKindAndOnlyAlertsCarryText(t *testing.T) {
	for _, tc := range []struct {
		form   form
		kind   providers.Kind
		texted bool
	}{
		{ringData, providers.KindRing, false},
		{ringVoIP, providers.KindRing, false},
		{ringAlert, providers.KindRing, true},
		{silentStop, providers.KindStop, false},
		{alert, providers.KindAlert, true},
	} {
		if got := tc.form.kind(); got != tc.kind {
			t.Errorf("form %d: kind %v, want %v", tc.form, got, tc.kind)
		}
		if got := tc.form.texted(); got != tc.texted {
			t.Errorf("form %d: texted %v, want %v", tc.form, got, tc.texted)
		}
	}
}

// API.md, "Push preferences": call_level none, or a snooze still ahead, withholds pushes; a snooze past does not.
func TestPushesAreWithheldForCallLevelNoneOrASnoozeStillAhead(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ahead, past := now.Add(time.Hour), now.Add(-time.Second)
	for _, tc := range []struct {
		name   string
		prefs  devices.Preferences
		reason string
		muted  bool
	}{
		{"default", devices.Preferences{CallLevel: devices.CallLevelAll}, "", false},
		{"snooze past", devices.Preferences{CallLevel: devices.CallLevelAll, DisabledUntil: &past}, "", false},
		{"snooze ahead", devices.Preferences{CallLevel: devices.CallLevelAll, DisabledUntil: &ahead}, "disabled_until 2026-12-06T13:00:00Z", true},
		{"call level none", devices.Preferences{CallLevel: devices.CallLevelNone}, "call_level none", true},
		{"call level none and a snooze", devices.Preferences{CallLevel: devices.CallLevelNone, DisabledUntil: &ahead}, "call_level none", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, muted := muteReason(tc.prefs, now)
			if reason != tc.reason || muted != tc.muted {
				t.Errorf("muteReason = %q, %v; want %q, %v", reason, muted, tc.reason, tc.muted)
			}
		})
	}
}
