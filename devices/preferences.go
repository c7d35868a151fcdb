package devices

// Push preferences (API.md, "Push preferences") live here, beside the devices they govern, because the worker
// reads both for every push task: keeping them in the user's slot and in one package lets one pipeline read a
// member's devices and whether to push to them (Targets), one round trip where two packages would need two.
//
//	ringer:{u:<user>}:push_preferences  hash: call_level -> "none" (absent: "all"),
//	                                          disabled_until -> unix ms (absent: none)
//
// A user with the defaults has no key. A snooze alone (call_level all) makes the key lapse at its end, so a
// passed snooze leaves nothing behind.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Call levels of API.md's call_level: every call push, or none.
const (
	CallLevelAll  = "all"
	CallLevelNone = "none"
)

// Preferences are one user's push preferences. The zero value (after Normalize) is the default: every push.
type Preferences struct {
	CallLevel string `json:"call_level"`
	// DisabledUntil, when set and ahead, withholds the user's pushes until then (a snooze).
	DisabledUntil *time.Time `json:"disabled_until"`
	UserID        string     `json:"user_id"`
}

// Muted says whether the user's devices get no ring, notification, missed-call or reminder push at now.
func (p Preferences) Muted(now time.Time) bool {
	return p.CallLevel == CallLevelNone || (p.DisabledUntil != nil && now.Before(*p.DisabledUntil))
}

// ValidatePreferences checks preferences as a client sends them; the error is a *FieldError.
func ValidatePreferences(p Preferences) error {
	switch {
	case p.CallLevel != CallLevelAll && p.CallLevel != CallLevelNone:
		return &FieldError{"call_level", fmt.Sprintf(`must be "all" or "none", not %q`, p.CallLevel)}
	case p.UserID == "":
		return &FieldError{"user_id", "is required"}
	case !userIDPattern.MatchString(p.UserID):
		return &FieldError{"user_id", "must match ^[A-Za-z0-9@._-]{1,128}$"}
	}
	return nil
}

func preferencesKey(userID string) string { return "ringer:{u:" + userID + "}:push_preferences" }

// SetPreferences stores p for p.UserID, replacing what was stored, and returns it as stored (times to the
// millisecond, in UTC).
func (r *Registry) SetPreferences(ctx context.Context, p Preferences) (Preferences, error) {
	if err := ValidatePreferences(p); err != nil {
		return Preferences{}, fmt.Errorf("set push preferences of %s: %w", p.UserID, err)
	}
	if p.DisabledUntil != nil {
		t := time.UnixMilli(p.DisabledUntil.UnixMilli()).UTC()
		p.DisabledUntil = &t
	}
	key := preferencesKey(p.UserID)
	_, err := r.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, key)
		var fields []any
		if p.CallLevel == CallLevelNone {
			fields = append(fields, "call_level", CallLevelNone)
		}
		if p.DisabledUntil != nil {
			fields = append(fields, "disabled_until", strconv.FormatInt(p.DisabledUntil.UnixMilli(), 10))
		}
		if len(fields) == 0 {
			return nil
		}
		pipe.HSet(ctx, key, fields...)
		if p.CallLevel != CallLevelNone {
			// A snooze alone means nothing once it has passed: the key lapses with it.
			pipe.PExpireAt(ctx, key, *p.DisabledUntil)
		}
		return nil
	})
	if err != nil {
		return Preferences{}, fmt.Errorf("set push preferences of %s: %w", p.UserID, err)
	}
	if p.CallLevel != CallLevelNone && p.DisabledUntil != nil && !p.DisabledUntil.After(time.Now()) {
		// A snooze that has already passed was stored with a lifetime already over: it is the default now.
		p.DisabledUntil = nil
	}
	return p, nil
}

// GetPreferences returns a user's push preferences; a user who never set any gets the default.
func (r *Registry) GetPreferences(ctx context.Context, userID string) (Preferences, error) {
	raw, err := r.rdb.HGetAll(ctx, preferencesKey(userID)).Result()
	if err != nil {
		return Preferences{}, fmt.Errorf("get push preferences of %s: %w", userID, err)
	}
	p, err := decodePreferences(userID, raw)
	if err != nil {
		return Preferences{}, fmt.Errorf("get push preferences of %s: %w", userID, err)
	}
	return p, nil
}

func decodePreferences(userID string, raw map[string]string) (Preferences, error) {
	p := Preferences{CallLevel: CallLevelAll, UserID: userID}
	if raw["call_level"] == CallLevelNone {
		p.CallLevel = CallLevelNone
	}
	if v := raw["disabled_until"]; v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Preferences{}, fmt.Errorf("decode disabled_until %q: %w", v, err)
		}
		t := time.UnixMilli(ms).UTC()
		p.DisabledUntil = &t
	}
	return p, nil
}

// Targets returns a user's devices (as List) and push preferences in one round trip: what the worker needs
// to push to a member, and whether it may.
func (r *Registry) Targets(ctx context.Context, userID string) ([]Device, Preferences, error) {
	m, err := r.TargetsMany(ctx, []string{userID})
	if err != nil {
		return nil, Preferences{}, err
	}
	t := m[userID]
	return t.Devices, t.Preferences, nil
}

// UserTargets are one user's devices and push preferences.
type UserTargets struct {
	Devices     []Device
	Preferences Preferences
}

// TargetsMany is Targets for several users in one pipeline (on a Cluster, go-redis splits it by slot). Every
// user named is in the map, with the default preferences and no devices when it has neither.
func (r *Registry) TargetsMany(ctx context.Context, userIDs []string) (map[string]UserTargets, error) {
	out := make(map[string]UserTargets, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	devs := make([]*redis.MapStringStringCmd, len(userIDs))
	prefs := make([]*redis.MapStringStringCmd, len(userIDs))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range userIDs {
			devs[i] = p.HGetAll(ctx, devicesKey(u))
			prefs[i] = p.HGetAll(ctx, preferencesKey(u))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("push targets of %d users: %w", len(userIDs), err)
	}
	for i, u := range userIDs {
		ds, err := decodeAll(u, devs[i].Val())
		if err != nil {
			return nil, fmt.Errorf("devices of %s: %w", u, err)
		}
		p, err := decodePreferences(u, prefs[i].Val())
		if err != nil {
			return nil, fmt.Errorf("push preferences of %s: %w", u, err)
		}
		out[u] = UserTargets{Devices: ds, Preferences: p}
	}
	return out, nil
}
