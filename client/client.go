// Package client is a Go client of ringer's HTTP API (docs/API.md): devices, calls and their actions, and the
// event stream, which it reconnects. It imports only the standard library and two packages of ringer that do
// the same (wire, the API's JSON shapes, which the server answers with; providers, for the provider names), so
// a service can import it without taking on ringer's server dependencies (TestClientImportsNoServerDependency).
//
//	c := client.New("http://127.0.0.1:8080", token)
//	st, err := c.GetOrCreateCall(ctx, "default", "abc", client.GetOrCreate{Ring: true,
//		Data: &client.CallData{Members: []client.MemberRequest{{UserID: "alice"}, {UserID: "bob"}}}})
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/wire"
)

// Client calls one ringer with one token. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	// HTTP sends the requests; http.DefaultClient when nil. Its Timeout, if any, also bounds event streams,
	// so give Events a client without one.
	HTTP *http.Client
}

// New returns a client of the ringer at baseURL ("http://127.0.0.1:8080") acting with token, a user token or
// a server token (see AsUser).
func New(baseURL, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token}
}

// Error is a non-2xx answer: the error body of docs/API.md, "Errors".
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
	// RetryAfter is the answer's Retry-After (a 503 overloaded, or an event stream past RINGER_SSE_MAX): do
	// not try again sooner. 0 when the answer had none.
	RetryAfter time.Duration `json:"-"`
}

// Overloaded is the code of a 503 to a request that would start a ring while rings cannot be delivered in
// time: nothing was stored; retry after Error.RetryAfter or tell the caller.
const Overloaded = wire.CodeOverloaded

// RateLimited is the code of a 429 to a request that would start a ring by a user past RINGER_RING_RATE:
// nothing was stored; retry after Error.RetryAfter.
const RateLimited = wire.CodeRateLimited

// retryAfter reads a Retry-After of whole seconds; 0 when absent or of another form.
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

func (e *Error) Error() string { return fmt.Sprintf("ringer: %d %s: %s", e.Status, e.Code, e.Message) }

// IsStatus reports whether err is an answer of the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// Device is a registered push token.
type Device = wire.Device

// Provider names of a device: the providers package's, named here too so that a client's user need not
// import providers to spell them.
const (
	Firebase = providers.Firebase
	APN      = providers.APN
)

// DeviceRequest registers a token; UserID only with a server token.
type DeviceRequest struct {
	ID               string `json:"id"`
	PushProvider     string `json:"push_provider"`
	VoIPToken        bool   `json:"voip_token,omitempty"`
	PushProviderName string `json:"push_provider_name,omitempty"`
	Locale           string `json:"locale,omitempty"`
	UserID           string `json:"user_id,omitempty"`
}

// UserRef names a user.
type UserRef = wire.UserRef

// RingSettings are a call's ring timeouts in ms as a request sends them: a zero field is left out, so the
// call keeps its default. An answer carries them as wire.RingSettings (Call.Settings.Ring).
type RingSettings struct {
	AutoCancelTimeoutMs   int `json:"auto_cancel_timeout_ms,omitempty"`
	IncomingCallTimeoutMs int `json:"incoming_call_timeout_ms,omitempty"`
}

// Participant is a user in the call.
type Participant = wire.Participant

// Session is who accepted, rejected, missed and joined.
type Session = wire.Session

// Call is a call as the API answers it.
type Call = wire.Call

// Member is a member of a call.
type Member = wire.Member

// CallState is the answer of get-or-create, get and every action.
type CallState = wire.CallState

// MemberRequest names a member in a request.
type MemberRequest = wire.MemberRequest

// CallData is the data of a get-or-create.
type CallData struct {
	CreatedByID      string          `json:"created_by_id,omitempty"`
	Members          []MemberRequest `json:"members,omitempty"`
	Custom           map[string]any  `json:"custom,omitempty"`
	SettingsOverride *struct {
		Ring *RingSettings `json:"ring,omitempty"`
	} `json:"settings_override,omitempty"`
	StartsAt *time.Time `json:"starts_at,omitempty"`
	Team     string     `json:"team,omitempty"`
}

// RingFor sets the ring's timeout (both auto_cancel_timeout_ms and incoming_call_timeout_ms).
func (d *CallData) RingFor(timeout time.Duration) {
	ms := int(timeout / time.Millisecond)
	d.SettingsOverride = &struct {
		Ring *RingSettings `json:"ring,omitempty"`
	}{Ring: &RingSettings{AutoCancelTimeoutMs: ms, IncomingCallTimeoutMs: ms}}
}

// GetOrCreate is the body of get-or-create.
type GetOrCreate struct {
	Ring   bool      `json:"ring,omitempty"`
	Notify bool      `json:"notify,omitempty"`
	Data   *CallData `json:"data,omitempty"`
}

