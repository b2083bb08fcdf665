package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

var (
	_ usage.BlockCounter = (*UsageStore)(nil)
	_ usage.CallBatcher  = (*UsageStore)(nil)
)

// takeCallsSQL moves a block of calls in one statement. The first CTE locks the row and,
// under READ COMMITTED, reads its newest committed count (a concurrent take is waited for);
// the UPDATE then adds what fits and returns how much that was. $3 is the block, $4 the
// limit, $5 whether it is a hard cap.
const takeCallsSQL = `WITH old AS (
	SELECT calls FROM eco_usage_records WHERE user_id = $1 AND period_start = $2::date FOR UPDATE
), g AS (
	SELECT CASE WHEN $5::boolean THEN LEAST($3::bigint, GREATEST($4::bigint - calls, 0)) ELSE $3::bigint END AS n FROM old
)
UPDATE eco_usage_records r SET calls = r.calls + g.n, updated_at = now()
FROM g WHERE r.user_id = $1 AND r.period_start = $2::date
RETURNING g.n, r.calls`

// TakeCalls implements usage.BlockCounter in one statement (two more, once, for the first
// take of a user's period: the row is created with a count of zero).
func (s *UsageStore) TakeCalls(ctx context.Context, user ecoid.ID, period time.Time, n, limit int64, hardCap bool) (int64, int64, error) {
	if n < 1 {
		return 0, 0, fmt.Errorf("postgres: take calls: n %d < 1", n)
	}
	p := dateString(usage.PeriodStart(period))
	for attempt := 0; ; attempt++ {
		var granted, count int64
		err := s.db.QueryRowContext(ctx, takeCallsSQL, string(user), p, n, limit, hardCap).Scan(&granted, &count)
		if err == nil {
			return granted, count, nil
		}
		if !errors.Is(err, sql.ErrNoRows) || attempt > 0 {
			return 0, 0, fmt.Errorf("postgres: take calls: %w", err)
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO eco_usage_records (user_id, period_start, calls)
			VALUES ($1, $2::date, 0) ON CONFLICT DO NOTHING`, string(user), p); err != nil {
			return 0, 0, fmt.Errorf("postgres: take calls: %w", err)
		}
	}
}

// ReturnCalls implements usage.BlockCounter.
func (s *UsageStore) ReturnCalls(ctx context.Context, user ecoid.ID, period time.Time, n int64) error {
	if n <= 0 {
		return nil
	}
	_, err := s.db.ExecContext(ctx, `UPDATE eco_usage_records SET calls = GREATEST(calls - $3::bigint, 0), updated_at = now()
		WHERE user_id = $1 AND period_start = $2::date`, string(user), dateString(usage.PeriodStart(period)), n)
	if err != nil {
		return fmt.Errorf("postgres: return calls: %w", err)
	}
	return nil
}

// AddCalls implements usage.CallBatcher in one statement: the entries are unnested and
// upserted, in a fixed order so that concurrent batches lock rows alike (no deadlock).
func (s *UsageStore) AddCalls(ctx context.Context, batch []usage.PendingCalls) error {
	if len(batch) == 0 {
		return nil
	}
	users, periods, calls := make([]string, len(batch)), make([]string, len(batch)), make([]int64, len(batch))
	for i, b := range batch {
		users[i], periods[i], calls[i] = string(b.User), dateString(usage.PeriodStart(b.Period)), b.Calls
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO eco_usage_records AS r (user_id, period_start, calls)
		SELECT u, p::date, sum(n) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(u, p, n)
		GROUP BY u, p ORDER BY u, p
		ON CONFLICT (user_id, period_start) DO UPDATE SET calls = r.calls + EXCLUDED.calls, updated_at = now()`,
		pq.StringArray(users), pq.StringArray(periods), pq.Int64Array(calls))
	if err != nil {
		return fmt.Errorf("postgres: add calls: %w", err)
	}
	return nil
}
