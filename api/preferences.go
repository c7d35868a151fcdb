package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/wire"
)

// preferencesBody is POST /v1/push_preferences. The body replaces what is stored: a field left out takes its
// default (call_level "all", disabled_until null).
type preferencesBody struct {
	CallLevel     string  `json:"call_level"`
	DisabledUntil *string `json:"disabled_until"`
	UserID        string  `json:"user_id"`
}

func (b *preferencesBody) actingUser() string { return b.UserID }

// setPreferences is POST /v1/push_preferences: 200 with the preferences as stored.
func (s *server) setPreferences(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	var b preferencesBody
	a, err := s.decodeActing(w, r, tok, &b, true, nil)
	if err != nil {
		return err
	}
	p := devices.Preferences{CallLevel: b.CallLevel, UserID: a.UserID}
	if p.CallLevel == "" {
		p.CallLevel = devices.CallLevelAll
	}
	if b.DisabledUntil != nil {
		t, err := time.Parse(time.RFC3339, *b.DisabledUntil)
		if err != nil {
			return fieldErr(wire.CodeInvalidField, "disabled_until", "must be an RFC 3339 time like 2026-12-01T10:00:00Z or null, not %q", *b.DisabledUntil)
		}
		p.DisabledUntil = &t
	}
	if err := devices.ValidatePreferences(p); err != nil {
		return err
	}
	stored, err := s.cfg.Devices.SetPreferences(r.Context(), p)
	if err != nil {
		return fmt.Errorf("set push preferences of %s: %w", a.UserID, err)
	}
	writeJSON(w, http.StatusOK, stored)
	return nil
}

// getPreferences is GET /v1/push_preferences?user_id=.
func (s *server) getPreferences(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	return answerForUser(w, r, tok, "get push preferences", func(ctx context.Context, userID string) (any, error) {
		return s.cfg.Devices.GetPreferences(ctx, userID)
	})
}