// CallUpdate is the body of UpdateCall: fields left nil are left as they are.
type CallUpdate struct {
	StartsAt         *time.Time     `json:"starts_at,omitempty"`
	Custom           map[string]any `json:"custom,omitempty"`
	SettingsOverride *struct {
		Ring *RingSettings `json:"ring,omitempty"`
	} `json:"settings_override,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// ListItem is one call of ListCalls.
type ListItem = wire.ListItem

// Reject reasons.
const (
	ReasonDecline = wire.ReasonDecline
	ReasonBusy    = wire.ReasonBusy
	ReasonCancel  = wire.ReasonCancel
	ReasonTimeout = wire.ReasonTimeout
)

// Calling states of ListCalls.
const (
	StateRinging = wire.StateRinging
	StateJoined  = wire.StateJoined
	StateIdle    = wire.StateIdle
	StateEnded   = wire.StateEnded
)

// As returns a client that acts for userID with this client's server token: the user_id every request
// names (docs/API.md, "Who acts"). With a user token, requests naming another user are refused with 403.
func (c *Client) As(userID string) *UserClient { return &UserClient{c: c, user: userID} }

// RegisterDevice registers a token; created is false when it was registered before (now this user's).
func (c *Client) RegisterDevice(ctx context.Context, d DeviceRequest) (dev Device, created bool, err error) {
	status, err := c.do(ctx, http.MethodPost, "/v1/devices", nil, d, &dev)
	return dev, status == http.StatusCreated, err
}

// ListDevices lists the acting user's devices (userID only with a server token, else "").
func (c *Client) ListDevices(ctx context.Context, userID string) ([]Device, error) {
	var out struct {
		Devices []Device `json:"devices"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/devices", userQuery(userID), nil, &out)
	return out.Devices, err
}

// DeleteDevice removes a token of the acting user (userID only with a server token, else "").
func (c *Client) DeleteDevice(ctx context.Context, token, userID string) error {
	q := userQuery(userID)
	q.Set("id", token)
	_, err := c.do(ctx, http.MethodDelete, "/v1/devices", q, nil, nil)
	return err
}

// PushPreferences are a user's push preferences (docs/API.md, "Push preferences"): CallLevel "all" or
// "none", and a snooze until DisabledUntil (nil: none). UserID is the user; send it only with a server token.
type PushPreferences struct {
	CallLevel     string     `json:"call_level,omitempty"`
	DisabledUntil *time.Time `json:"disabled_until"`
	UserID        string     `json:"user_id,omitempty"`
}

// SetPushPreferences replaces the acting user's push preferences and returns them as stored.
func (c *Client) SetPushPreferences(ctx context.Context, p PushPreferences) (PushPreferences, error) {
	var out PushPreferences
	_, err := c.do(ctx, http.MethodPost, "/v1/push_preferences", nil, p, &out)
	return out, err
}

// GetPushPreferences reads the acting user's push preferences (userID only with a server token, else "").
func (c *Client) GetPushPreferences(ctx context.Context, userID string) (PushPreferences, error) {
	var out PushPreferences
	_, err := c.do(ctx, http.MethodGet, "/v1/push_preferences", userQuery(userID), nil, &out)
	return out, err
}

// GetOrCreateCall gets or creates the call typ:id.
func (c *Client) GetOrCreateCall(ctx context.Context, typ, id string, req GetOrCreate) (CallState, error) {
	var st CallState
	_, err := c.do(ctx, http.MethodPost, callPath(typ, id, ""), nil, req, &st)
	return st, err
}

// UpdateCall changes the call's starts_at, custom or ring settings (PATCH; members hear call.updated). It
// needs the right to end the call.
func (c *Client) UpdateCall(ctx context.Context, typ, id string, u CallUpdate) (CallState, error) {
	var st CallState
	_, err := c.do(ctx, http.MethodPatch, callPath(typ, id, ""), nil, u, &st)
	return st, err
}

// GetCall reads the call typ:id.
func (c *Client) GetCall(ctx context.Context, typ, id string) (CallState, error) {
	var st CallState
	_, err := c.do(ctx, http.MethodGet, callPath(typ, id, ""), nil, nil, &st)
	return st, err
}

// Ring rings members of an existing call (none: every member but the acting user).
func (c *Client) Ring(ctx context.Context, typ, id string, members ...string) (CallState, error) {
	return c.action(ctx, typ, id, "ring", map[string]any{"members_ids": members})
}

// Accept accepts the ring.
func (c *Client) Accept(ctx context.Context, typ, id string) (CallState, error) {
	return c.action(ctx, typ, id, "accept", map[string]any{})
}

