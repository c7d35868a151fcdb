package devices_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/tests/testredis"
)

func newRegistry(t *testing.T) *devices.Registry {
	t.Helper()
	return devices.New(testredis.Start(t).Client(t))
}

// prune prunes user's token as a provider's verdict does (since: when the token became invalid) and fails t
// unless the answer is wantPruned.
func prune(t *testing.T, r *devices.Registry, user, token string, since time.Time, wantPruned bool) {
	t.Helper()
	pruned, err := r.Prune(context.Background(), user, token, since)
	if err != nil || pruned != wantPruned {
		t.Errorf("prune = %v, %v; want %v, nil", pruned, err, wantPruned)
	}
}

func register(t *testing.T, r *devices.Registry, d devices.Device) bool {
	t.Helper()
	created, err := r.Register(context.Background(), d)
	if err != nil {
		t.Fatalf("register %s for %s: %v", d.ID, d.UserID, err)
	}
	return created
}

func list(t *testing.T, r *devices.Registry, user string) []devices.Device {
	t.Helper()
	ds, err := r.List(context.Background(), user)
	if err != nil {
		t.Fatalf("list %s: %v", user, err)
	}
	return ds
}

// apnTok is a well-formed APNs device token (64 hex digits) named after name.
func apnTok(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

func ids(ds []devices.Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestRegisterThenListReturnsTheDevice(t *testing.T) {
	r := newRegistry(t)
	before := time.Now().Add(-time.Second)
	d := devices.Device{ID: apnTok("tok-1"), PushProvider: "apn", VoIPToken: true, PushProviderName: "prod", UserID: "alice"}
	if !register(t, r, d) {
		t.Fatal("first registration: created = false, want true")
	}
	got := list(t, r, "alice")
	if len(got) != 1 {
		t.Fatalf("list = %+v, want one device", got)
	}
	g := got[0]
	if g.ID != d.ID || g.PushProvider != "apn" || !g.VoIPToken || g.PushProviderName != "prod" || g.UserID != "alice" {
		t.Errorf("device = %+v, want the registered fields", g)
	}
	if g.CreatedAt.Before(before) || g.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("created_at = %v, want about now", g.CreatedAt)
	}
	one, err := r.Get(context.Background(), "alice", d.ID)
	if err != nil || one != g {
		t.Errorf("get = %+v, %v; want %+v", one, err, g)
	}
	if ds := list(t, r, "bob"); len(ds) != 0 {
		t.Errorf("bob's devices = %+v, want none", ds)
	}
}

func TestALocaleIsStoredCanonical(t *testing.T) {
	r := newRegistry(t)
	for tok, locale := range map[string]string{"fcm-token-1": "de_at", "fcm-token-2": "xx-yy", "fcm-token-3": ""} {
		register(t, r, devices.Device{ID: tok, PushProvider: "firebase", Locale: locale, UserID: "alice"})
	}
	got := map[string]string{}
	for _, d := range list(t, r, "alice") {
		got[d.ID] = d.Locale
	}
	want := map[string]string{"fcm-token-1": "de-AT", "fcm-token-2": "xx-yy", "fcm-token-3": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("locales = %v, want %v (known tags canonical, unknown ones as given)", got, want)
	}
}

func TestRegisteringAgainIsNotCreatedAndUpdatesTheRegistrationTime(t *testing.T) {
	r := newRegistry(t)
	d := devices.Device{ID: "fcm-tok-1", PushProvider: "firebase", UserID: "alice"}
	register(t, r, d)
	first := list(t, r, "alice")[0]
	d.PushProviderName = "renamed"
	if register(t, r, d) {
		t.Error("second registration: created = true, want false")
	}
	got := list(t, r, "alice")
	if len(got) != 1 {
		t.Fatalf("list = %+v, want one device", got)
	}
	if !got[0].CreatedAt.After(first.CreatedAt) {
		t.Errorf("created_at after re-registration = %v, want after %v", got[0].CreatedAt, first.CreatedAt)
	}
	if got[0].PushProviderName != "renamed" {
		t.Errorf("push_provider_name = %q, want the new one", got[0].PushProviderName)
	}
}

func TestRegisteringAnotherUsersTokenMovesIt(t *testing.T) {
	r := newRegistry(t)
	shared, aliceOnly := apnTok("shared"), apnTok("alice-only")
	register(t, r, devices.Device{ID: shared, PushProvider: "apn", UserID: "alice"})
	register(t, r, devices.Device{ID: aliceOnly, PushProvider: "apn", UserID: "alice"})
	if register(t, r, devices.Device{ID: shared, PushProvider: "apn", UserID: "bob"}) {
		t.Error("moving a token: created = true, want false")
	}
	if got := ids(list(t, r, "alice")); strings.Join(got, ",") != aliceOnly {
		t.Errorf("alice's devices = %v, want [alice-only]", got)
	}
	if got := ids(list(t, r, "bob")); strings.Join(got, ",") != shared {
		t.Errorf("bob's devices = %v, want [shared]", got)
	}
	// Alice no longer owns it, so she cannot delete it; Bob can.
	if err := r.Delete(context.Background(), "alice", shared); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("alice deletes the moved token: %v, want ErrNotFound", err)
	}
	if err := r.Delete(context.Background(), "bob", shared); err != nil {
		t.Errorf("bob deletes the token: %v", err)
	}
}

