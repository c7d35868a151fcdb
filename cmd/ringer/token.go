package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ringer-dev/ringer/api"
	"github.com/ringer-dev/ringer/logwriter"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/providers/logsink"
	"github.com/ringer-dev/ringer/queue"
)

// runToken prints a JWT signed with RINGER_API_SECRET (or --secret).
func runToken(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	user := fs.String("user", "", "user id the token acts as")
	name := fs.String("name", "", "display name")
	image := fs.String("image", "", "image URL")
	role := fs.String("role", "user", "user or admin")
	teams := fs.String("teams", "", "comma-separated teams")
	server := fs.Bool("server", false, "a server token, acting for any user it names")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime (the exp claim); 0 for none, server tokens only")
	// The default stays empty and the environment is read after parsing: a flag's default is printed by
	// --help and by every flag error, and the secret must never be.
	secret := fs.String("secret", "", "signing secret (default: the value of RINGER_API_SECRET)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	from := "--secret"
	if *secret == "" {
		from, *secret = "RINGER_API_SECRET", getenv("RINGER_API_SECRET")
	}
	if *secret == "" {
		return errors.New("RINGER_API_SECRET is not set (or pass --secret)")
	}
	if err := checkSecret(from, *secret); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if *server == (*user != "") {
		return errors.New("token: give exactly one of --user ID or --server")
	}
	if *role != "user" && *role != "admin" {
		return fmt.Errorf("token: --role %q is neither user nor admin", *role)
	}
	c := api.TokenClaims{UserID: *user, Name: *name, Image: *image, Role: *role, Server: *server}
	if *server {
		c.Role = ""
	}
	if *teams != "" {
		c.Teams = strings.Split(*teams, ",")
	}
	tok, err := api.MintToken([]byte(*secret), c, *ttl)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// runPush sends one push to one device through the configured provider and prints the provider's answer,
// so a team can check its credentials in one line.
func runPush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	token := fs.String("token", "", "device token")
	provider := fs.String("provider", "", "firebase or apn (the type's default provider); optional with --provider-name")
	providerName := fs.String("provider-name", "", "a provider's name in RINGER_PROVIDERS_FILE (or firebase, apn for the FCM_*, APNS_* variables)")
	voip := fs.Bool("voip", false, "the token is an APNs VoIP token")
	pushType := fs.String("type", queue.EventRing, "push type: call.ring, call.notification, call.missed or call.ended")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" || (*providerName == "" && *provider != providers.Firebase && *provider != providers.APN) {
		return errors.New("push: --token and one of --provider firebase|apn or --provider-name NAME are required")
	}
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	// Unbuffered: a person runs this once and reads each line as it comes.
	log := newLogger("text", slog.LevelInfo, logwriter.New(stderr, 0))
	provs, err := providerSet(ctx, cfg, log)
	if err != nil {
		return err
	}
	typ := *provider
	if typ == "" {
		// The name alone picks the provider; its type is the file's.
		for _, p := range provs.Providers() {
			if p.Name == *providerName {
				typ = p.Type
			}
		}
	}
	p0, err := provs.Lookup(typ, *providerName)
	if err != nil || p0 == nil {
		return fmt.Errorf("push: --provider-name %q: %w", *providerName, err)
	}
	s := p0.Sender
	p := providers.Push{Token: *token, VoIP: *voip, Data: map[string]string{
		"sender": "ringer", "type": *pushType, "call_cid": "default:ringer-test", "call_type": "default", "call_id": "ringer-test",
		"call_display_name": "ringer test", "created_by_id": "ringer", "created_by_display_name": "ringer",
		"receiver_id": "test", "ring_id": "test", "video": "false",
	}}
	switch *pushType {
	case queue.EventRing:
		p.Kind, p.Expires, p.Title, p.Body = providers.KindRing, time.Now().Add(30*time.Second), "ringer test", "Incoming test call"
	case queue.EventNotification, queue.EventMissed:
		p.Kind, p.Title, p.Body = providers.KindAlert, "ringer test", "A test notification from ringer"
	default:
		p.Kind = providers.KindStop
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res := s.Send(ctx, p)
	if _, logged := s.(*logsink.Sink); logged {
		// The log sink says "sent" to keep `ringer dev` working; here that would tell someone their
		// credentials work when none were read.
		fmt.Fprintf(stdout, "not sent: no %s credentials are configured, so the push was only logged\n", *provider)
		return fmt.Errorf("push: no %s credentials (%s): nothing was sent", *provider, credentialVars(*provider))
	}
	fmt.Fprintf(stdout, "verdict=%s reason=%q id=%q", res.Verdict, res.Reason, res.ID)
	if res.Err != nil {
		fmt.Fprintf(stdout, " err=%q", res.Err.Error())
	}
	fmt.Fprintln(stdout)
	if res.Verdict != providers.Sent {
		return fmt.Errorf("push: %s", res.Verdict)
	}
	return nil
}

// credentialVars names the variables that configure provider's credentials.
func credentialVars(provider string) string {
	if provider == providers.APN {
		return "set APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC"
	}
	return "set FCM_CREDENTIALS_FILE"
}
