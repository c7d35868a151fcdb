package registry

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
)

func TestEachNamedProviderSendsThroughItsOwnEndpointAndCredentials(t *testing.T) {
	// Plain http:// fakes: Build trusts the system roots, not a test CA; the TLS path is providers/fcm's to test.
	prod, staging, ios := plainFCM(t), plainFCM(t), fakeapns.Start(t)
	key, keyID, team := ios.WriteKey(t.TempDir())
	set, err := Build(context.Background(), []Spec{
		{Name: "android", Type: providers.Firebase, Default: true, CredentialsFile: prod.WriteCredentials(t.TempDir()), Endpoint: prod.Endpoint},
		{Name: "android-staging", Type: providers.Firebase, CredentialsFile: staging.WriteCredentials(t.TempDir()), Endpoint: staging.Endpoint},
		{Name: "ios", Type: providers.APN, KeyFile: key, KeyID: keyID, TeamID: team, Topic: "com.example.app", Environment: "development", Endpoint: ios.URL},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	push := providers.Push{Kind: providers.KindAlert, Title: "t", Body: "b", Data: map[string]string{"type": "call.notification"}}
	for _, c := range []struct{ name, token string }{{"", "to-default"}, {"android-staging", "to-staging"}} {
		name, s, err := set.Pick(providers.Firebase, c.name)
		if err != nil {
			t.Fatalf("pick %q: %v", c.name, err)
		}
		p := push
		p.Token = c.token
		if res := s.Send(ctx, p); res.Verdict != providers.Sent {
			t.Fatalf("send through %s: %v %s %v", name, res.Verdict, res.Reason, res.Err)
		}
	}
	if len(prod.MessagesTo("to-default")) != 1 || prod.Count() != 1 || len(staging.MessagesTo("to-staging")) != 1 || staging.Count() != 1 {
		t.Errorf("android got %d, android-staging %d: each must get only its own push", prod.Count(), staging.Count())
	}
	// The only apn provider is the apn default, though not marked.
	if p := set.Default(providers.APN); p == nil || p.Name != "ios" {
		t.Errorf("apn default = %+v, want ios", p)
	}
	if _, _, err := set.Pick(providers.APN, "android"); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "is a firebase provider") {
		t.Errorf("an apn device naming a firebase provider: %v", err)
	}
	if _, _, err := set.Pick(providers.Firebase, "gone"); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "android, android-staging") {
		t.Errorf("a removed provider: %v, want ErrUnknown listing the firebase providers", err)
	}
}

func TestCheckNamesEachProviderWhoseCredentialsFail(t *testing.T) {
	good, bad := plainFCM(t), plainFCM(t)
	set, err := Build(context.Background(), []Spec{
		{Name: "android", Type: providers.Firebase, Default: true, CredentialsFile: good.WriteCredentials(t.TempDir()), Endpoint: good.Endpoint},
		{Name: "android-staging", Type: providers.Firebase, CredentialsFile: bad.WriteCredentials(t.TempDir()), Endpoint: bad.Endpoint},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	bad.FailTokenEndpoint(401)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = set.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "provider android-staging (firebase)") || strings.Contains(err.Error(), "provider android (") {
		t.Errorf("Check with android-staging's credentials failing: %v, want it alone named", err)
	}
	if good.TokenRequests() == 0 {
		t.Errorf("Check did not ask android's token endpoint")
	}
}

func plainFCM(t *testing.T) *fakefcm.Server {
	return fakefcm.StartWith(t, fakefcm.Options{Plain: true})
}