func TestListIsSortedByRegistrationTimeThenToken(t *testing.T) {
	r := newRegistry(t)
	for _, tok := range []string{"fcm-token-c", "fcm-token-a", "fcm-token-b"} {
		register(t, r, devices.Device{ID: tok, PushProvider: "firebase", UserID: "alice"})
	}
	register(t, r, devices.Device{ID: "fcm-token-c", PushProvider: "firebase", UserID: "alice"}) // now the newest
	if got := ids(list(t, r, "alice")); strings.Join(got, ",") != "fcm-token-a,fcm-token-b,fcm-token-c" {
		t.Errorf("order = %v, want [fcm-token-a fcm-token-b fcm-token-c]", got)
	}
}

func TestDeleteRemovesTheTokenAndAnUnknownOneIsNotFound(t *testing.T) {
	r := newRegistry(t)
	ctx := context.Background()
	register(t, r, devices.Device{ID: "fcm-tok-1", PushProvider: "firebase", UserID: "alice"})
	if err := r.Delete(ctx, "alice", "fcm-tok-1"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if ds := list(t, r, "alice"); len(ds) != 0 {
		t.Errorf("after delete: %+v, want none", ds)
	}
	if err := r.Delete(ctx, "alice", "fcm-tok-1"); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("delete twice: %v, want ErrNotFound", err)
	}
	if err := r.Delete(ctx, "nobody", "never"); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("delete unknown: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, "alice", "fcm-tok-1"); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("get deleted: %v, want ErrNotFound", err)
	}
	// A deleted token is forgotten entirely: registering it again creates it.
	if !register(t, r, devices.Device{ID: "fcm-tok-1", PushProvider: "firebase", UserID: "bob"}) {
		t.Error("registering a deleted token: created = false, want true")
	}
}

func TestPruneRemovesATokenRegisteredBeforeItBecameInvalid(t *testing.T) {
	// APNs says when a token became invalid; a registration at or before that moment is the dead one.
	for _, after := range []time.Duration{0, time.Millisecond, time.Hour} {
		t.Run(fmt.Sprintf("invalid %v after registration", after), func(t *testing.T) {
			r := newRegistry(t)
			tok := apnTok("tok-1")
			register(t, r, devices.Device{ID: tok, PushProvider: "apn", UserID: "alice"})
			since := list(t, r, "alice")[0].CreatedAt.Add(after)
			prune(t, r, "alice", tok, since, true)
			if ds := list(t, r, "alice"); len(ds) != 0 {
				t.Errorf("after prune: %+v, want none", ds)
			}
		})
	}
}

