package calls

import (
	"errors"
	"fmt"
	"time"

	"github.com/ringer-dev/ringer/queue"
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

// Ring reasons for reject.
const (
	ReasonDecline = "decline"
	ReasonBusy    = "busy"
	ReasonCancel  = "cancel"
	ReasonTimeout = "timeout"
)

// Calling states of GET /v1/calls.
const (
	StateRinging = "ringing"
	StateJoined  = "joined"
	StateIdle    = "idle"
	StateEnded   = "ended"
)

// Event types, also the push "type" field. Those a push carries are queue's, defined there once.
const (
	EventCreated      = "call.created"
	EventRing         = queue.EventRing
	EventNotification = queue.EventNotification
	EventAccepted     = queue.EventAccepted
	EventRejected     = queue.EventRejected
	EventMissed       = queue.EventMissed
	EventEnded        = queue.EventEnded
	EventMemberAdded  = "call.member_added"
	// EventRinging is a callee's acknowledgement that its device rings (POST .../ringing).
	EventRinging = "call.ringing"
	// EventUpdated is a change of starts_at, custom or settings (PATCH /v1/call/{type}/{id}).
	EventUpdated = "call.updated"
)

type UserRef struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
}

type RingSettings struct {
	AutoCancelTimeoutMs   int `json:"auto_cancel_timeout_ms"`
	IncomingCallTimeoutMs int `json:"incoming_call_timeout_ms"`
}

type Settings struct {
	Ring RingSettings `json:"ring"`
}

// SettingsOverride is the optional settings_override of get-or-create; zero fields keep the defaults.
type SettingsOverride struct {
	Ring *RingSettings `json:"ring,omitempty"`
}

type Participant struct {
	UserID   string    `json:"user_id"`
	JoinedAt time.Time `json:"joined_at"`
}

type Session struct {
	AcceptedBy map[string]time.Time `json:"accepted_by"`
	RejectedBy map[string]time.Time `json:"rejected_by"`
	MissedBy   map[string]time.Time `json:"missed_by"`
	// RingingBy holds, for the current ring, when each callee first acknowledged that its device rings.
	RingingBy    map[string]time.Time `json:"ringing_by"`
	Participants []Participant        `json:"participants"`
}

// Call is the call as API.md answers it.
type Call struct {
	CID       string         `json:"cid"`
	Type      string         `json:"type"`
	ID        string         `json:"id"`
	CreatedBy UserRef        `json:"created_by"`
	CreatedAt time.Time      `json:"created_at"`
	Custom    map[string]any `json:"custom"`
	Settings  Settings       `json:"settings"`
	StartsAt  *time.Time     `json:"starts_at"`
	Team      string         `json:"team"`
	Ringing   bool           `json:"ringing"`
	RingID    string         `json:"ring_id,omitempty"`
	EndedAt   *time.Time     `json:"ended_at"`
	Session   Session        `json:"session"`
}

type Member struct {
	UserID    string         `json:"user_id"`
	Role      string         `json:"role"`
	Custom    map[string]any `json:"custom"`
	CreatedAt time.Time      `json:"created_at"`
}

// MemberInput is a member as a request names it.
type MemberInput struct {
	UserID string         `json:"user_id"`
	Role   string         `json:"role,omitempty"`
	Custom map[string]any `json:"custom,omitempty"`
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

// ListItem is one entry of GET /v1/calls. Members holds at most ListMembers of the call's members, the
// acting user's own among them; MemberCount is how many the call has.
type ListItem struct {
	Call         Call     `json:"call"`
	Members      []Member `json:"members"`
	MemberCount  int      `json:"member_count"`
	CallingState string   `json:"calling_state"`
	CreatedByMe  bool     `json:"created_by_me"`
}

// Event is what SSE clients receive: API.md "Events".
type Event struct {
	// ID is the event's id in its user's replay stream (SSE id:), "" when events are not kept.
	ID        string    `json:"-"`
	Type      string    `json:"type"`
	CallCID   string    `json:"call_cid"`
	Call      Call      `json:"call"`
	User      UserRef   `json:"user"`
	CreatedAt time.Time `json:"created_at"`
}