// Ringing acknowledges that the acting user's device rings (its ring push arrived and the phone shows the
// incoming call): the first one in a ring sends call.ringing, so the caller can show "Ringing…". A repeat in
// the same ring changes nothing; by a member not being rung it is a 409.
func (c *Client) Ringing(ctx context.Context, typ, id string) (CallState, error) {
	return c.action(ctx, typ, id, "ringing", map[string]any{})
}

// Reject rejects the ring with reason (ReasonDecline, ...); the caller rejecting cancels the ring.
func (c *Client) Reject(ctx context.Context, typ, id, reason string) (CallState, error) {
	return c.action(ctx, typ, id, "reject", map[string]any{"reason": reason})
}

// Join joins the call (accepting first when rung).
func (c *Client) Join(ctx context.Context, typ, id string) (CallState, error) {
	return c.action(ctx, typ, id, "join", map[string]any{})
}

// Leave leaves the call; the caller leaving before any accept cancels the ring.
func (c *Client) Leave(ctx context.Context, typ, id string) (CallState, error) {
	return c.action(ctx, typ, id, "leave", map[string]any{})
}

// MarkEnded ends the call for everyone.
func (c *Client) MarkEnded(ctx context.Context, typ, id string) (CallState, error) {
	return c.action(ctx, typ, id, "mark_ended", map[string]any{})
}

// UpdateMembers adds or changes members and removes others.
func (c *Client) UpdateMembers(ctx context.Context, typ, id string, update []MemberRequest, remove []string) (CallState, error) {
	return c.action(ctx, typ, id, "members", map[string]any{"update_members": update, "remove_members": remove})
}

// ListCalls lists the acting user's calls, newest first; state "" lists all (userID only with a server token).
func (c *Client) ListCalls(ctx context.Context, state, userID string) ([]ListItem, error) {
	q := userQuery(userID)
	if state != "" {
		q.Set("calling_state", state)
	}
	var out struct {
		Calls []ListItem `json:"calls"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/calls", q, nil, &out)
	return out.Calls, err
}

func (c *Client) action(ctx context.Context, typ, id, name string, body map[string]any) (CallState, error) {
	var st CallState
	_, err := c.do(ctx, http.MethodPost, callPath(typ, id, name), nil, body, &st)
	return st, err
}

// UserClient is a server-token client acting for one user.
type UserClient struct {
	c    *Client
	user string
}

// Accept accepts the ring as the user.
func (u *UserClient) Accept(ctx context.Context, typ, id string) (CallState, error) {
	return u.c.action(ctx, typ, id, "accept", map[string]any{"user_id": u.user})
}

// Ringing acknowledges, for the user, that its device rings.
func (u *UserClient) Ringing(ctx context.Context, typ, id string) (CallState, error) {
	return u.c.action(ctx, typ, id, "ringing", map[string]any{"user_id": u.user})
}

// Reject rejects the ring as the user.
func (u *UserClient) Reject(ctx context.Context, typ, id, reason string) (CallState, error) {
	return u.c.action(ctx, typ, id, "reject", map[string]any{"reason": reason, "user_id": u.user})
}

// Join joins the call as the user.
func (u *UserClient) Join(ctx context.Context, typ, id string) (CallState, error) {
	return u.c.action(ctx, typ, id, "join", map[string]any{"user_id": u.user})
}

// Leave leaves the call as the user.
func (u *UserClient) Leave(ctx context.Context, typ, id string) (CallState, error) {
	return u.c.action(ctx, typ, id, "leave", map[string]any{"user_id": u.user})
}

// ListCalls lists the user's calls.
func (u *UserClient) ListCalls(ctx context.Context, state string) ([]ListItem, error) {
	return u.c.ListCalls(ctx, state, u.user)
}

// Events follows the user's event stream.
func (u *UserClient) Events(ctx context.Context) *Events { return u.c.events(ctx, u.user) }

func callPath(typ, id, action string) string {
	p := "/v1/call/" + url.PathEscape(typ) + "/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

func userQuery(userID string) url.Values {
	q := url.Values{}
	if userID != "" {
		q.Set("user_id", userID)
	}
	return q
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// do sends one request and decodes a 2xx answer into out (when not nil), or returns the answer's *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) (int, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.httpClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		e := &Error{Status: res.StatusCode}
		if json.Unmarshal(raw, e) != nil || e.Code == "" {
			e.Code, e.Message = "unexpected", strings.TrimSpace(string(raw))
		}
		e.Status = res.StatusCode
		e.RetryAfter = retryAfter(res.Header)
		return res.StatusCode, fmt.Errorf("%s %s: %w", method, path, e)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}