func TestPruneKeepsATokenRegisteredAgainAfterItBecameInvalid(t *testing.T) {
	r := newRegistry(t)
	tok := apnTok("tok-1")
	register(t, r, devices.Device{ID: tok, PushProvider: "apn", UserID: "alice"})
	invalidSince := list(t, r, "alice")[0].CreatedAt
	register(t, r, devices.Device{ID: tok, PushProvider: "apn", UserID: "alice"})
	prune(t, r, "alice", tok, invalidSince, false)
	if got := ids(list(t, r, "alice")); len(got) != 1 {
		t.Errorf("after prune: %v, want the token kept", got)
	}
}

func TestPruneWithoutATimeAlwaysRemoves(t *testing.T) {
	r := newRegistry(t)
	register(t, r, devices.Device{ID: "fcm-tok-1", PushProvider: "firebase", UserID: "alice"})
	register(t, r, devices.Device{ID: "fcm-tok-1", PushProvider: "firebase", UserID: "alice"})
	prune(t, r, "alice", "fcm-tok-1", time.Time{}, true)
	if ds := list(t, r, "alice"); len(ds) != 0 {
		t.Errorf("after prune: %+v, want none", ds)
	}
	if !register(t, r, devices.Device{ID: "fcm-tok-1", PushProvider: "firebase", UserID: "bob"}) {
		t.Error("registering a pruned token: created = false, want true")
	}
}

func TestPruneOfATokenTheUserDoesNotHaveDoesNothing(t *testing.T) {
	r := newRegistry(t)
	register(t, r, devices.Device{ID: "fcm-tok-1", PushProvider: "firebase", UserID: "bob"})
	prune(t, r, "alice", "fcm-tok-1", time.Time{}, false)
	if got := ids(list(t, r, "bob")); len(got) != 1 {
		t.Errorf("bob's devices = %v, want the token kept", got)
	}
}

