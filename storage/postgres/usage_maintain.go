package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/storage/usagecalc"
	"github.com/nexus-ecosystem/nexus/usage"
)

// Aggregate implements usage.Reader in one transaction under the day's advisory lock
// (which writers of late records for the day take too): it replaces the day's rows of
// eco_usage_daily_endpoints and eco_usage_daily with fresh ones computed from the log, and
// records the day in eco_usage_rollup_days when it ended at least usagecalc.Settle ago by
// the database server's clock. A day older than the log's retention horizon keeps its
// rollup.
func (s *UsageStore) Aggregate(ctx context.Context, day time.Time) error {
	start := usage.DayStart(day)
	if err := s.aggregate(ctx, start); err != nil {
		return fmt.Errorf("postgres: usage aggregate %s: %w", dateString(start), err)
	}
	return nil
}

func (s *UsageStore) aggregate(ctx context.Context, start time.Time) error {
	d, end := dateString(start), start.AddDate(0, 0, 1)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+fmt.Sprintf(dayLockKey, "$1::date")+`)`, d); err != nil {
			return err
		}
		var dropped bool
		if err := tx.GetContext(ctx, &dropped, `SELECT EXISTS (SELECT 1 FROM eco_usage_log_horizon WHERE kept_from > $1)`, start); err != nil {
			return err
		}
		if !dropped {
			steps := []struct {
				query string
				args  []any
			}{
				{`DELETE FROM eco_usage_daily_endpoints WHERE day = $1::date`, []any{d}},
				{`INSERT INTO eco_usage_daily_endpoints
					(user_id, day, method, endpoint, calls, errors, latency_sum_us, latency_buckets, latency_counts)
				SELECT user_id, $1::date, method, endpoint, sum(n)::bigint, sum(e)::bigint, sum(s)::bigint,
					array_agg(b ORDER BY b), array_agg(n ORDER BY b)
				FROM (SELECT user_id, method, endpoint, width_bucket(latency_us, $4::bigint[]) AS b, count(*) AS n,
						count(*) FILTER (WHERE status >= 400) AS e, sum(latency_us) AS s
					FROM eco_api_usage WHERE created_at >= $2 AND created_at < $3
					GROUP BY 1, 2, 3, 4) AS g
				GROUP BY user_id, method, endpoint`, []any{d, start, end, pq.Int64Array(usagecalc.Bounds())}},
				{`DELETE FROM eco_usage_daily WHERE day = $1::date`, []any{d}},
				{`INSERT INTO eco_usage_daily (user_id, day, calls, errors)
				SELECT user_id, day, sum(calls)::bigint, sum(errors)::bigint FROM eco_usage_daily_endpoints
				WHERE day = $1::date GROUP BY user_id, day`, []any{d}},
			}
			for _, st := range steps {
				if _, err := tx.ExecContext(ctx, st.query, st.args...); err != nil {
					return err
				}
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO eco_usage_rollup_days (day) SELECT $1::date
			WHERE $2::timestamptz <= now() - $3 * interval '1 microsecond'
			ON CONFLICT (day) DO UPDATE SET aggregated_at = now()`, d, end, usagecalc.Settle.Microseconds())
		return err
	})
}

func (s *UsageStore) inTx(ctx context.Context, f func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Maintain implements usage.Maintainer. In order: it creates the partitions of this
// month and the next two, and of every month that has rows in the default partition
// (moving them in); it aggregates every closed day that has log rows and is not in
// eco_usage_rollup_days (found with one index probe per day that has rows); and, when
// retention is positive, it drops each month's partition whose whole month is older than
// now-retention (so rows are kept up to a month longer than retention), deletes older
// rows from the default partition, and raises the log's horizon. Every step is
// idempotent; concurrent runs serialize on advisory locks.
func (s *UsageStore) Maintain(ctx context.Context, now time.Time, retention time.Duration) error {
	if err := s.ensurePartitions(ctx, now); err != nil {
		return err
	}
	days, err := s.pendingDays(ctx, usage.DayStart(now.Add(-usagecalc.Settle)))
	if err != nil {
		return fmt.Errorf("postgres: usage maintain: %w", err)
	}
	for _, d := range days {
		if err := s.Aggregate(ctx, d); err != nil {
			return err
		}
	}
	if retention > 0 {
		if err := s.dropBefore(ctx, now.Add(-retention)); err != nil {
			return fmt.Errorf("postgres: usage maintain: retention: %w", err)
		}
	}
	return nil
}

// pendingDays returns the days before cutoff (a midnight) with log rows that are not
// rolled up, oldest first, with a loose index scan: one probe of the created_at index per
// day that has rows.
func (s *UsageStore) pendingDays(ctx context.Context, cutoff time.Time) ([]time.Time, error) {
	var days []string
	err := s.db.SelectContext(ctx, &days, `WITH RECURSIVE d(day) AS (
			SELECT (SELECT date_trunc('day', min(created_at) AT TIME ZONE 'UTC') FROM eco_api_usage WHERE created_at < $1)
			UNION ALL
			SELECT (SELECT date_trunc('day', min(created_at) AT TIME ZONE 'UTC') FROM eco_api_usage
				WHERE created_at >= (d.day + interval '1 day') AT TIME ZONE 'UTC' AND created_at < $1)
			FROM d WHERE d.day IS NOT NULL
		)
		SELECT to_char(d.day, 'YYYY-MM-DD') FROM d
		WHERE d.day IS NOT NULL AND NOT EXISTS (SELECT 1 FROM eco_usage_rollup_days r WHERE r.day = d.day::date)
		ORDER BY 1`, cutoff)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, len(days))
	for _, d := range days {
		t, err := time.Parse(time.DateOnly, d)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// partitionName is the name of month's partition of eco_api_usage.
func partitionName(month time.Time) string {
	return fmt.Sprintf("eco_api_usage_p%04d%02d", month.Year(), int(month.Month()))
}

// partitionLockKey serializes partition changes within the schema.
const partitionLockKey = `hashtextextended('nexus.usage.partitions.' || current_schema(), 0)`

// ensurePartitions creates the partitions of now's month, the next two, and every month
// with rows in the default partition.
func (s *UsageStore) ensurePartitions(ctx context.Context, now time.Time) error {
	return ensureUsagePartitions(ctx, s.db, now)
}

func ensureUsagePartitions(ctx context.Context, db *sqlx.DB, now time.Time) error {
	months := []time.Time{usage.PeriodStart(now), usage.PeriodEnd(now), usage.PeriodEnd(usage.PeriodEnd(now))}
	var stray []time.Time
	if err := db.SelectContext(ctx, &stray, `SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
		FROM eco_api_usage_default`); err != nil {
		return fmt.Errorf("postgres: usage partitions: %w", err)
	}
	months = append(months, stray...)
	for _, m := range months {
		if err := createPartition(ctx, db, usage.PeriodStart(m)); err != nil {
			return fmt.Errorf("postgres: usage partition %s: %w", partitionName(m), err)
		}
	}
	return nil
}

// createPartition creates month's partition unless it exists, moving the month's rows out
// of the default partition, in one transaction.
func createPartition(ctx context.Context, db *sqlx.DB, month time.Time) error {
	name := partitionName(month)
	lo, hi := instant(month), instant(usage.PeriodEnd(month))
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+partitionLockKey+`)`); err != nil {
		return err
	}
	var exists bool
	if err := tx.GetContext(ctx, &exists, `SELECT to_regclass($1) IS NOT NULL`, name); err != nil {
		return err
	}
	if exists {
		return nil
	}
	// Writers route rows of a month without a partition to the default one: stop them
	// for the moment it takes to move this month's rows out of it.
	if _, err := tx.ExecContext(ctx, `LOCK TABLE eco_api_usage_default IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	var stray bool
	if err := tx.GetContext(ctx, &stray, `SELECT EXISTS (SELECT 1 FROM eco_api_usage_default
		WHERE created_at >= $1 AND created_at < $2)`, lo, hi); err != nil {
		return err
	}
	ident := pq.QuoteIdentifier(name)
	bounds := fmt.Sprintf("FOR VALUES FROM (%s) TO (%s)", pq.QuoteLiteral(lo), pq.QuoteLiteral(hi))
	var steps []string
	if !stray {
		steps = []string{`CREATE TABLE ` + ident + ` PARTITION OF eco_api_usage ` + bounds}
	} else {
		steps = []string{
			`CREATE TABLE ` + ident + ` (LIKE eco_api_usage INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
			`WITH moved AS (DELETE FROM eco_api_usage_default WHERE created_at >= ` + pq.QuoteLiteral(lo) +
				` AND created_at < ` + pq.QuoteLiteral(hi) + ` RETURNING *) INSERT INTO ` + ident + ` SELECT * FROM moved`,
			`ALTER TABLE eco_api_usage ATTACH PARTITION ` + ident + ` ` + bounds,
		}
	}
	for _, q := range steps {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// dropBefore drops the partitions whose month ended at or before cutoff, deletes older
// rows from the default partition and raises the log's horizon, after making sure every
// closed day of those months is rolled up (Maintain did; a day still pending stops it).
func (s *UsageStore) dropBefore(ctx context.Context, cutoff time.Time) error {
	var names []string
	if err := s.db.SelectContext(ctx, &names, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'eco_api_usage'::regclass AND c.relname LIKE 'eco\_api\_usage\_p%' ORDER BY 1`); err != nil {
		return err
	}
	horizon := time.Time{}
	var drop []string
	for _, n := range names {
		m, err := time.Parse("200601", strings.TrimPrefix(n, "eco_api_usage_p"))
		if err != nil {
			continue // not one of ours
		}
		if end := usage.PeriodEnd(m); !end.After(cutoff) {
			drop = append(drop, n)
			horizon = end
		}
	}
	if len(drop) == 0 {
		return nil
	}
	pending, err := s.pendingDays(ctx, horizon)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("%d days before %s are not rolled up yet", len(pending), dateString(horizon))
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+partitionLockKey+`)`); err != nil {
			return err
		}
		for _, n := range drop {
			if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+pq.QuoteIdentifier(n)); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM eco_api_usage_default WHERE created_at < $1`, horizon); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO eco_usage_log_horizon (kept_from) VALUES ($1)
			ON CONFLICT (only_row) DO UPDATE SET kept_from = GREATEST(eco_usage_log_horizon.kept_from, EXCLUDED.kept_from)`, horizon)
		return err
	})
}
