package worker

import (
	"slices"
	"testing"

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

// routeCase is one row of a routing table: a member's devices, the tokens its ring reached (for stops), and
// the routes wanted, as routesOf spells them.
type routeCase struct {
	name    string
	devs    []devices.Device
	reached []string
	want    []string
}

// checkRoutes runs the rows of a routing table through routes.
func checkRoutes(t *testing.T, cases []routeCase, routes func(devs []devices.Device, reached map[string]bool) []route) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reached := map[string]bool{}
			for _, tok := range tc.reached {
				reached[tok] = true
			}
			if got := routesOf(routes(tc.devs, reached)); !slices.Equal(got, tc.want) {
				t.Errorf("routes = %v, want %v", got, tc.want)
			}
		})
	}
}

// API.md, "Which device gets what", the ring row.
func TestARingIsDataOnFCMVoIPOnVoIPTokensAndAnAlertOnRegularAPNsTokensOnlyWithoutAVoIPToken(t *testing.T) {
	checkRoutes(t, []routeCase{
		{name: "no device"},
		{"fcm only", []devices.Device{fcmDev, fcmDev2}, nil, []string{"fcm-1:data", "fcm-2:data"}},
		{"regular apns without voip rings as an alert", []devices.Device{apnDev, fcmDev}, nil, []string{"apn-1:alert-ring", "fcm-1:data"}},
		{"a voip token takes the ring from regular apns tokens", []devices.Device{apnDev, voipDev, apnDev2}, nil, []string{"voip-1:voip"}},
		{"every kind", []devices.Device{fcmDev, apnDev, voipDev}, nil, []string{"fcm-1:data", "voip-1:voip"}},
	}, func(devs []devices.Device, _ map[string]bool) []route { return ringRoutes(devs) })
}

// API.md, "Which device gets what", the stop row, and "Stop pushes go only to members who were rung".
func TestAStopGoesToDevicesThatRangAndToRegularAPNsTokensWhenAVoIPTokenRangNeverToVoIP(t *testing.T) {
	all := []devices.Device{fcmDev, fcmDev2, apnDev, apnDev2, voipDev}
	checkRoutes(t, []routeCase{
		{"nothing rang", all, nil, nil},
		{"only the fcm token that rang", all, []string{"fcm-2"}, []string{"fcm-2:stop"}},
		{"a voip ring is stopped through every regular apns token", all, []string{"voip-1", "fcm-1"}, []string{"fcm-1:stop", "apn-1:stop", "apn-2:stop"}},
		{"an alert ring on regular apns is stopped there", []devices.Device{apnDev, apnDev2}, []string{"apn-2"}, []string{"apn-2:stop"}},
		{"a voip token that rang alone gets no stop itself", []devices.Device{voipDev}, []string{"voip-1"}, nil},
		{"a device registered after the ring is not stopped", []devices.Device{fcmDev2}, []string{"fcm-1"}, nil},
	}, stopRoutes)
}

// API.md, "Which device gets what", the notify / missed / reminder row: never to a VoIP token.
func TestAnAlertGoesToEveryDeviceButVoIPTokens(t *testing.T) {
	checkRoutes(t, []routeCase{
		{name: "no device"},
		{"voip only", []devices.Device{voipDev}, nil, nil},
		{"every kind", []devices.Device{fcmDev, voipDev, apnDev}, nil, []string{"fcm-1:alert", "apn-1:alert"}},
	}, func(devs []devices.Device, _ map[string]bool) []route { return alertRoutes(devs) })
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