func TestListManyReturnsEachUsersDevices(t *testing.T) {
	r := newRegistry(t)
	a2, b1 := apnTok("a2"), apnTok("b1")
	register(t, r, devices.Device{ID: "fcm-token-a1", PushProvider: "firebase", UserID: "alice"})
	register(t, r, devices.Device{ID: a2, PushProvider: "apn", UserID: "alice"})
	register(t, r, devices.Device{ID: b1, PushProvider: "apn", VoIPToken: true, UserID: "bob"})
	got, err := r.ListMany(context.Background(), []string{"alice", "bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || strings.Join(ids(got["alice"]), ",") != "fcm-token-a1,"+a2 || strings.Join(ids(got["bob"]), ",") != b1 {
		t.Errorf("ListMany = %+v, want alice [a1 a2], bob [b1]", got)
	}
}

// Concurrent registrations of one token by different users (a phone handed over while both apps race)
// must leave the token with exactly one user, whatever the interleaving of the steps of a move.
func TestConcurrentRegistrationsLeaveTheTokenWithOneUser(t *testing.T) {
	r := newRegistry(t)
	ctx := context.Background()
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	for round := range 50 {
		tok := fmt.Sprintf("fcm-token-%d", round)
		var wg sync.WaitGroup
		for _, u := range users {
			wg.Go(func() {
				if _, err := r.Register(ctx, devices.Device{ID: tok, PushProvider: "firebase", UserID: u}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		all, err := r.ListMany(ctx, users)
		if err != nil {
			t.Fatal(err)
		}
		var holders []string
		for u, ds := range all {
			for _, d := range ds {
				if d.ID == tok {
					holders = append(holders, u)
				}
			}
		}
		if len(holders) != 1 {
			t.Fatalf("round %d: token held by %v, want exactly one user", round, holders)
		}
	}
}

func TestRegisterRejectsAnInvalidDeviceNamingTheField(t *testing.T) {
	r := newRegistry(t)
	_, err := r.Register(context.Background(), devices.Device{ID: "fcm-token-1", PushProvider: "gcm", UserID: "alice"})
	var fe *devices.FieldError
	if !errors.As(err, &fe) || fe.Field != "push_provider" {
		t.Fatalf("register with a bad provider: %v, want a FieldError on push_provider", err)
	}
	if ds := list(t, r, "alice"); len(ds) != 0 {
		t.Errorf("stored %+v despite the error", ds)
	}
}

func TestValidateNamesTheBadField(t *testing.T) {
	ok := devices.Device{ID: "fcm-token-1", PushProvider: "firebase", UserID: "alice"}
	apn := apnTok("apn")
	with := func(f func(*devices.Device)) devices.Device { d := ok; f(&d); return d }
	tests := []struct {
		name  string
		d     devices.Device
		field string // "" when valid
	}{
		{"firebase token", ok, ""},
		{"apn token", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = apn }), ""},
		{"apn voip token", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = apn; d.VoIPToken = true }), ""},
		{"apn token in capitals", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = strings.ToUpper(apn) }), ""},
		{"apn token of 200 digits", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = strings.Repeat("ab", 100) }), ""},
		{"apn token not hex", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = "fcm-token-1" + apn }), "id"},
		{"apn token of an odd length", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = apn + "a" }), "id"},
		{"apn token of 62 digits", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = apn[:62] }), "id"},
		{"apn token of 202 digits", with(func(d *devices.Device) { d.PushProvider = "apn"; d.ID = strings.Repeat("ab", 101) }), "id"},
		{"fcm token with every allowed character", with(func(d *devices.Device) { d.ID = "aZ09_-:aZ09_-:" }), ""},
		{"fcm token of 7 characters", with(func(d *devices.Device) { d.ID = "abcdefg" }), "id"},
		{"fcm token with a space", with(func(d *devices.Device) { d.ID = "fcm token 1" }), "id"},
		{"fcm token with a brace", with(func(d *devices.Device) { d.ID = "fcm-{token}" }), "id"},
		{"fcm token with a newline", with(func(d *devices.Device) { d.ID = "fcm-token\n1" }), "id"},
		{"fcm token that is an apn token", with(func(d *devices.Device) { d.ID = apn }), ""},
		{"token of the maximal size", with(func(d *devices.Device) { d.ID = strings.Repeat("a", 4096) }), ""},
		{"empty token", with(func(d *devices.Device) { d.ID = "" }), "id"},
		{"token over 4096 bytes", with(func(d *devices.Device) { d.ID = strings.Repeat("a", 4097) }), "id"},
		{"no provider", with(func(d *devices.Device) { d.PushProvider = "" }), "push_provider"},
		{"unknown provider", with(func(d *devices.Device) { d.PushProvider = "apns" }), "push_provider"},
		{"provider in capitals", with(func(d *devices.Device) { d.PushProvider = "Firebase" }), "push_provider"},
		{"voip with firebase", with(func(d *devices.Device) { d.VoIPToken = true }), "voip_token"},
		{"long provider name", with(func(d *devices.Device) { d.PushProviderName = strings.Repeat("n", 129) }), "push_provider_name"},
		{"locale", with(func(d *devices.Device) { d.Locale = "de-AT" }), ""},
		{"locale spelt as Android does", with(func(d *devices.Device) { d.Locale = "de_at" }), ""},
		{"locale well formed but unknown", with(func(d *devices.Device) { d.Locale = "xx-YY" }), ""},
		{"locale not a tag", with(func(d *devices.Device) { d.Locale = "not a locale" }), "locale"},
		{"locale cut short", with(func(d *devices.Device) { d.Locale = "de-" }), "locale"},
		{"locale over 64 bytes", with(func(d *devices.Device) { d.Locale = "de-" + strings.Repeat("a", 62) }), "locale"},
		{"no user", with(func(d *devices.Device) { d.UserID = "" }), "user_id"},
		{"user with a brace", with(func(d *devices.Device) { d.UserID = "a}b" }), "user_id"},
		{"user of 129 bytes", with(func(d *devices.Device) { d.UserID = strings.Repeat("u", 129) }), "user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := devices.Validate(tt.d)
			if tt.field == "" {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *devices.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate = %v, want a FieldError on %s", err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field+" ") {
				t.Errorf("message %q does not start with the field name", err)
			}
		})
	}
}

