package fcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/auth"

	"github.com/ringer-dev/ringer/providers"
)

// verdict maps anything Send can fail with to what the worker should do (ARCHITECTURE.md, invariant 9).
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
	var ae *answerError
	var xe *transportError
	switch {
	case errors.As(err, &pe):
		return providers.Result{Verdict: providers.Rejected, Reason: "INVALID_PUSH", Err: err}
	case errors.As(err, &te):
		var oe *auth.Error
		switch {
		case errors.As(err, &oe) && oe.Response != nil:
			return retry(fmt.Sprintf("credentials: oauth token endpoint answered %d", oe.Response.StatusCode))
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
	case errors.As(err, &xe):
		// No answer, and the caller still waits: FCM's front end or the path to it is unavailable.
		return retry("UNAVAILABLE")
	case errors.As(err, &ae):
		r := ae.result()
		r.Err = err
		return r
	}
	// Not an answer from FCM: a message we could not encode, or a 2xx answer we could not read.
	return providers.Result{Verdict: providers.Rejected, Reason: "INVALID_PUSH", Err: err}
}

// answerError is FCM's answer to a send other than a 2xx.
type answerError struct {
	status     int
	retryAfter time.Duration
	// rpc is the google.rpc status: the answer's error.status, else the one the SDK paired with the HTTP status.
	rpc      string
	rpcGiven bool
	// fcm is the FcmError detail's errorCode, "" without one.
	fcm     string
	message string
	// tokenField says a field violation names message.token.
	tokenField bool
	// body is the answer as FCM wrote it, kept for the log when it carries no message.
	body string
}

func newAnswerError(status int, h http.Header, body []byte) *answerError {
	var a struct {
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
	_ = json.Unmarshal(body, &a) // a body that is not FCM's JSON leaves only the status to go on
	e := &answerError{
		status:     status,
		retryAfter: parseRetryAfter(h.Get("Retry-After"), time.Now()),
		rpc:        a.Error.Status,
		rpcGiven:   a.Error.Status != "",
		message:    a.Error.Message,
		body:       string(body),
	}
	if e.rpc == "" {
		e.rpc = statusCode(status)
	}
	for _, d := range a.Error.Details {
		if e.fcm == "" && d.Type == "type.googleapis.com/google.firebase.fcm.v1.FcmError" {
			e.fcm = d.ErrorCode
		}
		for _, v := range d.FieldViolations {
			e.tokenField = e.tokenField || v.Field == "message.token"
		}
	}
	return e
}

func (e *answerError) Error() string {
	msg := e.message
	if msg == "" {
		msg = e.body
	}
	return fmt.Sprintf("fcm: answered %d %s: %s", e.status, e.code(), msg)
}

// unauthenticated says FCM refused our access token (not merely the APNs keys in the project: those are a 401 too,
// and renewing the session for them costs one token fetch a second at most).
func (e *answerError) unauthenticated() bool {
	return e.status == http.StatusUnauthorized || e.rpc == "UNAUTHENTICATED"
}

// code is FCM's most specific name for the error: the FcmError errorCode, else the google.rpc status.
func (e *answerError) code() string {
	if e.fcm != "" {
		return e.fcm
	}
	if e.rpc == "CONFLICT" && !e.rpcGiven {
		return "HTTP_" + strconv.Itoa(e.status) // the SDK's CONFLICT for a bare 409 is no google.rpc code
	}
	return e.rpc
}

func (e *answerError) result() providers.Result {
	r := providers.Result{Reason: e.code()}
	switch {
	case e.fcm == "UNREGISTERED" || e.fcm == "SENDER_ID_MISMATCH":
		r.Verdict = providers.Unregistered
	case e.fcm == "INVALID_ARGUMENT" || e.rpc == "INVALID_ARGUMENT":
		// FCM names a bad token only in words ("The registration token is not a valid FCM registration
		// token") and, in some answers, a field violation on message.token; anything else is our payload.
		if e.aboutToken() {
			r.Verdict, r.Reason = providers.Unregistered, "INVALID_ARGUMENT: registration token"
		} else {
			r.Verdict = providers.Rejected
		}
	case e.fcm == "QUOTA_EXCEEDED" || e.rpc == "RESOURCE_EXHAUSTED" || e.status == http.StatusTooManyRequests:
		r.Verdict, r.RetryAfter = providers.Retry, e.retryAfter
	case e.fcm == "THIRD_PARTY_AUTH_ERROR" || e.fcm == "APNS_AUTH_ERROR":
		// The APNs certificate or key (or web push credentials) uploaded to the Firebase project is wrong:
		// every push to that platform fails until someone fixes the project, not the token.
		r.Verdict, r.Reason = providers.Retry, "credentials: "+r.Reason
	case e.rpc == "UNAUTHENTICATED" || e.rpc == "PERMISSION_DENIED" ||
		e.status == http.StatusUnauthorized || e.status == http.StatusForbidden:
		r.Verdict, r.Reason = providers.Retry, "credentials: "+r.Reason
	case e.fcm == "UNAVAILABLE" || e.fcm == "INTERNAL" ||
		e.rpc == "UNAVAILABLE" || e.rpc == "INTERNAL" || e.rpc == "DEADLINE_EXCEEDED" || e.status >= 500:
		r.Verdict, r.RetryAfter = providers.Retry, e.retryAfter
	case e.status == http.StatusNotFound:
		// A 404 without UNREGISTERED is a wrong endpoint or project id: configuration, never the token's fault.
		r.Verdict, r.Reason = providers.Retry, "NOT_FOUND: endpoint or project"
	default:
		// Another 4xx: FCM refused this request as it is, and sending it again cannot change that.
		r.Verdict = providers.Rejected
	}
	return r
}

// aboutToken reports whether an INVALID_ARGUMENT names the registration token rather than the payload.
func (e *answerError) aboutToken() bool {
	msg := e.message
	if msg == "" {
		msg = e.body
	}
	return e.tokenField || strings.Contains(strings.ToLower(msg), "registration token")
}

// statusCode is the google.rpc status the Firebase SDK gave an answer whose body names none.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "CONFLICT"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusInternalServerError:
		return "INTERNAL"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	return "UNKNOWN"
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
