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
	"github.com/ringer-dev/ringer/wire"
)

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
	return &apiError{Status: http.StatusUnauthorized, Code: wire.CodeUnauthorized, Message: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusForbidden, Code: wire.CodeForbidden, Message: fmt.Sprintf(format, args...)}
}

// sentinelAnswer pairs a sentinel error with the answer it gets.
type sentinelAnswer struct {
	err     error
	code    string
	message string
	status  int
}

// sentinelAnswers is the answer to each sentinel error of the packages api calls, in the order toErrorBody
// checks them with errors.Is. It is built per call, not kept in a package variable, so that no code can
// change the mapping behind the handlers' back; only a failing request pays for it.
func sentinelAnswers() []sentinelAnswer {
	return []sentinelAnswer{
		{calls.ErrNotFound, wire.CodeNotFound, "The call does not exist.", http.StatusNotFound},
		{devices.ErrNotFound, wire.CodeNotFound, "The device is not registered.", http.StatusNotFound},
		{calls.ErrForbidden, wire.CodeForbidden, "You are not allowed to do this on this call.", http.StatusForbidden},
		{calls.ErrNotMember, wire.CodeForbidden, "You are not a member of this call.", http.StatusForbidden},
		{calls.ErrEnded, wire.CodeConflict, "The call has ended.", http.StatusConflict},
		{calls.ErrNotRung, wire.CodeConflict, "You are not being rung on this call.", http.StatusConflict},
		{calls.ErrTooManyStreams, wire.CodeUnavailable, "This server holds its most event streams (RINGER_SSE_MAX); try again later.", http.StatusServiceUnavailable},
		{calls.ErrRingOver, wire.CodeConflict, "The ring is over.", http.StatusConflict},
		{queue.ErrOverloaded, wire.CodeOverloaded, "Rings cannot be delivered in time now; nothing was stored. Retry after Retry-After seconds, or tell the caller.", http.StatusServiceUnavailable},
		{ratelimit.ErrLimited, wire.CodeRateLimited, "You start rings faster than this server allows (RINGER_RING_RATE); nothing was stored. Retry after Retry-After seconds.", http.StatusTooManyRequests},
	}
}

// toErrorBody maps any error a handler meets to the answer's status and body. It is the one place where
// errors become HTTP (STYLE.md): handlers never pick a status themselves.
func toErrorBody(err error) wire.ErrorBody {
	var ae *apiError
	var fe *calls.FieldError
	var dfe *devices.FieldError
	switch {
	case errors.As(err, &ae):
		return wire.ErrorBody{Code: ae.Code, Message: ae.Message, Status: ae.Status}
	case errors.As(err, &fe):
		code := wire.CodeInvalidField
		if fe.Limit {
			code = wire.CodeLimitExceeded
		}
		return wire.ErrorBody{Code: code, Message: fe.Error(), Status: http.StatusBadRequest}
	case errors.As(err, &dfe):
		return wire.ErrorBody{Code: wire.CodeInvalidField, Message: dfe.Field + ": " + dfe.Message, Status: http.StatusBadRequest}
	}
	for _, s := range sentinelAnswers() {
		if errors.Is(err, s.err) {
			return wire.ErrorBody{Code: s.code, Message: s.message, Status: s.status}
		}
	}
	if isUnavailable(err) {
		return wire.ErrorBody{Code: wire.CodeUnavailable, Message: "The service is unavailable; try again.", Status: http.StatusServiceUnavailable}
	}
	return wire.ErrorBody{Code: wire.CodeInternal, Message: "Internal error.", Status: http.StatusInternalServerError}
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
		b, _ = json.Marshal(wire.ErrorBody{Code: wire.CodeInternal, Message: "Internal error.", Status: status})
	}
	writeBody(w, status, b)
}

// writeBody writes b, a JSON body, with its headers and a final newline.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
