package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/ratelimit"
	"github.com/ringer-dev/ringer/wire"
)

func TestErrorsMapToStatusAndCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("accept default:abc by bob: %w", err) }
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"field error", &calls.FieldError{Field: "data.members", Message: "too many"}, 400, wire.CodeInvalidField},
		{"wrapped field error", wrap(&calls.FieldError{Field: "data.custom", Message: "bad"}), 400, wire.CodeInvalidField},
		{"device field error", wrap(&devices.FieldError{Field: "push_provider", Message: "is bad"}), 400, wire.CodeInvalidField},
		{"api error", fieldErr(wire.CodeLimitExceeded, "body", "too big"), 400, wire.CodeLimitExceeded},
		{"not found", wrap(calls.ErrNotFound), 404, wire.CodeNotFound},
		{"device not found", wrap(devices.ErrNotFound), 404, wire.CodeNotFound},
		{"forbidden", wrap(calls.ErrForbidden), 403, wire.CodeForbidden},
		{"not member", wrap(calls.ErrNotMember), 403, wire.CodeForbidden},
		{"ended", wrap(calls.ErrEnded), 409, wire.CodeConflict},
		{"not rung", wrap(calls.ErrNotRung), 409, wire.CodeConflict},
		{"ring over", wrap(calls.ErrRingOver), 409, wire.CodeConflict},
		{"overloaded", wrap(&queue.OverloadedError{Backlog: 3 * time.Second, Budget: 2 * time.Second, RetryAfter: time.Second}), 503, wire.CodeOverloaded},
		{"rate limited", wrap(&ratelimit.LimitedError{Rate: ratelimit.DefaultRate, RetryAfter: 1500 * time.Millisecond}), 429, wire.CodeRateLimited},
		{"redis closed", wrap(redis.ErrClosed), 503, wire.CodeUnavailable},
		{"redis pool timeout", wrap(redis.ErrPoolTimeout), 503, wire.CodeUnavailable},
		{"connection refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), 503, wire.CodeUnavailable},
		{"deadline", wrap(context.DeadlineExceeded), 503, wire.CodeUnavailable},
		{"redis loading", wrap(redisErr("LOADING Redis is loading the dataset in memory")), 503, wire.CodeUnavailable},
		{"cluster down", wrap(redisErr("CLUSTERDOWN The cluster is down")), 503, wire.CodeUnavailable},
		{"other", errors.New("lua script: attempt to index a nil value"), 500, wire.CodeInternal},
		{"wrapped other", wrap(errors.New("boom")), 500, wire.CodeInternal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := toErrorBody(c.err)
			if b.Status != c.status || b.Code != c.code || b.Message == "" {
				t.Errorf("toErrorBody(%v) = %+v, want %d %s", c.err, b, c.status, c.code)
			}
			if c.status == 500 && strings.Contains(b.Message, "boom") {
				t.Errorf("a 500 message leaks the cause: %q", b.Message)
			}
		})
	}
}

// redisErr is a server error reply as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (e redisErr) RedisError()   {}

func TestStoreErrorsReachTheCallerMapped(t *testing.T) {
	e := newEnv(t)
	e.calls.put("default", "abc", "alice", "alice", "bob")
	bob := userToken(t, "bob")
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{calls.ErrEnded, 409, wire.CodeConflict},
		{calls.ErrNotMember, 403, wire.CodeForbidden},
		{&calls.FieldError{Field: "members_ids[0]", Message: "is not a member"}, 400, wire.CodeInvalidField},
		{redis.ErrClosed, 503, wire.CodeUnavailable},
		{errors.New("boom"), 500, wire.CodeInternal},
	} {
		e.calls.err = c.err
		wantError(t, e.do("POST", "/v1/call/default/abc/accept", bob, ""), c.status, c.code, "")
	}
	if !strings.Contains(e.logs.String(), "boom") {
		t.Errorf("the 500's cause was not logged:\n%s", e.logs)
	}
	e.calls.err = nil
	wantError(t, e.do("POST", "/v1/call/default/nope/accept", bob, ""), 404, wire.CodeNotFound, "")
}

func TestRetryAfterIsWholeSecondsRoundedUpAndAtLeastOne(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {2 * time.Second, 2}, {59*time.Second + time.Millisecond, 60}} {
		if got := retryAfterSeconds(c.d); got != c.want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestPanicIsAnswered500WithTheBody(t *testing.T) {
	e := newEnv(t)
	e.calls.panicWith = "kaboom"
	wantError(t, e.do("GET", "/v1/calls", userToken(t, "alice"), ""), http.StatusInternalServerError, wire.CodeInternal, "")
	if !strings.Contains(e.logs.String(), "kaboom") {
		t.Errorf("panic not logged:\n%s", e.logs)
	}
}
