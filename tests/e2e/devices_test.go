package e2e

import (
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/fakeapns"
	"github.com/ringer-dev/ringer/tests/fakefcm"
	"github.com/ringer-dev/ringer/tests/harness"
)

// devicesList is GET /v1/devices of user as user: token → device object.
func devicesList(t testing.TB, e *harness.Env, user string) map[string]map[string]any {
	t.Helper()
	r := e.MustCall(200, "GET", "/v1/devices", e.Token(user), nil)
	return r.Items(t, "devices", func(d map[string]any) string { return d["id"].(string) })
}

// devicesRegister registers a device as user and returns the answer, wanting status.
func devicesRegister(t testing.TB, e *harness.Env, user, token, provider string, voip bool, status int) harness.Resp {
	t.Helper()
	return e.MustCall(status, "POST", "/v1/devices", e.Token(user), map[string]any{"id": token, "push_provider": provider, "voip_token": voip})
}

func devicesCreatedAt(t testing.TB, d map[string]any) time.Time {
	t.Helper()
	s, _ := d["created_at"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("created_at %q is not RFC 3339: %v", d["created_at"], err)
	}
	return at
}

func TestDeviceRegisterIs201AndAgainIs200(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	before := time.Now().Add(-time.Minute)
	r := devicesRegister(t, e, "alice", "alice-android", "firebase", false, 201)
	want := map[string]any{"id": "alice-android", "push_provider": "firebase", "voip_token": false, "user_id": "alice"}
	for k, v := range want {
		if r.Body[k] != v {
			t.Errorf("201 answer %s = %v, want %v: %s", k, r.Body[k], v, r.Raw)
		}
	}
	if at := devicesCreatedAt(t, r.Body); at.Before(before) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("created_at %v is not now", at)
	}
	r = devicesRegister(t, e, "alice", "alice-android", "firebase", false, 200)
	if r.Body["id"] != "alice-android" || r.Body["user_id"] != "alice" {
		t.Errorf("200 answer: %s", r.Raw)
	}
	if ds := devicesList(t, e, "alice"); len(ds) != 1 || ds["alice-android"] == nil {
		t.Errorf("after registering twice alice has %v", ds)
	}
}

func TestDeviceRegisteredByAnotherUserMovesToThem(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	devicesRegister(t, e, "alice", "shared-phone", "firebase", false, 201)
	devicesRegister(t, e, "alice", "alice-own", "firebase", false, 201)
	r := devicesRegister(t, e, "bob", "shared-phone", "firebase", false, 200)
	if r.Body["user_id"] != "bob" {
		t.Errorf("moved device answers user_id %v, want bob", r.Body["user_id"])
	}
	if ds := devicesList(t, e, "alice"); ds["shared-phone"] != nil || ds["alice-own"] == nil || len(ds) != 1 {
		t.Errorf("alice's devices after bob took the token: %v", ds)
	}
	if ds := devicesList(t, e, "bob"); ds["shared-phone"] == nil || ds["shared-phone"]["user_id"] != "bob" {
		t.Errorf("bob's devices: %v", ds)
	}
	// A ring for alice no longer reaches the phone that is bob's now.
	e.MustCall(201, "POST", "/v1/call/default/c1", e.Token("carol"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("carol", "alice")},
	})
	e.WaitFCM("alice-own", 1)
	if n := len(e.FCM.MessagesTo("shared-phone")); n != 0 {
		t.Errorf("bob's phone got %d pushes for alice's ring", n)
	}
	// Deleting it as alice is 404 now; bob keeps it.
	contractErr(t, "alice deletes the moved token", e.Call("DELETE", "/v1/devices?id=shared-phone", e.Token("alice"), nil), 404, "not_found", "")
	if ds := devicesList(t, e, "bob"); ds["shared-phone"] == nil {
		t.Errorf("bob lost the token to alice's delete")
	}
}

func TestDeviceListShape(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	voip, iphone := harness.APNsToken("shape-voip"), harness.APNsToken("shape-iphone")
	devicesRegister(t, e, "alice", "shape-android", "firebase", false, 201)
	devicesRegister(t, e, "alice", voip, "apn", true, 201)
	devicesRegister(t, e, "alice", iphone, "apn", false, 201)
	devicesRegister(t, e, "bob", "bob-android", "firebase", false, 201)

	r := e.MustCall(200, "GET", "/v1/devices", e.Token("alice"), nil)
	raw, ok := r.Body["devices"].([]any)
	if !ok || len(raw) != 3 {
		t.Fatalf("devices: %s", r.Raw)
	}
	want := map[string][2]any{"shape-android": {"firebase", false}, voip: {"apn", true}, iphone: {"apn", false}}
	var ids []string
	for _, d := range raw {
		d, ok := d.(map[string]any)
		if !ok {
			t.Fatalf("device is not an object: %s", r.Raw)
		}
		for _, k := range []string{"id", "push_provider", "voip_token", "created_at", "user_id"} {
			if _, ok := d[k]; !ok {
				t.Errorf("device lacks %q: %v", k, d)
			}
		}
		id, _ := d["id"].(string)
		ids = append(ids, id)
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected device %v", d)
			continue
		}
		if d["push_provider"] != w[0] || d["voip_token"] != w[1] || d["user_id"] != "alice" {
			t.Errorf("device %s: %v", id, d)
		}
		devicesCreatedAt(t, d)
	}
	sort.Strings(ids)
	if len(ids) != 3 {
		t.Errorf("ids %v", ids)
	}
	// A user without devices gets an empty list, not null.
	r = e.MustCall(200, "GET", "/v1/devices", e.Token("nobody"), nil)
	if ds, ok := r.Body["devices"].([]any); !ok || len(ds) != 0 {
		t.Errorf("devices of a user without any: %s", r.Raw)
	}
}

