// Package devices is the device registry: which push tokens belong to which user (API.md, "Devices").
//
// # Keys
//
// Every key is hash-tagged so that each Lua script touches one Redis Cluster slot:
//
//	ringer:{u:<user>}:devices        hash: token -> record JSON (provider, voip, name, registration time)
//	ringer:{t:<sha256(token)>}:owner hash: user -> the token's owner, at -> its registration time (µs)
//
// The owner key exists because a token belongs to one user at a time: registering it again moves it. It is
// keyed by a digest of the token because tokens are up to 4096 bytes and may contain '{' or '}', which
// would break the hash tag.
//
// # Moving a token between users
//
// A move touches three slots (the token's, the old owner's, the new owner's), so it cannot be one script.
// Instead every registration gets a registration time from the owner key's script, strictly increasing
// per token (Redis server time, bumped past the previous one), and every later step is conditional on it:
//
//  1. claim: the owner key records the new owner and hands out the registration time;
//  2. write: the new owner's hash stores the token unless it already holds a later registration;
//  3. move: the previous owner's hash drops the token if its registration there is older;
//  4. check: if the owner key names a later registration by now, this registration lost a race and
//     drops its own entry (only that entry: a later one is kept).
//
// Whatever the interleaving of concurrent registrations, only the last one's entry remains: an earlier
// one is removed by its successor's step 3 if it was written before it, or by its own step 4 if after.
// A process that dies between steps can leave a stale entry; registering or deleting the token heals it.
package devices

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/text/language"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/wire"
)

// Provider names as API.md spells a device's push_provider: the providers package's, named here too so that
// callers of devices need not import providers to spell them.
const (
	Firebase = providers.Firebase
	APN      = providers.APN
)

// Limits on a device's fields, and on a user's devices.
const (
	MaxTokenLen        = 4096 // bytes of a token (id)
	MaxProviderNameLen = 128  // bytes of push_provider_name: it is stored and echoed back, so it is bounded
	// MaxLocaleLen bounds locale: BCP 47 asks implementations to take tags of 35 characters at least, and a
	// tag with extensions may run longer, but nothing a phone reports comes near 64.
	MaxLocaleLen = 64
	// MaxDevicesPerUser bounds one user's devices, and so the pushes of one ring to one member. Registering
	// one more drops the oldest registration: an app reinstalled many times gets a new token each time and
	// never says goodbye to the old ones, and its newest token is the one that works.
	MaxDevicesPerUser = 50

	// APNs device tokens are hex: 32 bytes today (64 digits), longer in principle; 100 bytes bounds them.
	MinAPNsTokenLen = 64
	MaxAPNsTokenLen = 200
	// FCM registration tokens are about 150 characters of letters, digits, '_', '-' and ':'. The floor is
	// low enough for emulator and test tokens and still refuses a stray word.
	MinFCMTokenLen = 8
)

var (
	apnsTokenPattern = regexp.MustCompile(`^[0-9A-Fa-f]+$`)
	fcmTokenPattern  = regexp.MustCompile(`^[A-Za-z0-9_:-]+$`)
)

// ErrNotFound is returned when a user has no such token.
var ErrNotFound = errors.New("device not found")

