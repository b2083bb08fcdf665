package main

import (
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	good := map[string]time.Duration{"": 0, "0": 0, "90d": 90 * 24 * time.Hour, "2160h": 2160 * time.Hour, " 1d ": 24 * time.Hour}
	for in, want := range good {
		if got, err := parseRetention(in); err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "-3d", "0d", "ninety", "-1h", "99999999d"} {
		if _, err := parseRetention(in); err == nil {
			t.Errorf("parseRetention(%q) accepted", in)
		}
	}
}

func TestRetentionFromEnvironment(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string {
		if k == "NEXUS_USAGE_RETENTION" {
			return "30d"
		}
		return ""
	})
	if err != nil || cfg.UsageRetention != 30*24*time.Hour {
		t.Fatalf("config %v, %v", cfg.UsageRetention, err)
	}
	if _, err := parseConfig(nil, func(k string) string {
		if k == "NEXUS_USAGE_RETENTION" {
			return "soon"
		}
		return ""
	}); err == nil {
		t.Fatal("a bad retention was accepted")
	}
}
