package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0"}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestASecretUnder32BytesIsRefusedWithoutShowingIt(t *testing.T) {
	short := strings.Repeat("s", MinSecretBytes-1)
	_, err := loadConfig(envOf("RINGER_API_SECRET="+short), true)
	if err == nil || !strings.Contains(err.Error(), "RINGER_API_SECRET") || strings.Contains(err.Error(), short) {
		t.Fatalf("31-byte secret: %v, want an error naming RINGER_API_SECRET and not showing it", err)
	}
	if _, err := loadConfig(envOf("RINGER_API_SECRET="+short+"s"), true); err != nil {
		t.Errorf("32-byte secret: %v", err)
	}
	// A worker needs no secret, so it does not check one.
	if _, err := loadConfig(envOf("RINGER_API_SECRET=x"), false); err != nil {
		t.Errorf("worker with a short secret: %v", err)
	}
}

func TestHTTPTimeoutsHaveDefaultsAndTheWriteTimeoutOutlastsRequests(t *testing.T) {
	secret := "RINGER_API_SECRET=" + strings.Repeat("s", MinSecretBytes)
	c, err := loadConfig(envOf(secret), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPReadTimeout != 30*time.Second || c.HTTPWriteTimeout != 30*time.Second || c.HTTPIdleTimeout != 120*time.Second {
		t.Errorf("defaults: read %v, write %v, idle %v", c.HTTPReadTimeout, c.HTTPWriteTimeout, c.HTTPIdleTimeout)
	}
	c, err = loadConfig(envOf(secret, "RINGER_HTTP_READ_TIMEOUT=1s", "RINGER_HTTP_WRITE_TIMEOUT=11s", "RINGER_HTTP_IDLE_TIMEOUT=2s"), true)
	if err != nil || c.HTTPReadTimeout != time.Second || c.HTTPWriteTimeout != 11*time.Second || c.HTTPIdleTimeout != 2*time.Second {
		t.Errorf("set: %+v, %v", c, err)
	}
	for _, bad := range []string{"RINGER_HTTP_WRITE_TIMEOUT=10s", "RINGER_HTTP_READ_TIMEOUT=0", "RINGER_HTTP_IDLE_TIMEOUT=-1s", "RINGER_HTTP_READ_TIMEOUT=soon"} {
		name, _, _ := strings.Cut(bad, "=")
		if _, err := loadConfig(envOf(secret, bad), true); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming %s", bad, err, name)
		}
	}
}

func TestRingerDevMakesASecretLongEnough(t *testing.T) {
	if s := randomHex(MinSecretBytes); len(s) < MinSecretBytes {
		t.Errorf("dev secret %d bytes", len(s))
	}
}

func TestRingRateDefaultsTo30AMinuteAndABadOneIsNamed(t *testing.T) {
	c, err := loadConfig(envOf(), false)
	if err != nil || c.RingRate.N != 30 || c.RingRate.Per != time.Minute {
		t.Fatalf("default ring rate: %+v, %v", c.RingRate, err)
	}
	if c, err := loadConfig(envOf("RINGER_RING_RATE=0"), false); err != nil || c.RingRate.N != 0 {
		t.Fatalf("RINGER_RING_RATE=0: %+v, %v", c.RingRate, err)
	}
	if c, err := loadConfig(envOf("RINGER_RING_RATE=10/s"), false); err != nil || c.RingRate.N != 10 || c.RingRate.Per != time.Second {
		t.Fatalf("RINGER_RING_RATE=10/s: %+v, %v", c.RingRate, err)
	}
	if _, err := loadConfig(envOf("RINGER_RING_RATE=lots"), false); err == nil || !strings.Contains(err.Error(), "RINGER_RING_RATE") {
		t.Fatalf("RINGER_RING_RATE=lots: %v, want an error naming it", err)
	}
}

func TestNotifyTTLDefaultsToAnHourAndABadOneIsNamed(t *testing.T) {
	c, err := loadConfig(envOf(), false)
	if err != nil || c.NotifyTTL != time.Hour {
		t.Fatalf("default RINGER_NOTIFY_TTL: %v, %v", c.NotifyTTL, err)
	}
	if c, err := loadConfig(envOf("RINGER_NOTIFY_TTL=10m"), false); err != nil || c.NotifyTTL != 10*time.Minute {
		t.Fatalf("RINGER_NOTIFY_TTL=10m: %v, %v", c.NotifyTTL, err)
	}
	for _, bad := range []string{"RINGER_NOTIFY_TTL=0", "RINGER_NOTIFY_TTL=soon"} {
		if _, err := loadConfig(envOf(bad), false); err == nil || !strings.Contains(err.Error(), "RINGER_NOTIFY_TTL") {
			t.Errorf("%s: %v, want an error naming RINGER_NOTIFY_TTL", bad, err)
		}
	}
}

