package calls

import (
	"errors"
	"fmt"
	"time"

	"github.com/ringer-dev/ringer/wire"
)

// Sentinel errors; api maps them to HTTP status codes in one place.
var (
	ErrNotFound  = errors.New("call not found")                   // 404
	ErrForbidden = errors.New("not allowed")                      // 403
	ErrEnded     = errors.New("call has ended")                   // 409
	ErrNotRung   = errors.New("user is not being rung")           // 409
	ErrRingOver  = errors.New("ring is over")                     // 409
	ErrNotMember = errors.New("user is not a member of the call") // 403
)

// FieldError is bad input naming the field at fault; api answers 400 with it.
type FieldError struct {
	Field   string
	Message string
	// Limit is true when the field passes one of API.md's size or count limits.
	Limit bool
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// Actor is who acts: a user, or the backend (Server) acting as UserID when it names one.
type Actor struct {
	UserID string
	Name   string
	Image  string
	Role   string // "user" or "admin"
	Teams  []string
	Server bool
}

// Ring timeouts, API.md: both 1,000 to 180,000 ms, default 30,000.
const (
	DefaultRingTimeoutMs = 30_000
	MinRingTimeoutMs     = 1_000
	MaxRingTimeoutMs     = 180_000
	MaxMembers           = 100_000
	MaxRingMembers       = 1_000
	MaxCustomBytes       = 5 * 1024
	// ListMembers is the most members each call of GET /v1/calls shows: the list is for a user's app to draw
	// its calls, and a user put into big calls by someone else must not be made to download them whole.
	ListMembers = 20
)

// Event types of the events only the API carries; those a push carries too (queue.EventRing, ...) are
// queue's, defined there once.
const (
	EventCreated     = "call.created"
	EventMemberAdded = "call.member_added"
	// EventRinging is a callee's acknowledgement that its device rings (POST .../ringing).
	EventRinging = "call.ringing"
	// EventUpdated is a change of starts_at, custom or settings (PATCH /v1/call/{type}/{id}).
	EventUpdated = "call.updated"
)

// The call's JSON shapes are the API's, defined once in wire for the server and the Go client.
type (
	UserRef      = wire.UserRef
	RingSettings = wire.RingSettings
	Settings     = wire.Settings
	Participant  = wire.Participant
	Session      = wire.Session
	Call         = wire.Call
	Member       = wire.Member
	// MemberInput is a member as a request names it.
	MemberInput = wire.MemberRequest
	// ListItem is one entry of GET /v1/calls. Members holds at most ListMembers of the call's members, the
	// acting user's own among them; MemberCount is how many the call has.
	ListItem = wire.ListItem
	// Event is what SSE clients receive: API.md "Events". ID is its id in its user's replay stream.
	Event = wire.Event
)

// SettingsOverride is the optional settings_override of get-or-create; zero fields keep the defaults.
type SettingsOverride struct {
	Ring *RingSettings `json:"ring,omitempty"`
}

// State is a call with its members: the answer of get, get-or-create and every transition.
type State struct {
	Call    Call     `json:"call"`
	Members []Member `json:"members"`
}

// CreateRequest is the body of get-or-create after decoding and validation.
type CreateRequest struct {
	Ring             bool
	Notify           bool
	Members          []MemberInput
	Custom           map[string]any
	SettingsOverride *SettingsOverride
	StartsAt         *time.Time
	Team             string
}

// UpdateRequest is the body of PATCH /v1/call/{type}/{id} after decoding and validation: nil fields are left
// as they are.
type UpdateRequest struct {
	// StartsAt moves the call's start; ClearStartsAt (starts_at: null) makes it unscheduled.
	StartsAt      *time.Time
	ClearStartsAt bool
	// Custom replaces the call's custom object whole.
	Custom map[string]any
	// SettingsOverride changes the ring timeouts it gives (non-zero), for the rings that start after it.
	SettingsOverride *SettingsOverride
}
