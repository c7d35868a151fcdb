package main

import (
	"strings"
	"testing"

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
}

// titlePrefix is how each scenario's table title begins.
var titlePrefix = map[string]string{
	"ceiling": "ceiling:", "fanout": "fan-out:", "ring": "ring under load:", "stop": "stop latency:",
	"api": "API:", "scale": "throughput against concurrency:", "overload": "overload:", "soak": "soak:",
}

func TestFlagsBoundTheRun(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "200000"}, {"-ceiling-n", "1"}, {"-api-duration", "1h"}, {"-scenarios", "nope"}, {"-rings", "20000"},
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
}