func TestDeviceDeleteIs200ThenUnknownIs404(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	tok := "fcm:APA91b-with_odd:chars" // ":" is escaped in the query
	devicesRegister(t, e, "alice", tok, "firebase", false, 201)
	devicesRegister(t, e, "alice", "alice-keep", "firebase", false, 201)
	path := "/v1/devices?id=" + url.QueryEscape(tok)
	e.MustCall(200, "DELETE", path, e.Token("alice"), nil)
	if ds := devicesList(t, e, "alice"); ds[tok] != nil || ds["alice-keep"] == nil {
		t.Errorf("after delete alice has %v", ds)
	}
	contractErr(t, "delete again", e.Call("DELETE", path, e.Token("alice"), nil), 404, "not_found", "")
	contractErr(t, "delete a never registered token", e.Call("DELETE", "/v1/devices?id=never", e.Token("alice"), nil), 404, "not_found", "")

	// The server token deletes for the user it names.
	devicesRegister(t, e, "bob", "bob-android", "firebase", false, 201)
	e.MustCall(200, "DELETE", "/v1/devices?id=bob-android&user_id=bob", e.ServerToken(), nil)
	contractErr(t, "server deletes again", e.Call("DELETE", "/v1/devices?id=bob-android&user_id=bob", e.ServerToken(), nil), 404, "not_found", "")
	// A deleted token registers afresh: 201.
	devicesRegister(t, e, "alice", tok, "firebase", false, 201)
}

func TestDeviceRegistrationIsValidated(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	dev := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	validationRun(t, e, e.Token("alice"), []validationCase{
		{"unknown push_provider", "POST", "/v1/devices", dev("id", "t1", "push_provider", "gcm"), "invalid_field", "push_provider"},
		{"push_provider in capitals", "POST", "/v1/devices", dev("id", "t1", "push_provider", "APN"), "invalid_field", "push_provider"},
		{"no push_provider", "POST", "/v1/devices", dev("id", "t1"), "invalid_field", "push_provider"},
		{"voip_token on firebase", "POST", "/v1/devices", dev("id", "fcm-token-1", "push_provider", "firebase", "voip_token", true), "invalid_field", "voip_token"},
		{"empty id", "POST", "/v1/devices", dev("id", "", "push_provider", "firebase"), "invalid_field", "id"},
		{"no id", "POST", "/v1/devices", dev("push_provider", "apn"), "invalid_field", "id"},
		{"empty body", "POST", "/v1/devices", nil, "invalid_field", "id"},
		{"delete without id", "DELETE", "/v1/devices", nil, "invalid_field", "id"},
	})
	if ds := devicesList(t, e, "alice"); len(ds) != 0 {
		t.Errorf("refused registrations stored %v", ds)
	}
}

// devicesPruneCase is one provider verdict that must remove a token.
type devicesPruneCase struct {
	name     string
	dead     string // the token the provider calls dead
	provider string
	voip     bool
	// script scripts the provider's answer for dead, registered at registered.
	script func(e *harness.Env, dead string, registered time.Time)
}

