package templates_test

import (
	"strings"
	"testing"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
)

func TestAGermanDeviceGetsGermanTextForEveryEventAndPlatform(t *testing.T) {
	s := load(t, "")
	d := templates.Data{CallerID: "alice", CallerName: "Alice", CallDisplayName: "Standup", Locale: "de"}
	want := map[string]templates.Rendered{
		queue.EventRing:         {"Eingehender Anruf von Alice", "Standup"},
		queue.EventNotification: {"Alice hat einen Anruf gestartet", "Standup beitreten"},
		queue.EventMissed:       {"Verpasster Anruf von Alice", "Standup · Audioanruf"},
	}
	wantEverywhere(t, s, d, want)
}

func TestALocaleFallsBackToItsLanguageThenToEnglish(t *testing.T) {
	s := load(t, "")
	for locale, title := range map[string]string{
		"de-AT":      "Verpasster Anruf von Alice", // region: its language
		"de_at":      "Verpasster Anruf von Alice", // as Android spells it
		"de-Latn-CH": "Verpasster Anruf von Alice",
		"fr-FR":      "Missed call from Alice", // no French: the default
		"xx-YY":      "Missed call from Alice", // well formed, unknown
		"":           "Missed call from Alice",
	} {
		got := render(t, s, queue.EventMissed, providers.APN, templates.Data{CallerName: "Alice", Locale: locale})
		if got.Title != title {
			t.Errorf("locale %q: title %q, want %q", locale, got.Title, title)
		}
	}
}

func TestALocaleOverrideWinsOverItsLanguageAndAddsNewLocales(t *testing.T) {
	s := load(t, overrideDir(t, map[string]string{
		"call.missed.apn.de-at.title.tmpl": "Verpasst: {{.CallerName}}", // canonicalized to de-AT
		"call.missed.apn.de-AT.body.tmpl":  "Servus",
		"call.missed.apn.fr.title.tmpl":    "Appel manqué de {{.CallerName}}",
		"call.missed.apn.fr.body.tmpl":     "Appel audio",
	}))
	for locale, want := range map[string]templates.Rendered{
		"de-AT": {"Verpasst: Alice", "Servus"},
		"de":    {"Verpasster Anruf von Alice", "Audioanruf"},
		"fr-CA": {"Appel manqué de Alice", "Appel audio"},
	} {
		if got := render(t, s, queue.EventMissed, providers.APN, templates.Data{CallerName: "Alice", Locale: locale}); got != want {
			t.Errorf("locale %s = %+v, want %+v", locale, got, want)
		}
	}
	if got := render(t, s, queue.EventMissed, providers.Firebase, templates.Data{CallerName: "Alice", Locale: "fr"}); got.Title != "Missed call from Alice" {
		t.Errorf("fr on firebase = %q, want the default: the override is for apn only", got.Title)
	}
}

func TestLoadFailsOnALocaleWithATitleButNoBody(t *testing.T) {
	dir := overrideDir(t, map[string]string{"call.missed.apn.fr.title.tmpl": "Appel manqué"})
	_, err := templates.Load(dir)
	if err == nil || !strings.Contains(err.Error(), "call.missed.apn.fr.body.tmpl") {
		t.Errorf("Load = %v, want an error naming the missing body", err)
	}
}

func TestLoadFailsOnAMalformedLocaleInAFileName(t *testing.T) {
	for _, name := range []string{
		"call.missed.apn.not_a_locale.title.tmpl",
		"call.missed.apn.de_AT.title.tmpl", // BCP 47 spells it with '-'
		"call.missed.apn.zz.title.tmpl",    // unknown language
		"call.missed.de.title.tmpl",        // locale without platform
	} {
		if _, err := templates.Load(overrideDir(t, map[string]string{name: "x"})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Load(%s) = %v, want an error naming it", name, err)
		}
	}
}

func TestTheReminderHasEnglishAndGermanTextOnEveryPlatform(t *testing.T) {
	s := load(t, "")
	d := templates.Data{CallerID: "alice", CallerName: "Alice", CallDisplayName: "Standup"}
	for locale, want := range map[string]templates.Rendered{
		"":      {"Standup starts soon", "Audio call with Alice: tap to join"},
		"de-DE": {"Standup beginnt gleich", "Audioanruf mit Alice: zum Beitreten tippen"},
	} {
		d.Locale = locale
		wantEverywhere(t, s, d, map[string]templates.Rendered{queue.EventReminder: want})
	}
}
