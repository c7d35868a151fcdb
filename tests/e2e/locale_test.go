package e2e

// Their language (API.md, "Devices" and "Push payloads"): a device's locale picks its push text, falling back
// to the locale's language, then to English.

import (
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/tests/harness"
)

// localeDevice registers token for user with a locale and returns the device as the API answered.
func localeDevice(t *testing.T, e *harness.Env, user, token, provider, locale string) map[string]any {
	t.Helper()
	r := e.MustCall(201, "POST", "/v1/devices", e.Token(user), map[string]any{"id": token, "push_provider": provider, "locale": locale})
	return r.Body
}

func TestAGermanDeviceGetsGermanTextAndAnUnknownLocaleGetsEnglish(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	if got := localeDevice(t, e, "bob", "bob-android", "firebase", "de-AT")["locale"]; got != "de-AT" {
		t.Errorf("registered locale = %v, want de-AT", got)
	}
	localeDevice(t, e, "bob", harness.APNsToken("bob-iphone"), "apn", "de")
	localeDevice(t, e, "carol", "carol-android", "firebase", "xx-YY")
	localeDevice(t, e, "carol", harness.APNsToken("carol-iphone"), "apn", "fr-FR")
	e.Android("dave")

	list := e.MustCall(200, "GET", "/v1/devices", e.Token("bob"), nil)
	for _, d := range list.Body["devices"].([]any) {
		if d := d.(map[string]any); d["locale"] != "de-AT" && d["locale"] != "de" {
			t.Errorf("listed device %v: locale %v, want the one registered", d["id"], d["locale"])
		}
	}

	e.MustCall(201, "POST", rulesPath("huddle"), e.Token("alice"), map[string]any{"notify": true, "data": map[string]any{
		"members": rulesMembers("bob", "carol", "dave"), "custom": map[string]any{"display_name": "Standup"},
	}})
	const deTitle, deBody = "Alice hat einen Anruf gestartet", "Standup beitreten"
	const enTitle, enBody = "Alice started a call", "Join Standup"
	for token, want := range map[string][2]string{"bob-android": {deTitle, deBody}, "carol-android": {enTitle, enBody}, "dave-android": {enTitle, enBody}} {
		m := rulesFCM(t, e, token, rulesNotif)[0]
		if m.Notification == nil || m.Notification.Title != want[0] || m.Notification.Body != want[1] {
			t.Errorf("%s: notification %+v, want %q / %q", token, m.Notification, want[0], want[1])
		}
	}
	for name, want := range map[string][2]string{"bob-iphone": {deTitle, deBody}, "carol-iphone": {enTitle, enBody}} {
		alert, _ := rulesAPNs(t, e, name, rulesNotif)[0].Aps()["alert"].(map[string]any)
		if alert["title"] != want[0] || alert["body"] != want[1] {
			t.Errorf("%s: aps.alert %v, want %q / %q", name, alert, want[0], want[1])
		}
	}
}

func TestAMalformedLocaleIsRefusedNamingIt(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	for _, locale := range []string{"not a locale", "de-", "123", strings.Repeat("a", 65)} {
		r := e.Call("POST", "/v1/devices", e.Token("bob"), map[string]any{"id": "bob-android", "push_provider": "firebase", "locale": locale})
		msg, _ := r.Body["message"].(string)
		if r.Status != 400 || r.Body["code"] != "invalid_field" || !strings.HasPrefix(msg, "locale") {
			t.Errorf("locale %q: %d %s, want 400 invalid_field naming locale", locale, r.Status, r.Raw)
		}
	}
}
