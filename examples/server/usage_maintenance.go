package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/usage"
)

// parseRetention reads a retention: a Go duration ("2160h") or a number of days ("90d");
// "0" or empty keeps the log.
func parseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 100*366 {
			return 0, fmt.Errorf("NEXUS_USAGE_RETENTION: %q is not a number of days (1..36600)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("NEXUS_USAGE_RETENTION: %q is neither a duration (2160h) nor days (90d)", s)
	}
	return d, nil
}

// startMaintenance runs the usage store's upkeep (usage.RunMaintenance: the daily rollup
// of closed days, partitions ahead, retention) in the background, hourly, until
// stopMaintenance.
func (s *services) startMaintenance() {
	m, ok := s.usageStore.(usage.Maintainer)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.stopMaint = func() { cancel(); <-done }
	go func() {
		defer close(done)
		_ = usage.RunMaintenance(ctx, m, usage.MaintenanceConfig{Retention: s.cfg.UsageRetention, Logger: s.log})
	}()
}

// stopMaintenance stops the upkeep goroutine and waits for it (a pass in progress is
// cancelled; every step is idempotent, so the next start resumes it).
func (s *services) stopMaintenance() {
	if s.stopMaint != nil {
		s.stopMaint()
		s.stopMaint = nil
	}
}
