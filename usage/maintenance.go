package usage

import (
	"context"
	"log/slog"
	"time"
)

// MaintenanceConfig tunes RunMaintenance. The zero value of every field means its
// documented default.
type MaintenanceConfig struct {
	// Interval is the time between passes. Default 1h: a closed day is rolled up within
	// about an hour of its end (readers use the log for it until then).
	Interval time.Duration
	// RetryInterval is the wait after a failed pass. Default: a minute, or Interval when
	// shorter.
	RetryInterval time.Duration
	// Retention is passed to Maintain: detailed log rows older than it may be dropped.
	// Default 0: the log is kept. Rollups and period counters are always kept.
	Retention time.Duration
	// Timeout bounds one pass. Default 10 min.
	Timeout time.Duration
	// Logger receives each pass's failure (Error) and success (Debug). Default: discard.
	Logger *slog.Logger
	// Now gives the time passed to Maintain. Default: time.Now.
	Now func() time.Time
	// OnPass, when set, is called after every pass with its error (nil on success), for
	// metrics.
	OnPass func(err error)
}

func (c MaintenanceConfig) withDefaults() MaintenanceConfig {
	if c.Interval <= 0 {
		c.Interval = time.Hour
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = min(time.Minute, c.Interval)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// RunMaintenance runs m.Maintain at once and then every Interval (RetryInterval after a
// failure) until ctx ends, and returns ctx's error. It is how a service schedules the
// daily rollup (Aggregate of every closed day, idempotent), the log's storage upkeep and
// its retention; run it in its own goroutine. Several processes may run it against one
// store: Maintain is safe to run concurrently.
func RunMaintenance(ctx context.Context, m Maintainer, cfg MaintenanceConfig) error {
	cfg = cfg.withDefaults()
	for {
		pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		now := cfg.Now()
		err := m.Maintain(pctx, now, cfg.Retention)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := cfg.Interval
		if err != nil {
			wait = cfg.RetryInterval
			cfg.Logger.Error("usage: maintenance failed; retrying", "retry_in", wait, "err", err)
		} else {
			cfg.Logger.Debug("usage: maintenance done", "at", now, "retention", cfg.Retention)
		}
		if cfg.OnPass != nil {
			cfg.OnPass(err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}
