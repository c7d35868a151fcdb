// Package wire holds the JSON shapes of ringer's HTTP API (docs/API.md) that both sides of it speak: the
// server answers with them and the Go client (package client) decodes them. Defining them once keeps the
// client from drifting away from what the server sends.
//
// It imports only the standard library, so that the client, which a call service imports, takes on nothing
// of the server's dependencies. Request bodies are not here, but for the member a request names: the server
// decodes them strictly into types of its own (api), and the client's omit what the caller left out.
package wire

import "time"

// Device is one push token of one user, as the device endpoints answer it.
type Device struct {
	ID               string `json:"id"`
	PushProvider     string `json:"push_provider"`
	VoIPToken        bool   `json:"voip_token"`
	PushProviderName string `json:"push_provider_name,omitempty"`
	// Locale is the language the device's user reads (BCP 47, e.g. de-AT), which picks the push text; empty
	// for the default.
	Locale    string    `json:"locale,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UserID    string    `json:"user_id"`
}

// UserRef names a user.
type UserRef struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
}

// RingSettings are a call's ring timeouts in ms.
type RingSettings struct {
	AutoCancelTimeoutMs   int `json:"auto_cancel_timeout_ms"`
	IncomingCallTimeoutMs int `json:"incoming_call_timeout_ms"`
}

// Settings are a call's settings.
type Settings struct {
	Ring RingSettings `json:"ring"`
}

// Participant is a user in the call.
type Participant struct {
	UserID   string    `json:"user_id"`
	JoinedAt time.Time `json:"joined_at"`
}

// Session is who accepted, rejected, missed and joined.
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

// Member is a member of a call.
type Member struct {
	UserID    string         `json:"user_id"`
	Role      string         `json:"role"`
	Custom    map[string]any `json:"custom"`
	CreatedAt time.Time      `json:"created_at"`
}

// CallState is the answer of get-or-create, get and every action: the call with its members. Created is
// true only for a get-or-create that made the call.
type CallState struct {
	Created bool     `json:"created"`
	Call    Call     `json:"call"`
	Members []Member `json:"members"`
}

// MemberRequest names a member in a request (get-or-create's data.members, update_members): fields left
// out keep their default, or what the member had.
type MemberRequest struct {
	UserID string         `json:"user_id"`
	Role   string         `json:"role,omitempty"`
	Custom map[string]any `json:"custom,omitempty"`
}

// Event is one event of the stream (API.md, "Events").
type Event struct {
	// ID is the event's id in its user's replay stream (the SSE id:, a Redis stream id such as
	// "1733480000000-0"), "" when the server keeps no events for replay. It is not part of the JSON.
	ID        string    `json:"-"`
	Type      string    `json:"type"`
	CallCID   string    `json:"call_cid"`
	Call      Call      `json:"call"`
	User      UserRef   `json:"user"`
	CreatedAt time.Time `json:"created_at"`
}

// ListItem is one entry of GET /v1/calls. Members holds at most a few of the call's members, the acting
// user's own among them; MemberCount is how many the call has.
type ListItem struct {
	Call         Call     `json:"call"`
	Members      []Member `json:"members"`
	MemberCount  int      `json:"member_count"`
	CallingState string   `json:"calling_state"`
	CreatedByMe  bool     `json:"created_by_me"`
}

// Reasons of a reject (API.md).
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
