package fcm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"

	"github.com/ringer-dev/ringer/providers"
)

// verdict maps anything Send can fail with to what the worker should do (ARCHITECTURE.md, invariant 9).
//
// err must be the SDK's error as returned, not wrapped: the SDK's predicates (messaging.IsUnregistered,
// errorutils.IsInvalidArgument, ...) look at its own type and do not unwrap.
//
// FCM's documented errors (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode) and what they mean here:
//
//	404 UNREGISTERED                 token is dead                         Unregistered
//	403 SENDER_ID_MISMATCH           token of another project              Unregistered
//	400 INVALID_ARGUMENT, the token  "not a valid FCM registration token"  Unregistered
//	400 INVALID_ARGUMENT, other      our payload is wrong                  Rejected
//	429 QUOTA_EXCEEDED               slow down                             Retry after Retry-After
//	503 UNAVAILABLE, 500 INTERNAL    FCM's trouble                         Retry (after Retry-After if given)
//	401 THIRD_PARTY_AUTH_ERROR       APNs/web push keys in Firebase        Retry, Reason names credentials
//	401/403 other                    our OAuth token or IAM role           Retry, Reason names credentials
//	token_uri failing                our service account                   Retry, Reason names credentials
//	network error, timeout, ctx end  transient                             Retry
func verdict(err error) providers.Result {
	if err == nil {
		return providers.Result{Verdict: providers.Sent}
	}
	retry := func(reason string) providers.Result {
		return providers.Result{Verdict: providers.Retry, Reason: reason, Err: err}
	}

	var pe *pushError
	var te *tokenError
	switch {
	case errors.As(err, &pe):
		return providers.Result{Verdict: providers.Rejected, Reason: "INVALID_PUSH", Err: err}
	case errors.As(err, &te):
		var ae *auth.Error
		switch {
		case errors.As(err, &ae) && ae.Response != nil:
			return retry(fmt.Sprintf("credentials: oauth token endpoint answered %d", ae.Response.StatusCode))
		case errors.Is(err, context.DeadlineExceeded):
			return retry("credentials: oauth token: DEADLINE_EXCEEDED")
		case errors.Is(err, context.Canceled):
			return retry("credentials: oauth token: CANCELLED")
		}
		return retry("credentials: oauth token")
	case errors.Is(err, context.DeadlineExceeded):
		return retry("DEADLINE_EXCEEDED")
	case errors.Is(err, context.Canceled):
		return retry("CANCELLED")
	}

	answer := readAnswer(err)
	r := providers.Result{Err: err, Reason: answer.code(err)}
	switch {
	case messaging.IsUnregistered(err):
		r.Verdict = providers.Unregistered
	case messaging.IsSenderIDMismatch(err):
		r.Verdict = providers.Unregistered
	case messaging.IsInvalidArgument(err) || errorutils.IsInvalidArgument(err):
		// FCM names a bad token only in words ("The registration token is not a valid FCM registration
		// token") and, in some answers, a field violation on message.token; anything else is our payload.
		if answer.aboutToken(err) {
			r.Verdict, r.Reason = providers.Unregistered, "INVALID_ARGUMENT: registration token"
		} else {
			r.Verdict = providers.Rejected
		}
	case messaging.IsQuotaExceeded(err) || errorutils.IsResourceExhausted(err) || answer.status == http.StatusTooManyRequests:
		r.Verdict, r.RetryAfter = providers.Retry, answer.retryAfter
	case messaging.IsThirdPartyAuthError(err):
		// The APNs certificate or key (or web push credentials) uploaded to the Firebase project is wrong:
		// every push to that platform fails until someone fixes the project, not the token.
		r.Verdict, r.Reason = providers.Retry, "credentials: "+r.Reason
	case errorutils.IsUnauthenticated(err) || errorutils.IsPermissionDenied(err) ||
		answer.status == http.StatusUnauthorized || answer.status == http.StatusForbidden:
		r.Verdict, r.Reason = providers.Retry, "credentials: "+r.Reason
	case messaging.IsUnavailable(err) || messaging.IsInternal(err) ||
		errorutils.IsUnavailable(err) || errorutils.IsInternal(err) || errorutils.IsDeadlineExceeded(err) ||
		answer.status >= 500:
		r.Verdict, r.RetryAfter = providers.Retry, answer.retryAfter
	case answer.status == 0 && errorutils.IsUnknown(err):
		// The SDK turns every transport failure into UNKNOWN, UNAVAILABLE or DEADLINE_EXCEEDED with no response.
		r.Verdict = providers.Retry
	case answer.status == http.StatusNotFound:
		// A 404 without UNREGISTERED is a wrong endpoint or project id: configuration, never the token's fault.
		r.Verdict, r.Reason = providers.Retry, "NOT_FOUND: endpoint or project"
	case answer.status != 0:
		// Another 4xx: FCM refused this request as it is, and sending it again cannot change that.
		r.Verdict = providers.Rejected
	default:
		// Not an answer from FCM: the SDK refused the message before sending it, or could not read a 2xx answer.
		r.Verdict, r.Reason = providers.Rejected, "INVALID_PUSH"
	}
	return r
}

