package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/ratelimit"
)

// Error codes of the error body. They are part of the contract callers see, so they are named once here.
const (
	CodeInvalidJSON          = "invalid_json"           // the body is not one well-formed JSON value of the right shape
	CodeUnknownField         = "unknown_field"          // the body names a field the endpoint does not know
	CodeInvalidField         = "invalid_field"          // a field's value is missing, malformed or out of range
	CodeLimitExceeded        = "limit_exceeded"         // a size or count limit of API.md is passed
	CodeUnsupportedMediaType = "unsupported_media_type" // a body that says it is not JSON
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodeUnavailable          = "unavailable"
	CodeOverloaded           = "overloaded"   // a ring refused up front: rings cannot be delivered in time (Retry-After)
	CodeRateLimited          = "rate_limited" // a ring refused because its caller starts rings faster than RINGER_RING_RATE (Retry-After)
	CodeNotReady             = "not_ready"
	CodeInternal             = "internal"
)

// errorBody is the body of every non-2xx answer (API.md, "Errors").
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// apiError is an answer decided inside api (a bad request, a bad token): it already knows its status and code.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// fieldErr is a 400 naming the field at fault in JSON path style (data.members[2].user_id); the field leads
// the message so a reader finds it without knowing the code.
func fieldErr(code, field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: field + ": " + fmt.Sprintf(format, args...)}
}

func unauthorized(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusForbidden, Code: CodeForbidden, Message: fmt.Sprintf(format, args...)}
}

// toErrorBody maps any error a handler meets to the answer's status and body. It is the one place where
// errors become HTTP (STYLE.md): handlers never pick a status themselves.
func toErrorBody(err error) errorBody {
	var ae *apiError
	var fe *calls.FieldError
	var dfe *devices.FieldError
	switch {
	case errors.As(err, &ae):
		return errorBody{Code: ae.Code, Message: ae.Message, Status: ae.Status}
	case errors.As(err, &fe):
		code := CodeInvalidField
		if fe.Limit {
			code = CodeLimitExceeded
		}
		return errorBody{Code: code, Message: fe.Error(), Status: http.StatusBadRequest}
	case errors.As(err, &dfe):
		return errorBody{Code: CodeInvalidField, Message: dfe.Field + ": " + dfe.Message, Status: http.StatusBadRequest}
	case errors.Is(err, calls.ErrNotFound):
		return errorBody{Code: CodeNotFound, Message: "The call does not exist.", Status: http.StatusNotFound}
	case errors.Is(err, devices.ErrNotFound):
		return errorBody{Code: CodeNotFound, Message: "The device is not registered.", Status: http.StatusNotFound}
	case errors.Is(err, calls.ErrForbidden):
		return errorBody{Code: CodeForbidden, Message: "You are not allowed to do this on this call.", Status: http.StatusForbidden}
	case errors.Is(err, calls.ErrNotMember):
		return errorBody{Code: CodeForbidden, Message: "You are not a member of this call.", Status: http.StatusForbidden}
	case errors.Is(err, calls.ErrEnded):
		return errorBody{Code: CodeConflict, Message: "The call has ended.", Status: http.StatusConflict}
	case errors.Is(err, calls.ErrNotRung):
		return errorBody{Code: CodeConflict, Message: "You are not being rung on this call.", Status: http.StatusConflict}
	case errors.Is(err, calls.ErrTooManyStreams):
		return errorBody{Code: CodeUnavailable, Message: "This server holds its most event streams (RINGER_SSE_MAX); try again later.", Status: http.StatusServiceUnavailable}
	case errors.Is(err, calls.ErrRingOver):
		return errorBody{Code: CodeConflict, Message: "The ring is over.", Status: http.StatusConflict}
	case errors.Is(err, queue.ErrOverloaded):
		return errorBody{Code: CodeOverloaded, Message: "Rings cannot be delivered in time now; nothing was stored. Retry after Retry-After seconds, or tell the caller.", Status: http.StatusServiceUnavailable}
	case errors.Is(err, ratelimit.ErrLimited):
		return errorBody{Code: CodeRateLimited, Message: "You start rings faster than this server allows (RINGER_RING_RATE); nothing was stored. Retry after Retry-After seconds.", Status: http.StatusTooManyRequests}
	case isUnavailable(err):
		return errorBody{Code: CodeUnavailable, Message: "The service is unavailable; try again.", Status: http.StatusServiceUnavailable}
	}
	return errorBody{Code: CodeInternal, Message: "Internal error.", Status: http.StatusInternalServerError}
}

// isUnavailable tells the errors a retry may cure: Redis or the network is down or slow, or the request ran
// out of time. Callers get 503 for these rather than 500, so they and load balancers know to retry.
func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	if redis.IsLoadingError(err) || redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) || redis.IsReadOnlyError(err) {
		return true
	}
	// The Is* helpers above see their prefix only on go-redis' own types or an unwrapped message; a server
	// reply wrapped with context is still a redis.Error, so check its prefix that way too.
	for _, prefix := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY "} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// writeError answers err with its mapped status and body; only 5xx that are not ours to explain are logged
// with the cause, since the body hides it.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	body := toErrorBody(err)
	var over *queue.OverloadedError
	if errors.As(err, &over) {
		w.Header().Set("Retry-After", strconv.Itoa(int(over.RetryAfter/time.Second)))
	}
	var limited *ratelimit.LimitedError
	if errors.As(err, &limited) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(limited.RetryAfter)))
	}
	switch {
	case body.Status == http.StatusInternalServerError:
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case body.Status == http.StatusServiceUnavailable:
		log.WarnContext(r.Context(), "request unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, body.Status, body)
}

// retryAfterSeconds is d as Retry-After takes it: whole seconds, rounded up so a client that waits them is
// not refused again, and at least one.
func retryAfterSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here (a value JSON cannot hold); the body stays well-formed.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Code: CodeInternal, Message: "Internal error.", Status: status})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
