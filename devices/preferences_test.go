package devices_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/devices"
)

func TestPushesAreMutedWhileCallLevelIsNoneOrBeforeTheSnoozeEnds(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Minute), now.Add(-time.Minute)
	for _, c := range []struct {
		name  string
		p     devices.Preferences
		muted bool
	}{
		{"defaults", devices.Preferences{CallLevel: devices.CallLevelAll}, false},
		{"call level none", devices.Preferences{CallLevel: devices.CallLevelNone}, true},
		{"snoozed", devices.Preferences{CallLevel: devices.CallLevelAll, DisabledUntil: &later}, true},
		{"snooze over", devices.Preferences{CallLevel: devices.CallLevelAll, DisabledUntil: &earlier}, false},
		{"snooze ends now", devices.Preferences{CallLevel: devices.CallLevelAll, DisabledUntil: &now}, false},
		{"none outlives its snooze", devices.Preferences{CallLevel: devices.CallLevelNone, DisabledUntil: &earlier}, true},
	} {
		if got := c.p.Muted(now); got != c.muted {
			t.Errorf("%s: Muted = %v, want %v", c.name, got, c.muted)
		}
	}
}

func TestAnUnknownCallLevelIsRefusedNamingIt(t *testing.T) {
	err := devices.ValidatePreferences(devices.Preferences{CallLevel: "quiet", UserID: "bob"})
	var fe *devices.FieldError
	if !errors.As(err, &fe) || fe.Field != "call_level" {
		t.Fatalf("err = %v, want a FieldError naming call_level", err)
	}
}

func TestPreferencesAreReadWithTheDevicesAndASnoozeLeavesNothingOnceOver(t *testing.T) {
	r := newRegistry(t)
	ctx := context.Background()
	register(t, r, devices.Device{ID: "bob-android", PushProvider: devices.Firebase, UserID: "bob"})

	got, err := r.GetPreferences(ctx, "bob")
	if err != nil || got.CallLevel != devices.CallLevelAll || got.DisabledUntil != nil {
		t.Fatalf("defaults: %+v, %v", got, err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	if _, err := r.SetPreferences(ctx, devices.Preferences{CallLevel: devices.CallLevelNone, DisabledUntil: &until, UserID: "bob"}); err != nil {
		t.Fatal(err)
	}
	ds, prefs, err := r.Targets(ctx, "bob")
	if err != nil || len(ds) != 1 || prefs.CallLevel != devices.CallLevelNone || !prefs.DisabledUntil.Equal(until) {
		t.Fatalf("targets: %v %+v %v", ds, prefs, err)
	}
	many, err := r.TargetsMany(ctx, []string{"bob", "carol"})
	if err != nil || many["carol"].Preferences.CallLevel != devices.CallLevelAll || len(many["bob"].Devices) != 1 {
		t.Fatalf("targets of many: %+v %v", many, err)
	}

	past := time.Now().Add(-time.Second)
	stored, err := r.SetPreferences(ctx, devices.Preferences{CallLevel: devices.CallLevelAll, DisabledUntil: &past, UserID: "bob"})
	if err != nil || stored.DisabledUntil != nil {
		t.Fatalf("a passed snooze is stored as %+v, %v; want the defaults", stored, err)
	}
	if got, err := r.GetPreferences(ctx, "bob"); err != nil || got.DisabledUntil != nil || got.CallLevel != devices.CallLevelAll {
		t.Fatalf("after a passed snooze: %+v, %v", got, err)
	}
}
