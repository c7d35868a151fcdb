package apns

import (
	"context"
	"errors"
	"strconv"

	"github.com/sideshow/apns2"

	"github.com/ringer-dev/ringer/providers"
)

// verdict maps APNs' answer (or the failure to get one) to what the worker should do (ARCHITECTURE.md,
// invariant 9). Apple's reasons are listed in "Handling notification responses from APNs":
//
//	200                                      delivered                                   Sent
//	410 Unregistered, ExpiredToken           token is dead since timestamp               Unregistered, InvalidSince
//	400 BadDeviceToken                       not a token (or one of the other env)       Unregistered
//	400 DeviceTokenNotForTopic               token of another app                        Unregistered
//	400 IdleTimeout                          connection idled out                        Retry
//	400 other (PayloadEmpty, BadTopic,       our request is wrong and stays wrong        Rejected
//	    BadPriority, BadExpirationDate, MissingTopic, TopicDisallowed, InvalidPushType, BadCollapseId, ...)
//	403 InvalidProviderToken, ExpiredProviderToken, MissingProviderToken, BadCertificate,
//	    BadCertificateEnvironment, Forbidden, UnrelatedKeyIdInToken, BadEnvironmentKeyIdInToken
//	                                         our key, team or environment                Retry, Reason names credentials
//	404 BadPath, 405 MethodNotAllowed        our request is wrong                        Rejected
//	413 PayloadTooLarge                      payload over 4 KB (5 KB VoIP)               Rejected
//	429 TooManyRequests                      too many pushes to one device               Retry
//	429 TooManyProviderTokenUpdates          we re-signed too often                      Retry, Reason names credentials
//	500 InternalServerError, 503 ServiceUnavailable, Shutdown                            Retry
//	network error, timeout, context end      transient                                   Retry
//
// BadTopic and TopicDisallowed are Rejected, not Unregistered: they say our APNS_TOPIC is wrong, and pruning
// every token for a configuration mistake would be unrecoverable. BadDeviceToken is Unregistered as API.md
// says, though Apple also answers it when a sandbox token meets production: keep APNS_ENVIRONMENT right.
func verdict(res *apns2.Response, err error) providers.Result {
	var pe *pushError
	switch {
	case errors.As(err, &pe):
		return providers.Result{Verdict: providers.Rejected, Reason: "InvalidPush", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return providers.Result{Verdict: providers.Retry, Reason: "Timeout", Err: err}
	case errors.Is(err, context.Canceled):
		return providers.Result{Verdict: providers.Retry, Reason: "Canceled", Err: err}
	case err != nil:
		// A transport failure, or an answer whose body apns2 could not read: nothing says the push arrived,
		// and a repeat is harmless (a device shows one ring per ring_id).
		return providers.Result{Verdict: providers.Retry, Reason: "Network", Err: err}
	case res == nil:
		return providers.Result{Verdict: providers.Retry, Reason: "NoResponse"}
	}

	r := providers.Result{Reason: res.Reason, ID: res.ApnsID}
	if r.Reason == "" {
		r.Reason = "HTTP_" + strconv.Itoa(res.StatusCode)
	}
	if res.StatusCode != apns2.StatusSent {
		r.Err = &Error{Status: res.StatusCode, Reason: res.Reason, ApnsID: res.ApnsID}
	}
	switch s := res.StatusCode; {
	case s == apns2.StatusSent:
		return providers.Result{Verdict: providers.Sent, ID: res.ApnsID}
	case s == 410:
		r.Verdict, r.InvalidSince = providers.Unregistered, res.Timestamp.Time
	case s == 400:
		switch res.Reason {
		case apns2.ReasonBadDeviceToken, apns2.ReasonDeviceTokenNotForTopic:
			r.Verdict = providers.Unregistered
		case apns2.ReasonIdleTimeout:
			r.Verdict = providers.Retry
		default:
			r.Verdict = providers.Rejected
		}
	case s == 403:
		r.Verdict, r.Reason = providers.Retry, "credentials: "+r.Reason
	case s == 429 && res.Reason == apns2.ReasonTooManyProviderTokenUpdates:
		r.Verdict, r.Reason = providers.Retry, "credentials: "+r.Reason
	case s == 429, s >= 500:
		r.Verdict = providers.Retry
	default:
		// 404 BadPath, 405 MethodNotAllowed, 413 PayloadTooLarge and any 4xx Apple adds later: this request
		// will be refused again as it is.
		r.Verdict = providers.Rejected
	}
	return r
}

// Error is APNs' refusal of one push, kept in Result.Err for logs.
type Error struct {
	Status int
	Reason string
	ApnsID string
}

func (e *Error) Error() string {
	return "apns: " + strconv.Itoa(e.Status) + " " + e.Reason + " (apns-id " + e.ApnsID + ")"
}