func TestTheReminderLeadDefaultsToFiveMinutesAndAMalformedOneIsNamed(t *testing.T) {
	secret := "RINGER_API_SECRET=" + strings.Repeat("s", MinSecretBytes)
	c, err := loadConfig(envOf(secret), true)
	if err != nil || c.ReminderLead != 5*time.Minute {
		t.Fatalf("default lead %v, %v; want 5m", c.ReminderLead, err)
	}
	if c, err = loadConfig(envOf(secret, "RINGER_REMINDER_LEAD=5s"), true); err != nil || c.ReminderLead != 5*time.Second {
		t.Errorf("lead 5s: %v, %v", c.ReminderLead, err)
	}
	for _, bad := range []string{"RINGER_REMINDER_LEAD=soon", "RINGER_REMINDER_LEAD=-1m"} {
		if _, err := loadConfig(envOf(secret, bad), true); err == nil || !strings.Contains(err.Error(), "RINGER_REMINDER_LEAD") {
			t.Errorf("%s: %v, want an error naming RINGER_REMINDER_LEAD", bad, err)
		}
	}
}

func TestQueueShardsIsAWholeNumberUpToTheMaximum(t *testing.T) {
	if c, err := loadConfig(envOf(), false); err != nil || c.QueueShards != 0 {
		t.Fatalf("default RINGER_QUEUE_SHARDS: %v, %v", c.QueueShards, err)
	}
	if c, err := loadConfig(envOf("RINGER_QUEUE_SHARDS=6"), false); err != nil || c.QueueShards != 6 {
		t.Fatalf("RINGER_QUEUE_SHARDS=6: %v, %v", c.QueueShards, err)
	}
	for _, bad := range []string{"RINGER_QUEUE_SHARDS=0", "RINGER_QUEUE_SHARDS=three", "RINGER_QUEUE_SHARDS=65"} {
		if _, err := loadConfig(envOf(bad), false); err == nil || !strings.Contains(err.Error(), "RINGER_QUEUE_SHARDS") {
			t.Errorf("%s: %v, want an error naming RINGER_QUEUE_SHARDS", bad, err)
		}
	}
}

func TestLogLevelDefaultsToInfoTakesTheFourLevelsInAnyCaseAndABadOneIsNamed(t *testing.T) {
	c, err := loadConfig(envOf(), false)
	if err != nil || c.LogLevel != slog.LevelInfo {
		t.Fatalf("default RINGER_LOG_LEVEL: %v, %v", c.LogLevel, err)
	}
	for v, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "Warn": slog.LevelWarn, "error": slog.LevelError} {
		if c, err := loadConfig(envOf("RINGER_LOG_LEVEL="+v), false); err != nil || c.LogLevel != want {
			t.Errorf("RINGER_LOG_LEVEL=%s: %v, %v; want %v", v, c.LogLevel, err, want)
		}
	}
	for _, bad := range []string{"RINGER_LOG_LEVEL=verbose", "RINGER_LOG_LEVEL=warning", "RINGER_LOG_LEVEL=-4"} {
		if _, err := loadConfig(envOf(bad), false); err == nil || !strings.Contains(err.Error(), "RINGER_LOG_LEVEL") {
			t.Errorf("%s: %v, want an error naming RINGER_LOG_LEVEL", bad, err)
		}
	}
}

func TestLogFlushIntervalDefaultsTo100msZeroWritesEachLineAndABadOneIsNamed(t *testing.T) {
	c, err := loadConfig(envOf(), false)
	if err != nil || c.LogFlushInterval != 100*time.Millisecond {
		t.Fatalf("default RINGER_LOG_FLUSH_INTERVAL: %v, %v", c.LogFlushInterval, err)
	}
	for v, want := range map[string]time.Duration{"0": 0, "1s": time.Second, "250ms": 250 * time.Millisecond} {
		if c, err := loadConfig(envOf("RINGER_LOG_FLUSH_INTERVAL="+v), false); err != nil || c.LogFlushInterval != want {
			t.Errorf("RINGER_LOG_FLUSH_INTERVAL=%s: %v, %v; want %v", v, c.LogFlushInterval, err, want)
		}
	}
	for _, bad := range []string{"RINGER_LOG_FLUSH_INTERVAL=-1s", "RINGER_LOG_FLUSH_INTERVAL=soon", "RINGER_LOG_FLUSH_INTERVAL=100"} {
		if _, err := loadConfig(envOf(bad), false); err == nil || !strings.Contains(err.Error(), "RINGER_LOG_FLUSH_INTERVAL") {
			t.Errorf("%s: %v, want an error naming RINGER_LOG_FLUSH_INTERVAL", bad, err)
		}
	}
}

func TestTheSchedulerSliceIsShortByDefaultAndRefusedOutsideWhatLinuxTakes(t *testing.T) {
	c, err := loadConfig(envOf(), false)
	if err != nil || c.SchedSlice != 100*time.Microsecond {
		t.Fatalf("default: %v, %v; want 100µs", c.SchedSlice, err)
	}
	for v, want := range map[string]time.Duration{"0": 0, "100us": 100 * time.Microsecond, "3ms": 3 * time.Millisecond, "100ms": 100 * time.Millisecond} {
		if c, err := loadConfig(envOf("RINGER_SCHED_SLICE="+v), false); err != nil || c.SchedSlice != want {
			t.Errorf("RINGER_SCHED_SLICE=%s: %v, %v; want %v", v, c.SchedSlice, err, want)
		}
	}
	for _, bad := range []string{"99us", "101ms", "1s", "-1ms", "short"} {
		if _, err := loadConfig(envOf("RINGER_SCHED_SLICE="+bad), false); err == nil || !strings.Contains(err.Error(), "RINGER_SCHED_SLICE") {
			t.Errorf("RINGER_SCHED_SLICE=%s: %v, want an error naming RINGER_SCHED_SLICE", bad, err)
		}
	}
}
