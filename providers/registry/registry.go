// Package registry is ringer's set of named push providers (RINGER_PROVIDERS_FILE, or the FCM_* and APNS_*
// variables as one provider of each type): it builds a sender per provider, each with its own credentials,
// endpoint, connections and tokens, and picks a device's sender by (type, name) — the device's push_provider
// and push_provider_name (API.md, "Devices").
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/providers/apns"
	"github.com/ringer-dev/ringer/providers/fcm"
	"github.com/ringer-dev/ringer/providers/logsink"
)

// Sender is a provider as the registry holds it: it sends, and it can say whether its credentials work.
type Sender interface {
	providers.Sender
	Check(ctx context.Context) error
}

// Provider is one named provider and its sender.
type Provider struct {
	Spec
	Sender Sender
	// Logged is the log sink standing in for a type that has no provider configured: it has no name a
	// device may pick and nothing to check.
	Logged bool
}

// Set is the providers of one process. It is read-only once built and safe for concurrent use.
type Set struct {
	byName   map[string]*Provider
	defaults map[string]*Provider // by type; the log sink when the type has no provider
	list     []*Provider          // configured providers, in the file's order
}

// ErrUnknown is a name no provider of the type has: not in the file (any more), or a provider of another type.
var ErrUnknown = errors.New("no such provider")

// BuildError is a provider whose sender could not be made (credentials that do not parse, a bad key).
type BuildError struct {
	Spec Spec
	Err  error
}

func (e *BuildError) Error() string { return fmt.Sprintf("provider %q: %v", e.Spec.Name, e.Err) }
func (e *BuildError) Unwrap() error { return e.Err }

// Build makes each provider's sender. A type without a provider gets the log sink, as ringer dev needs.
func Build(ctx context.Context, specs []Spec, log *slog.Logger) (*Set, error) {
	s := &Set{byName: map[string]*Provider{}, defaults: map[string]*Provider{}}
	for _, sp := range Defaulted(specs) {
		var (
			snd Sender
			err error
		)
		switch sp.Type {
		case providers.Firebase:
			snd, err = fcm.New(ctx, fcm.Config{CredentialsFile: sp.CredentialsFile, Endpoint: sp.Endpoint})
		case providers.APN:
			snd, err = apns.New(apns.Config{KeyFile: sp.KeyFile, KeyID: sp.KeyID, TeamID: sp.TeamID,
				Topic: sp.Topic, Environment: sp.Environment, Endpoint: sp.Endpoint})
		default:
			err = fmt.Errorf("type %q is neither firebase nor apn", sp.Type)
		}
		if err != nil {
			return nil, &BuildError{Spec: sp, Err: err}
		}
		p := &Provider{Spec: sp, Sender: snd}
		s.byName[sp.Name] = p
		s.list = append(s.list, p)
		if sp.Default {
			s.defaults[sp.Type] = p
		}
	}
	for _, typ := range []string{providers.Firebase, providers.APN} {
		if s.defaults[typ] != nil {
			continue
		}
		if s.count(typ) == 0 {
			log.Warn("no "+typ+" provider configured: its pushes are logged, not sent", "provider", typ)
		}
		s.defaults[typ] = &Provider{Spec: Spec{Name: typ, Type: typ}, Sender: logsink.New(log, typ), Logged: true}
	}
	return s, nil
}

func (s *Set) count(typ string) int {
	n := 0
	for _, p := range s.list {
		if p.Type == typ {
			n++
		}
	}
	return n
}

// Lookup is the provider of type typ named name; an empty name is the type's default.
func (s *Set) Lookup(typ, name string) (*Provider, error) {
	if name == "" {
		return s.defaults[typ], nil
	}
	p := s.byName[name]
	switch {
	case p == nil:
		return nil, fmt.Errorf("%w: no provider is named %q (known %s providers: %s)", ErrUnknown, name, typ, s.names(typ))
	case p.Type != typ:
		return nil, fmt.Errorf("%w: provider %q is a %s provider, not %s", ErrUnknown, name, p.Type, typ)
	}
	return p, nil
}

// Pick is Lookup as the worker uses it: the provider's name and sender.
func (s *Set) Pick(typ, name string) (string, providers.Sender, error) {
	p, err := s.Lookup(typ, name)
	if err != nil {
		return name, nil, err
	}
	return p.Name, p.Sender, nil
}

// Known says whether a device of type typ may name name (the API's check): nil for an empty name or a provider
// of that type.
func (s *Set) Known(typ, name string) error {
	_, err := s.Lookup(typ, name)
	return err
}

// Default is the type's default provider (the log sink when it has none).
func (s *Set) Default(typ string) *Provider { return s.defaults[typ] }

// Providers are the configured providers, in the file's order.
func (s *Set) Providers() []*Provider { return slices.Clone(s.list) }

// Check asks each configured provider whether its credentials work; the error names every failing one.
func (s *Set) Check(ctx context.Context) error {
	var ce CheckError
	for _, p := range s.list {
		if err := p.Sender.Check(ctx); err != nil {
			ce.Failing = append(ce.Failing, p.Name+" ("+service(p.Type)+")")
			ce.details = append(ce.details, fmt.Sprintf("provider %s (%s): %v", p.Name, p.Type, err))
		}
	}
	if len(ce.Failing) > 0 {
		return &ce
	}
	return nil
}

// service is the push service a provider type speaks to, as operators name it.
func service(typ string) string {
	if typ == providers.APN {
		return "apns"
	}
	return "fcm"
}

// CheckError is Check's answer when providers fail: Failing names them ("ios-dev (apns)") in words fit for
// anyone who asks, and Error adds each provider's own answer, which may carry addresses, for the log.
type CheckError struct {
	Failing []string
	details []string
}

func (e *CheckError) Error() string { return strings.Join(e.details, "; ") }

func (s *Set) names(typ string) string {
	var ns []string
	for _, p := range s.list {
		if p.Type == typ {
			ns = append(ns, p.Name)
		}
	}
	if len(ns) == 0 {
		return "none"
	}
	return strings.Join(ns, ", ")
}