// userIDPattern is API.md's user_id. The registry checks it too because user ids are part of its keys.
var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9@._-]{1,128}$`)

// Device is one push token of one user: the shape the device endpoints answer with (package wire, which the
// Go client decodes too), and the record the registry keeps.
type Device = wire.Device

// FieldError is a device field that fails validation; the API layer answers 400 naming Field.
type FieldError struct {
	Field   string // JSON name of the field, as API.md spells it
	Message string // what is wrong, as a sentence fragment: "must be \"firebase\" or \"apn\""
}

func (e *FieldError) Error() string { return e.Field + " " + e.Message }

// Validate checks a device as a client sends it (CreatedAt is ignored: the registry sets it). The error is a
// *FieldError naming the first bad field.
func Validate(d Device) error {
	switch {
	case d.ID == "":
		return &FieldError{"id", "is required"}
	case len(d.ID) > MaxTokenLen:
		return &FieldError{"id", fmt.Sprintf("is longer than %d bytes", MaxTokenLen)}
	case d.PushProvider != Firebase && d.PushProvider != APN:
		return &FieldError{"push_provider", `must be "firebase" or "apn"`}
	case d.PushProvider == APN && (len(d.ID) < MinAPNsTokenLen || len(d.ID) > MaxAPNsTokenLen || len(d.ID)%2 != 0 || !apnsTokenPattern.MatchString(d.ID)):
		return &FieldError{"id", fmt.Sprintf("is not an APNs device token: %d to %d hex digits, an even number of them", MinAPNsTokenLen, MaxAPNsTokenLen)}
	case d.PushProvider == Firebase && (len(d.ID) < MinFCMTokenLen || !fcmTokenPattern.MatchString(d.ID)):
		return &FieldError{"id", fmt.Sprintf("is not an FCM registration token: %d to %d characters of A-Z, a-z, 0-9, '_', '-' and ':'", MinFCMTokenLen, MaxTokenLen)}
	case d.VoIPToken && d.PushProvider != APN:
		return &FieldError{"voip_token", `can be true only with push_provider "apn"`}
	case len(d.PushProviderName) > MaxProviderNameLen:
		return &FieldError{"push_provider_name", fmt.Sprintf("is longer than %d bytes", MaxProviderNameLen)}
	case len(d.Locale) > MaxLocaleLen:
		return &FieldError{"locale", fmt.Sprintf("is longer than %d bytes", MaxLocaleLen)}
	case d.Locale != "" && !wellFormedLocale(d.Locale):
		return &FieldError{"locale", "is not a BCP 47 language tag such as \"de\" or \"de-AT\""}
	case d.UserID == "":
		return &FieldError{"user_id", "is required"}
	case !userIDPattern.MatchString(d.UserID):
		return &FieldError{"user_id", "must match ^[A-Za-z0-9@._-]{1,128}$"}
	}
	return nil
}

// wellFormedLocale reports whether s has the shape of a BCP 47 tag. A tag whose subtags are well formed but
// not in the registry ("xx-YY") is accepted: its push falls back to the default text, and refusing it would
// break an app the day a phone reports a subtag newer than this build's registry.
func wellFormedLocale(s string) bool {
	_, err := language.Parse(s)
	var unknown language.ValueError
	return err == nil || errors.As(err, &unknown)
}

// CanonicalLocale is locale as stored: a known tag in its canonical form (de_at and de-at become de-AT), an
// unknown one as given. Call it on a locale that passed Validate.
func CanonicalLocale(locale string) string {
	if t, err := language.Parse(locale); err == nil {
		return t.String()
	}
	return locale
}

// Registry stores devices in Redis. It is safe for concurrent use and works on a single Redis or a Cluster.
type Registry struct {
	rdb redis.UniversalClient
}

// New returns a registry on rdb.
func New(rdb redis.UniversalClient) *Registry { return &Registry{rdb: rdb} }

// record is what a user's devices hash holds per token; the token and the user are the field and the key.
// At is the registration time in µs since the epoch: Lua reads it (cjson numbers are doubles, exact to 2^53,
// which µs stay under for centuries).
type record struct {
	Provider string `json:"provider"`
	VoIP     bool   `json:"voip,omitempty"`
	Name     string `json:"name,omitempty"`
	Locale   string `json:"locale,omitempty"`
	At       int64  `json:"at"`
}

func devicesKey(userID string) string { return "ringer:{u:" + userID + "}:devices" }

func ownerKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "ringer:{t:" + hex.EncodeToString(sum[:]) + "}:owner"
}

// claimScript makes a user the owner of a token and hands out the registration's time.
//
// KEYS[1] -> ringer:{t:<sha256(token)>}:owner
// ARGV[1] -> user id
//
// Returns {previous owner or "", registration time in µs}. The time is the server's clock, bumped past the
// previous registration's so that registrations of one token are strictly ordered even within a µs.
var claimScript = redis.NewScript(`
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = redis.call('HMGET', KEYS[1], 'user', 'at')
if prev[2] and tonumber(prev[2]) >= at then
  at = tonumber(prev[2]) + 1
end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'at', string.format('%.0f', at))
return {prev[1] or '', at}
`)

// writeScript stores a registration in a user's devices unless a later registration of the token is there,
// then drops the oldest registrations past the per-user limit (never the one just written).
//
// KEYS[1] -> ringer:{u:<user>}:devices
// ARGV[1] -> token
// ARGV[2] -> record JSON
// ARGV[3] -> registration time in µs (the record's at)
// ARGV[4] -> most devices a user keeps
//
// Returns {0} if a later registration was already stored, else {1, dropped token, its registration time
// (µs, as a string), ...} listing the registrations dropped, whose owner keys the caller releases.
var writeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur).at >= tonumber(ARGV[3]) then
  return {0}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local max = tonumber(ARGV[4])
local over = redis.call('HLEN', KEYS[1]) - max
local out = {1}
if over <= 0 then
  return out
end
local all = redis.call('HGETALL', KEYS[1])
local entries = {}
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    entries[#entries + 1] = {all[i], cjson.decode(all[i + 1]).at}
  end
end
table.sort(entries, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[1] < b[1]
end)
for i = 1, over do
  redis.call('HDEL', KEYS[1], entries[i][1])
  out[#out + 1] = entries[i][1]
  out[#out + 1] = string.format('%.0f', entries[i][2])
end
return out
`)

