package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ringer-dev/ringer/tests/harness"
)

// TestQuickPass runs every scenario of the load tool at a tiny size, with no thresholds: CI's proof that the
// tool still builds, starts ringer, drives each scenario to its end and prints its tables. The numbers it
// prints mean nothing at this size (and under -race).
func TestQuickPass(t *testing.T) {
	cfg := quickConfig()
	cfg.binary = harness.Binary(t)
	var out strings.Builder
	cfg.out = &out
	err := run(cfg)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for name := range scenarios {
		if !strings.Contains(out.String(), "\n### "+titlePrefix[name]) {
			t.Errorf("no table for scenario %s", name)
		}
	}
	// The API phases are read against the yardstick of the same run: its row, and each phase's multiple of it
	// (absent when the yardstick answered nothing).
	if !strings.Contains(out.String(), "\n| yardstick: bare HTTP, one Asynq enqueue a request |") {
		t.Errorf("the API table has no yardstick row")
	}
	if n := strings.Count(out.String(), " ×) |"); n != 3 {
		t.Errorf("%d API phases show their rate as a multiple of the yardstick, want 3", n)
	}
}

// TestClusterPass runs the scenarios that show each master's share of the Redis CPU on a local 3-master
// Redis Cluster, at the quick size: ringer on REDIS_CLUSTER_ADDRS, the bench's readings summed over masters.
func TestClusterPass(t *testing.T) {
	cfg, err := parseFlags([]string{"-quick", "-cluster", "3", "-scenarios", "ceiling,fanout,api"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.binary = harness.Binary(t)
	var out strings.Builder
	cfg.out = &out
	err = run(cfg)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range cfg.scenarios {
		if !strings.Contains(out.String(), "\n### "+titlePrefix[name]) {
			t.Errorf("no table for scenario %s", name)
		}
	}
	if n := strings.Count(out.String(), "(busiest "); n < 8 {
		t.Errorf("%d rows with the masters' shares of Redis CPU, want one a ceiling variant, fan-out run and API phase, its yardstick included (8)", n)
	}
}

// titlePrefix is how each scenario's table title begins.
var titlePrefix = map[string]string{
	"ceiling": "ceiling:", "fanout": "fan-out:", "ring": "ring under load:", "stop": "stop latency:",
	"api": "API:", "scale": "throughput against concurrency:", "overload": "overload:", "soak": "soak:",
}

func TestFlagsBoundTheRun(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "200000"}, {"-ceiling-n", "1"}, {"-api-duration", "1h"}, {"-scenarios", "nope"}, {"-rings", "20000"}, {"-timeout-rings", "20000"},
		{"-cluster", "2"}, {"-cluster", "17"}, {"-shards", "-1"}, {"-shards", "65"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	cfg, err := parseFlags([]string{"-quick", "-scenarios", "fanout", "-n", "300,400", "-latency", "0,20ms"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.fanoutN) != 2 || cfg.fanoutN[1] != 400 || len(cfg.latencies) != 2 || cfg.scenarios[0] != "fanout" {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg.fcmHTTP1 {
		t.Errorf("the fake FCM serves HTTP/1.1 without -fcm-http1: by default it serves as FCM, TLS and HTTP/2")
	}
	if cfg, err := parseFlags([]string{"-fcm-http1"}); err != nil || !cfg.fcmHTTP1 {
		t.Errorf("-fcm-http1: %v, fcmHTTP1 = %v", err, cfg != nil && cfg.fcmHTTP1)
	}
	if cfg.cluster != 0 || cfg.shards != 0 {
		t.Errorf("without -cluster: cluster %d, shards %d, want one redis-server and RINGER_QUEUE_SHARDS unset", cfg.cluster, cfg.shards)
	}
	for _, c := range []struct {
		args            []string
		cluster, shards int
	}{{[]string{"-cluster", "3"}, 3, 3}, {[]string{"-cluster", "5", "-shards", "8"}, 5, 8}, {[]string{"-shards", "2"}, 0, 2}} {
		cfg, err := parseFlags(c.args)
		if err != nil || cfg.cluster != c.cluster || cfg.shards != c.shards {
			t.Errorf("parseFlags(%q): %v, cluster %d, shards %d; want %d, %d", c.args, err, cfg.cluster, cfg.shards, c.cluster, c.shards)
		}
	}
}

func TestShardOf(t *testing.T) {
	for q, want := range map[string]bool{
		"ring": true, "ring.1": true, "ring.12": true, "ring.": false, "ring.x": false, "ringer": false, "notify.1": false,
	} {
		if got := shardOf(q, "ring"); got != want {
			t.Errorf("shardOf(%q, ring) = %v, want %v", q, got, want)
		}
	}
}

func TestMasterShares(t *testing.T) {
	got := masterShares([]time.Duration{time.Second, 0, 0}, []time.Duration{2 * time.Second, time.Second, 2 * time.Second})
	if want := "25% / 25% / 50% (busiest 50%) of 4.00 s"; got != want {
		t.Errorf("masterShares = %q, want %q", got, want)
	}
	if got := masterShares([]time.Duration{0}, []time.Duration{0}); got != "no Redis CPU" {
		t.Errorf("masterShares with no CPU = %q", got)
	}
}
