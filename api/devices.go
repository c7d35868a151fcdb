package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/wire"
)

// Devices is what the handlers need from the device registry (devices.Registry).
type Devices interface {
	Register(ctx context.Context, d devices.Device) (created bool, err error)
	// Get reads back a registration, so POST answers with the registry's created_at.
	Get(ctx context.Context, userID, token string) (devices.Device, error)
	List(ctx context.Context, userID string) ([]devices.Device, error)
	Delete(ctx context.Context, userID, token string) error
	// SetPreferences and GetPreferences store and read a user's push preferences.
	SetPreferences(ctx context.Context, p devices.Preferences) (devices.Preferences, error)
	GetPreferences(ctx context.Context, userID string) (devices.Preferences, error)
}

type deviceBody struct {
	ID               string `json:"id"`
	PushProvider     string `json:"push_provider"`
	VoIPToken        bool   `json:"voip_token"`
	PushProviderName string `json:"push_provider_name"`
	Locale           string `json:"locale"`
	UserID           string `json:"user_id"`
}

func (b *deviceBody) actingUser() string { return b.UserID }

type devicesResponse struct {
	Devices []devices.Device `json:"devices"`
}

// registerDevice is POST /v1/devices: 201 for a new token, 200 for one registered before (now this user's).
func (s *server) registerDevice(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	var b deviceBody
	a, err := s.decodeActing(w, r, tok, &b, true, nil)
	if err != nil {
		return err
	}
	d := devices.Device{ID: b.ID, PushProvider: b.PushProvider, VoIPToken: b.VoIPToken, PushProviderName: b.PushProviderName, Locale: b.Locale, UserID: a.UserID}
	// The registry's own rules, checked before any write so a bad device is a 400 whatever Register does.
	if err := devices.Validate(d); err != nil {
		return err
	}
	if s.cfg.ProviderName != nil && d.PushProviderName != "" {
		if err := s.cfg.ProviderName(d.PushProvider, d.PushProviderName); err != nil {
			return fieldErr(wire.CodeInvalidField, "push_provider_name", "%v", err)
		}
	}
	created, err := s.cfg.Devices.Register(r.Context(), d)
	if err != nil {
		return fmt.Errorf("register device for %s: %w", a.UserID, err)
	}
	got, err := s.cfg.Devices.Get(r.Context(), a.UserID, d.ID)
	switch {
	case errors.Is(err, devices.ErrNotFound):
		// A concurrent registration moved the token on already; ours did succeed, so answer what we stored.
		d.CreatedAt = time.Now().UTC()
		d.Locale = devices.CanonicalLocale(d.Locale)
	case err != nil:
		return fmt.Errorf("read back device of %s: %w", a.UserID, err)
	default:
		d = got
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, d)
	return nil
}

// listDevices is GET /v1/devices?user_id=.
func (s *server) listDevices(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	return answerForUser(w, r, tok, "list devices", func(ctx context.Context, userID string) (any, error) {
		ds, err := s.cfg.Devices.List(ctx, userID)
		if ds == nil {
			ds = []devices.Device{}
		}
		return devicesResponse{Devices: ds}, err
	})
}

// answerForUser answers a GET of one user's own things: it names who acts (the token's user, or for a server
// token the query's user_id, which it must name), then answers 200 with what read finds for them. what names
// the read in its error.
func answerForUser(w http.ResponseWriter, r *http.Request, tok TokenClaims, what string, read func(ctx context.Context, userID string) (any, error)) error {
	a, err := actor(tok, r.URL.Query().Get("user_id"), "user_id", true)
	if err != nil {
		return err
	}
	v, err := read(r.Context(), a.UserID)
	if err != nil {
		return fmt.Errorf("%s of %s: %w", what, a.UserID, err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// deleteDevice is DELETE /v1/devices?id=TOKEN&user_id=.
func (s *server) deleteDevice(w http.ResponseWriter, r *http.Request, tok TokenClaims) error {
	q := r.URL.Query()
	token := q.Get("id")
	if token == "" {
		return fieldErr(wire.CodeInvalidField, "id", "is required: the device token to remove")
	}
	a, err := actor(tok, q.Get("user_id"), "user_id", true)
	if err != nil {
		return err
	}
	if err := s.cfg.Devices.Delete(r.Context(), a.UserID, token); err != nil {
		return fmt.Errorf("delete device of %s: %w", a.UserID, err)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}