// answer is what an FCM error response said, read from the HTTP response the SDK keeps.
type answer struct {
	status     int
	retryAfter time.Duration
	body       struct {
		Error struct {
			Status  string `json:"status"`
			Message string `json:"message"`
			Details []struct {
				Type            string `json:"@type"`
				ErrorCode       string `json:"errorCode"`
				FieldViolations []struct {
					Field string `json:"field"`
				} `json:"fieldViolations"`
			} `json:"details"`
		} `json:"error"`
	}
}

func readAnswer(err error) answer {
	var a answer
	resp := errorutils.HTTPResponse(err)
	if resp == nil {
		return a
	}
	a.status = resp.StatusCode
	a.retryAfter = parseRetryAfter(providerRetryAfter(resp.Header), time.Now())
	if resp.Body != nil {
		b, _ := io.ReadAll(resp.Body)
		// Put the body back for whoever logs Result.Err's response after us.
		resp.Body = io.NopCloser(bytes.NewReader(b))
		_ = json.Unmarshal(b, &a.body) // a body that is not FCM's JSON leaves only the status to go on
	}
	return a
}

// code is FCM's most specific name for the error: the FcmError errorCode, else the google.rpc status.
func (a answer) code(err error) string {
	for _, d := range a.body.Error.Details {
		if d.Type == "type.googleapis.com/google.firebase.fcm.v1.FcmError" && d.ErrorCode != "" {
			return d.ErrorCode
		}
	}
	if a.body.Error.Status != "" {
		return a.body.Error.Status
	}
	if c := platformCode(err); c != "" {
		return c
	}
	if a.status != 0 {
		return "HTTP_" + strconv.Itoa(a.status)
	}
	return "UNKNOWN"
}

// aboutToken reports whether an INVALID_ARGUMENT names the registration token rather than the payload.
func (a answer) aboutToken(err error) bool {
	for _, d := range a.body.Error.Details {
		for _, v := range d.FieldViolations {
			if v.Field == "message.token" {
				return true
			}
		}
	}
	msg := a.body.Error.Message
	if msg == "" {
		msg = err.Error() // the SDK uses the answer's message as the error text
	}
	return strings.Contains(strings.ToLower(msg), "registration token")
}

// platformCode names the SDK's google.rpc code for an error that carries no readable body (transport errors):
// the first code whose errorutils predicate holds, "" for none.
func platformCode(err error) string {
	for _, c := range []struct {
		is   func(error) bool
		code string
	}{
		{errorutils.IsDeadlineExceeded, "DEADLINE_EXCEEDED"},
		{errorutils.IsUnavailable, "UNAVAILABLE"},
		{errorutils.IsInternal, "INTERNAL"},
		{errorutils.IsInvalidArgument, "INVALID_ARGUMENT"},
		{errorutils.IsUnauthenticated, "UNAUTHENTICATED"},
		{errorutils.IsPermissionDenied, "PERMISSION_DENIED"},
		{errorutils.IsNotFound, "NOT_FOUND"},
		{errorutils.IsResourceExhausted, "RESOURCE_EXHAUSTED"},
		{errorutils.IsUnknown, "UNKNOWN"},
	} {
		if c.is(err) {
			return c.code
		}
	}
	return ""
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date. Zero when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
