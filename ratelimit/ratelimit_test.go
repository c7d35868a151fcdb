package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/ratelimit"
	"github.com/ringer-dev/ringer/tests/testredis"
)

func TestRingRateTakesAUnitOrAPlainNumberPerMinute(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ratelimit.Rate
	}{
		{"30/m", ratelimit.Rate{N: 30, Per: time.Minute}},
		{"30", ratelimit.Rate{N: 30, Per: time.Minute}},
		{"5/s", ratelimit.Rate{N: 5, Per: time.Second}},
		{" 600 / h ", ratelimit.Rate{N: 600, Per: time.Hour}},
		{"0", ratelimit.Rate{N: 0, Per: time.Minute}},
	} {
		got, err := ratelimit.ParseRate(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "fast", "-1", "30/d", "30/", "/m", "1.5/m"} {
		if _, err := ratelimit.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestAUserPastTheRateIsRefusedWithWhenToRetryAndOthersAreNot(t *testing.T) {
	rdb := testredis.Start(t).Client(t)
	l := ratelimit.New(rdb, ratelimit.Rate{N: 2, Per: time.Minute})
	ctx := context.Background()
	for i := range 2 {
		if err := l.AllowRing(ctx, "alice"); err != nil {
			t.Fatalf("ring %d within the rate: %v", i+1, err)
		}
	}
	err := l.AllowRing(ctx, "alice")
	var le *ratelimit.LimitedError
	if !errors.As(err, &le) || !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("third ring in a minute of a 2/m rate: %v, want a LimitedError", err)
	}
	if le.RetryAfter <= 0 || le.RetryAfter > 30*time.Second {
		t.Fatalf("RetryAfter %s, want within the 30 s one ring takes to come back", le.RetryAfter)
	}
	if err := l.AllowRing(ctx, "bob"); err != nil {
		t.Fatalf("another user is limited by alice's rings: %v", err)
	}
	if keys := rdb.Keys(ctx, "rate:ringer:{u:alice}:rings").Val(); len(keys) != 1 {
		t.Fatalf("alice's rate key: %v", keys)
	}
}

func TestARateOfZeroLimitsNobody(t *testing.T) {
	var l *ratelimit.Limiter = ratelimit.New(nil, ratelimit.Rate{N: 0, Per: time.Minute})
	if l != nil {
		t.Fatal("a zero rate made a limiter")
	}
	if err := l.AllowRing(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
}
