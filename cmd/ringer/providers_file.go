package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/providers/registry"
)

// providerVars are the variables that define the one firebase and one apn provider without a providers file.
var providerVars = []string{"FCM_CREDENTIALS_FILE", "FCM_ENDPOINT", "APNS_KEY_FILE", "APNS_KEY_ID", "APNS_TEAM_ID",
	"APNS_TOPIC", "APNS_ENVIRONMENT", "APNS_ENDPOINT"}

// providerSpecs is the named providers: RINGER_PROVIDERS_FILE's, or the FCM_* and APNS_* variables' as the
// providers "firebase" and "apn". Both at once is refused: which one wins would be a guess.
func providerSpecs(getenv func(string) string, c config) ([]registry.Spec, error) {
	if c.ProvidersFile == "" {
		var specs []registry.Spec
		if c.fcmConfigured() {
			specs = append(specs, registry.Spec{Name: providers.Firebase, Type: providers.Firebase, Default: true,
				CredentialsFile: c.FCMCredentialsFile, Endpoint: c.FCMEndpoint})
		}
		if c.apnsConfigured() {
			specs = append(specs, registry.Spec{Name: providers.APN, Type: providers.APN, Default: true,
				KeyFile: c.APNsKeyFile, KeyID: c.APNsKeyID, TeamID: c.APNsTeamID, Topic: c.APNsTopic,
				Environment: c.APNsEnvironment, Endpoint: c.APNsEndpoint})
		}
		return specs, nil
	}
	var set []string
	for _, v := range providerVars {
		if getenv(v) != "" {
			set = append(set, v)
		}
	}
	if len(set) > 0 {
		return nil, fmt.Errorf("RINGER_PROVIDERS_FILE and %s are both set: define the providers in the file alone", strings.Join(set, ", "))
	}
	return registry.ReadFile(c.ProvidersFile)
}

// providerSet builds the configured providers; a type with none logs its pushes instead.
func providerSet(ctx context.Context, cfg config, log *slog.Logger) (*registry.Set, error) {
	set, err := registry.Build(ctx, cfg.Providers, log)
	var be *registry.BuildError
	switch {
	case err == nil:
	case cfg.ProvidersFile != "":
		return nil, fmt.Errorf("RINGER_PROVIDERS_FILE %s: %w", cfg.ProvidersFile, err)
	case errors.As(err, &be) && be.Spec.Type == providers.APN:
		return nil, fmt.Errorf("APNS_KEY_FILE: %w", be.Err)
	case errors.As(err, &be):
		return nil, fmt.Errorf("FCM_CREDENTIALS_FILE: %w", be.Err)
	default:
		return nil, err
	}
	for _, p := range set.Providers() {
		log.Info("provider configured", "provider", p.Type, "provider_name", p.Name, "default", p.Default, "endpoint", p.Endpoint)
	}
	return set, nil
}