// dropScript removes a token from a user's devices if it was registered before a given time.
//
// KEYS[1] -> ringer:{u:<user>}:devices
// ARGV[1] -> token
// ARGV[2] -> time in µs: entries registered strictly before it are removed
//
// Returns 1 if removed, 0 if absent or registered at or after ARGV[2].
var dropScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur).at < tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// pruneScript removes a token from a user's devices unless it was registered after a given time.
//
// KEYS[1] -> ringer:{u:<user>}:devices
// ARGV[1] -> token
// ARGV[2] -> invalid since, µs; empty to remove whatever the registration time
//
// Returns {0, 0} if the user has no such token, {1, at} if it was removed (at: its registration time),
// {2, at} if it was kept because it was registered after ARGV[2].
var pruneScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  return {0, 0}
end
local at = cjson.decode(cur).at
if ARGV[2] ~= '' and at > tonumber(ARGV[2]) then
  return {2, at}
end
redis.call('HDEL', KEYS[1], ARGV[1])
return {1, at}
`)

// releaseScript deletes a token's owner key if it still records the registration that was removed.
//
// KEYS[1] -> ringer:{t:<sha256(token)>}:owner
// ARGV[1] -> user id
// ARGV[2] -> registration time in µs
//
// Returns 1 if deleted, 0 if the token was registered again meanwhile (the key then belongs to that one).
var releaseScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'user', 'at')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// Register stores d for d.UserID, moving the token from any other user who had it. created is false when
// the token was already registered (to this user or another). The registration time (CreatedAt) is set
// here and updated by every registration, since Prune compares against it.
func (r *Registry) Register(ctx context.Context, d Device) (created bool, err error) {
	if err := Validate(d); err != nil {
		return false, fmt.Errorf("register device for %s: %w", d.UserID, err)
	}
	tok := providers.TokenSuffix(d.ID)
	claim, err := claimScript.Run(ctx, r.rdb, []string{ownerKey(d.ID)}, d.UserID).Slice()
	if err != nil {
		return false, fmt.Errorf("register device %s for %s: claim: %w", tok, d.UserID, err)
	}
	prev, _ := claim[0].(string)
	at, _ := claim[1].(int64)
	if at == 0 {
		return false, fmt.Errorf("register device %s for %s: claim answered %v", tok, d.UserID, claim)
	}
	rec, err := json.Marshal(record{Provider: d.PushProvider, VoIP: d.VoIPToken, Name: d.PushProviderName, Locale: CanonicalLocale(d.Locale), At: at})
	if err != nil {
		return false, fmt.Errorf("register device %s for %s: %w", tok, d.UserID, err)
	}
	written, err := writeScript.Run(ctx, r.rdb, []string{devicesKey(d.UserID)}, d.ID, rec, at, MaxDevicesPerUser).Slice()
	if err != nil {
		return false, fmt.Errorf("register device %s for %s: write: %w", tok, d.UserID, err)
	}
	// Registrations dropped for the per-user limit give up their tokens' owner keys, as a delete does; a
	// failure leaves a key that merely makes the token's next registration report created=false.
	for i := 1; i+1 < len(written); i += 2 {
		old, _ := written[i].(string)
		oldAt, _ := written[i+1].(string)
		if err := releaseScript.Run(ctx, r.rdb, []string{ownerKey(old)}, d.UserID, oldAt).Err(); err != nil {
			return false, fmt.Errorf("register device %s for %s: release dropped device %s: %w", tok, d.UserID, providers.TokenSuffix(old), err)
		}
	}
	if prev != "" && prev != d.UserID {
		if err := dropScript.Run(ctx, r.rdb, []string{devicesKey(prev)}, d.ID, at).Err(); err != nil {
			return false, fmt.Errorf("register device %s for %s: remove from %s: %w", tok, d.UserID, prev, err)
		}
	}
	// Step 4 of the package comment: a later registration that claimed the token after us may have run its
	// step 3 before our write landed, so our entry would outlive it unless we check.
	owner, err := r.rdb.HGet(ctx, ownerKey(d.ID), "at").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("register device %s for %s: check: %w", tok, d.UserID, err)
	}
	if owner != strconv.FormatInt(at, 10) {
		if err := dropScript.Run(ctx, r.rdb, []string{devicesKey(d.UserID)}, d.ID, at+1).Err(); err != nil {
			return false, fmt.Errorf("register device %s for %s: yield to a later registration: %w", tok, d.UserID, err)
		}
	}
	return prev == "", nil
}

// Get returns one device of a user, or ErrNotFound.
func (r *Registry) Get(ctx context.Context, userID, token string) (Device, error) {
	raw, err := r.rdb.HGet(ctx, devicesKey(userID), token).Result()
	if errors.Is(err, redis.Nil) {
		return Device{}, fmt.Errorf("get device %s of %s: %w", providers.TokenSuffix(token), userID, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("get device %s of %s: %w", providers.TokenSuffix(token), userID, err)
	}
	d, err := decode(userID, token, raw)
	if err != nil {
		return Device{}, fmt.Errorf("get device %s of %s: %w", providers.TokenSuffix(token), userID, err)
	}
	return d, nil
}

// List returns a user's devices, oldest registration first (ties by token), so that answers are stable.
func (r *Registry) List(ctx context.Context, userID string) ([]Device, error) {
	all, err := r.rdb.HGetAll(ctx, devicesKey(userID)).Result()
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	ds, err := decodeAll(userID, all)
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	return ds, nil
}

// ListMany returns the devices of several users in one round trip per node (a pipeline; on a Cluster,
// go-redis splits it by slot). Users without devices are absent from the map.
func (r *Registry) ListMany(ctx context.Context, userIDs []string) (map[string][]Device, error) {
	if len(userIDs) == 0 {
		return map[string][]Device{}, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(userIDs))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range userIDs {
			cmds[i] = p.HGetAll(ctx, devicesKey(u))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list devices of %d users: %w", len(userIDs), err)
	}
	out := make(map[string][]Device, len(userIDs))
	for i, u := range userIDs {
		ds, err := decodeAll(u, cmds[i].Val())
		if err != nil {
			return nil, fmt.Errorf("list devices of %s: %w", u, err)
		}
		if len(ds) > 0 {
			out[u] = ds
		}
	}
	return out, nil
}

// Delete removes a user's token. ErrNotFound when that user has no such token.
func (r *Registry) Delete(ctx context.Context, userID, token string) error {
	status, err := r.prune(ctx, userID, token, "")
	if err != nil {
		return fmt.Errorf("delete device %s of %s: %w", providers.TokenSuffix(token), userID, err)
	}
	if status == 0 {
		return fmt.Errorf("delete device %s of %s: %w", providers.TokenSuffix(token), userID, ErrNotFound)
	}
	return nil
}

// Prune removes a token the provider reported invalid, unless it was registered again after invalidSince
// (the app got the same token back and registered it after the provider's verdict). A zero invalidSince
// removes it whatever its registration time; a caller without a provider timestamp may pass the time it
// sent the push instead. pruned is false when the token was kept or the user had no such token.
func (r *Registry) Prune(ctx context.Context, userID, token string, invalidSince time.Time) (pruned bool, err error) {
	since := ""
	if !invalidSince.IsZero() {
		since = strconv.FormatInt(invalidSince.UnixMicro(), 10)
	}
	status, err := r.prune(ctx, userID, token, since)
	if err != nil {
		return false, fmt.Errorf("prune device %s of %s: %w", providers.TokenSuffix(token), userID, err)
	}
	return status == 1, nil
}

// prune runs pruneScript and, when it removed the token, releases the token's owner key. It returns the
// script's status: 0 absent, 1 removed, 2 kept.
func (r *Registry) prune(ctx context.Context, userID, token, since string) (int64, error) {
	res, err := pruneScript.Run(ctx, r.rdb, []string{devicesKey(userID)}, token, since).Int64Slice()
	if err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("prune answered %v", res)
	}
	if res[0] == 1 {
		// The owner key goes only if it still records this registration; a failure here leaves a key that
		// merely makes the token's next registration report created=false.
		if err := releaseScript.Run(ctx, r.rdb, []string{ownerKey(token)}, userID, res[1]).Err(); err != nil {
			return 0, fmt.Errorf("release owner: %w", err)
		}
	}
	return res[0], nil
}

func decode(userID, token, raw string) (Device, error) {
	var rec record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return Device{}, fmt.Errorf("decode device %s: %w", providers.TokenSuffix(token), err)
	}
	return Device{
		ID:               token,
		PushProvider:     rec.Provider,
		VoIPToken:        rec.VoIP,
		PushProviderName: rec.Name,
		Locale:           rec.Locale,
		CreatedAt:        time.UnixMicro(rec.At).UTC(),
		UserID:           userID,
	}, nil
}

func decodeAll(userID string, all map[string]string) ([]Device, error) {
	ds := make([]Device, 0, len(all))
	for tok, raw := range all {
		d, err := decode(userID, tok, raw)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b Device) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ds, nil
}