// The registry runs unchanged on Redis Cluster: a one-node cluster still refuses a script that touches keys
// of two slots, so this catches a key without the right hash tag.
func TestRegistryWorksOnRedisCluster(t *testing.T) {
	srv := testredis.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx := context.Background()
	admin := srv.Client(t)
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatalf("assign slots: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := admin.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok: %q, %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { cc.Close() })
	r := devices.New(cc)

	// A token cannot hold '{' or '}' any more, but the keys are built for any token all the same.
	token := apnTok("cluster")
	if _, err := r.Register(ctx, devices.Device{ID: token, PushProvider: "apn", UserID: "alice"}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := r.Register(ctx, devices.Device{ID: token, PushProvider: "apn", UserID: "bob"}); err != nil {
		t.Fatalf("move: %v", err)
	}
	all, err := r.ListMany(ctx, []string{"alice", "bob"})
	if err != nil {
		t.Fatalf("list many: %v", err)
	}
	if len(all["alice"]) != 0 || len(all["bob"]) != 1 {
		t.Errorf("after move: %+v, want the token with bob only", all)
	}
	if pruned, err := r.Prune(ctx, "bob", token, time.Time{}); err != nil || !pruned {
		t.Errorf("prune = %v, %v; want true", pruned, err)
	}
	if err := r.Delete(ctx, "bob", token); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("delete after prune: %v, want ErrNotFound", err)
	}
}

func TestRegisteringPastTheLimitDropsTheOldestRegistration(t *testing.T) {
	r := newRegistry(t)
	ctx := context.Background()
	tok := func(i int) string { return fmt.Sprintf("fcm-token-%03d", i) }
	for i := range devices.MaxDevicesPerUser {
		register(t, r, devices.Device{ID: tok(i), PushProvider: "firebase", UserID: "alice"})
	}
	// Registering the first one again makes it the newest: the second is now the oldest.
	register(t, r, devices.Device{ID: tok(0), PushProvider: "firebase", UserID: "alice"})
	register(t, r, devices.Device{ID: tok(devices.MaxDevicesPerUser), PushProvider: "firebase", UserID: "alice"})
	got := ids(list(t, r, "alice"))
	if len(got) != devices.MaxDevicesPerUser {
		t.Fatalf("alice has %d devices, want %d", len(got), devices.MaxDevicesPerUser)
	}
	for _, id := range got {
		if id == tok(1) {
			t.Errorf("the oldest registration %s was kept", id)
		}
	}
	if got[len(got)-1] != tok(devices.MaxDevicesPerUser) || got[len(got)-2] != tok(0) {
		t.Errorf("the newest registrations are not last: %v", got[len(got)-2:])
	}
	// The dropped token is forgotten entirely, as if deleted: registering it again creates it.
	if _, err := r.Get(ctx, "alice", tok(1)); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("get dropped: %v, want ErrNotFound", err)
	}
	if !register(t, r, devices.Device{ID: tok(1), PushProvider: "firebase", UserID: "bob"}) {
		t.Error("registering a dropped token: created = false, want true")
	}
	if n := len(list(t, r, "alice")); n != devices.MaxDevicesPerUser {
		t.Errorf("alice has %d devices after bob took a dropped token, want %d", n, devices.MaxDevicesPerUser)
	}
}