func TestDeadTokensArePrunedOnTheProvidersWord(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	cases := []devicesPruneCase{
		{"apns-410-unregistered", harness.APNsToken("prune-410"), "apn", true, func(e *harness.Env, dead string, reg time.Time) {
			// A second after the registration: the verdict is unambiguous whatever the timestamp's precision.
			e.APNs.Script(dead, fakeapns.Unregistered(reg.Add(time.Second)))
		}},
		{"apns-400-bad-device-token", harness.APNsToken("prune-bad"), "apn", true, func(e *harness.Env, dead string, _ time.Time) {
			e.APNs.Script(dead, fakeapns.BadDeviceToken())
		}},
		{"fcm-unregistered", "prune-fcm-unregistered", "firebase", false, func(e *harness.Env, dead string, _ time.Time) {
			e.FCM.Script(dead, fakefcm.Unregistered())
		}},
		{"fcm-sender-id-mismatch", "prune-fcm-sender", "firebase", false, func(e *harness.Env, dead string, _ time.Time) {
			e.FCM.Script(dead, fakefcm.SenderIDMismatch())
		}},
		{"fcm-invalid-token", "prune-fcm-invalid", "firebase", false, func(e *harness.Env, dead string, _ time.Time) {
			e.FCM.Script(dead, fakefcm.InvalidToken())
		}},
	}
	type member struct {
		user, good, goodVoIP string
	}
	members := make([]member, len(cases))
	for i, c := range cases {
		m := member{user: "u-" + c.name, good: "good-android-" + c.name}
		r := devicesRegister(t, e, m.user, c.dead, c.provider, c.voip, 201)
		c.script(e, c.dead, devicesCreatedAt(t, r.Body))
		devicesRegister(t, e, m.user, m.good, "firebase", false, 201)
		if !c.voip {
			m.goodVoIP = harness.APNsToken("good-voip-" + c.name)
			devicesRegister(t, e, m.user, m.goodVoIP, "apn", true, 201)
		}
		members[i] = m
		e.MustCall(201, "POST", "/v1/call/default/"+c.name, e.Token("alice"), map[string]any{
			"ring": true, "data": map[string]any{"members": contractMembers("alice", m.user)},
		})
	}
	// No subtests: WaitFCM and WaitAPNs fail the test that started the env, so they run on its goroutine.
	for i, c := range cases {
		m := members[i]
		func() {
			t.Logf("case %s", c.name)
			// The member's other devices ring exactly once (WaitFCM also waits for the queues to be quiet).
			if got := e.WaitFCM(m.good, 1); got[0].Data["type"] != "call.ring" {
				t.Errorf("%s: good FCM token got %v", c.name, got[0].Data["type"])
			}
			if m.goodVoIP != "" {
				if got := e.WaitAPNs(m.goodVoIP, 1); got[0].PushType != "voip" {
					t.Errorf("%s: good VoIP token got %s", c.name, got[0].PushType)
				}
			}
			attempts := e.FCM.Attempts(c.dead)
			if c.provider == "apn" {
				attempts = e.APNs.Attempts(c.dead)
			}
			if attempts != 1 {
				t.Errorf("%s: dead token tried %d times, want 1 (no retry)", c.name, attempts)
			}
			ds := devicesList(t, e, m.user)
			if ds[c.dead] != nil {
				t.Errorf("%s: dead token still registered: %v", c.name, ds[c.dead])
			}
			if ds[m.good] == nil || (m.goodVoIP != "" && ds[m.goodVoIP] == nil) {
				t.Errorf("%s: good tokens pruned too: %v", c.name, ds)
			}
		}()
	}
}

func TestTokenRegisteredAgainAfterAPNs410IsKept(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	voip := harness.APNsToken("reinstalled-voip")
	devicesRegister(t, e, "bob", voip, "apn", true, 201)
	devicesRegister(t, e, "bob", "bob-android", "firebase", false, 201)
	// APNs says the token died now; the app then registered it again (a reinstall that got the same token).
	diedAt := time.Now()
	e.APNs.Script(voip, fakeapns.Unregistered(diedAt))
	r := devicesRegister(t, e, "bob", voip, "apn", true, 200)
	if at := devicesCreatedAt(t, r.Body); !at.After(diedAt) {
		t.Fatalf("re-registration at %v is not after %v", at, diedAt)
	}
	e.MustCall(201, "POST", "/v1/call/default/k1", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	e.WaitFCM("bob-android", 1)
	e.Eventually(30*time.Second, "the VoIP token to be tried", func() bool { return e.APNs.Attempts(voip) >= 1 })
	e.Quiet()
	if ds := devicesList(t, e, "bob"); ds[voip] == nil {
		t.Errorf("token registered after the 410 timestamp was pruned: %v", ds)
	}
}

// APNs sends the 410 timestamp in milliseconds; a token registered before that moment is dead, even when both
// fall in the same second.
func TestAPNs410TimestampCountsToTheMillisecond(t *testing.T) {
	t.Parallel()
	e := harness.Start(t)
	voip := harness.APNsToken("dies-just-after-registration")
	r := devicesRegister(t, e, "bob", voip, "apn", true, 201)
	devicesRegister(t, e, "bob", "bob-android", "firebase", false, 201)
	registered := devicesCreatedAt(t, r.Body)
	// Dead 20 ms after it was registered; the timestamp is on a millisecond past the registration.
	e.APNs.Script(voip, fakeapns.Unregistered(registered.Add(20*time.Millisecond)))
	e.MustCall(201, "POST", "/v1/call/default/ms", e.Token("alice"), map[string]any{
		"ring": true, "data": map[string]any{"members": contractMembers("alice", "bob")},
	})
	e.WaitFCM("bob-android", 1)
	e.Eventually(30*time.Second, "the VoIP token to be tried", func() bool { return e.APNs.Attempts(voip) >= 1 })
	e.Quiet()
	if ds := devicesList(t, e, "bob"); ds[voip] != nil {
		t.Errorf("token registered at %s, dead since %s by APNs' 410, is still registered",
			registered.Format(time.RFC3339Nano), registered.Add(20*time.Millisecond).Format(time.RFC3339Nano))
	}
	if n := e.APNs.Attempts(voip); n != 1 {
		t.Errorf("dead token tried %d times, want 1", n)
	}
}
