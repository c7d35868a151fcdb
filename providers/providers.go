// Package providers holds what every push provider shares: the push to send and the verdict that comes back.
// The fcm, apns and logsink subpackages speak the real protocols; the worker acts on verdicts and never parses
// provider errors (ARCHITECTURE.md, invariant 9).
package providers

import (
	"context"
	"time"
)

// Sender delivers one push through one provider.
type Sender interface {
	Send(ctx context.Context, p Push) Result
}

// Provider names as API.md spells a device's push_provider.
const (
	Firebase = "firebase"
	APN      = "apn"
)

// Kind is the shape a push takes on the wire (API.md, "Which device gets what").
type Kind int

const (
	// KindRing is call.ring: FCM data-only at high priority with TTL; APNs VoIP (VoIP token) or alert (regular token).
	KindRing Kind = iota
	// KindAlert is call.notification and call.missed: FCM notification plus data; APNs alert.
	KindAlert
	// KindStop tells a ringing device to stop: FCM data-only at high priority; APNs background, priority 5.
	KindStop
)

func (k Kind) String() string {
	switch k {
	case KindRing:
		return "ring"
	case KindAlert:
		return "alert"
	case KindStop:
		return "stop"
	}
	return "unknown"
}

// Push is one message to one device.
type Push struct {
	Token string
	// VoIP is true when Token is an APNs VoIP token.
	VoIP bool
	Kind Kind
	// Data holds the string fields of API.md's push payload table (sender, type, call_cid, ...).
	Data map[string]string
	// Title and Body are the rendered alert text: KindAlert, and a ring to an APNs regular token.
	Title, Body string
	// Expires is when the push is no longer worth delivering (a ring's end): FCM TTL, apns-expiration.
	// Zero leaves the provider's default.
	Expires time.Time
	// CollapseID groups pushes a device should show once (APNs apns-collapse-id, FCM collapse key); optional.
	CollapseID string
}

// Verdict is what a provider's answer means for the worker.
type Verdict int

const (
	Sent         Verdict = iota // accepted by the provider
	Retry                       // transient: try again, after RetryAfter when set
	Unregistered                // the token is dead: prune it
	Rejected                    // the payload is wrong: retrying cannot help
)

func (v Verdict) String() string {
	switch v {
	case Sent:
		return "sent"
	case Retry:
		return "retry"
	case Unregistered:
		return "unregistered"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Result is a provider's answer to one push.
type Result struct {
	Verdict Verdict
	// RetryAfter, with Retry, is the least time to wait before trying again (429 Retry-After); zero when unknown.
	RetryAfter time.Duration
	// InvalidSince, with Unregistered, is when the provider says the token stopped being valid (APNs 410
	// timestamp); zero when the provider does not say.
	InvalidSince time.Time
	// Reason is the provider's own error code ("Unregistered", "UNAVAILABLE"), for logs and metrics.
	Reason string
	// ID is the provider's id for an accepted push (apns-id, FCM message name).
	ID string
	// Err is the underlying error, if any, for logs.
	Err error
}

// TokenSuffix is how logs name a device token: its last few characters, enough to tell a user's devices apart,
// never the whole token (a token is a credential to push to that phone).
func TokenSuffix(token string) string {
	keep := 6
	if len(token) < 2*keep {
		keep = len(token) / 2
	}
	return "…" + token[len(token)-keep:]
}
