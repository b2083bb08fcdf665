package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/usagecalc"
	"github.com/nexus-ecosystem/nexus/usage"
)

var _ usage.Store = (*UsageStore)(nil)

// UsageStore is the PostgreSQL usage.Store over eco_api_usage (the log),
// eco_usage_records (the exact per-period counter) and eco_usage_daily (the rollup).
type UsageStore struct {
	db *sqlx.DB
}

// NewUsageStore returns a UsageStore over db, which must be migrated.
func NewUsageStore(db *sql.DB) *UsageStore { return &UsageStore{db: wrap(db)} }

// usageColumns are the columns of eco_api_usage that a batch fills.
var usageColumns = []string{"id", "key_id", "user_id", "endpoint", "method", "status", "latency_us", "bytes", "created_at"}

// insertBatch is the idempotent path: one statement, nine arrays unnested into rows, ON
// CONFLICT (id) DO NOTHING skipping the IDs already stored.
const insertBatch = `INSERT INTO eco_api_usage
	(id, key_id, user_id, endpoint, method, status, latency_us, bytes, created_at)
SELECT id, key_id, user_id, endpoint, method, status, latency_us, bytes,
	timestamptz 'epoch' + micros * interval '1 microsecond'
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::bigint[], $8::bigint[], $9::bigint[])
	AS t(id, key_id, user_id, endpoint, method, status, latency_us, bytes, micros)
ON CONFLICT (id) DO NOTHING`

// WriteBatch implements usage.Writer. It first streams the batch with COPY (the fastest
// way into PostgreSQL) in a transaction; when that meets a record ID already stored (a
// batch sent again after its answer was lost: rare), it rolls back and writes the batch
// with one INSERT … ON CONFLICT (id) DO NOTHING instead. Either way the batch is stored
// whole or not at all. Transient failures wrap usage.ErrRetriable; a record that fails
// Validate, or a data or constraint error, wraps usage.ErrInvalidRecord.
func (s *UsageStore) WriteBatch(ctx context.Context, batch []usage.Record) error {
	if len(batch) == 0 {
		return nil
	}
	for i := range batch {
		if err := batch[i].Validate(); err != nil {
			return fmt.Errorf("postgres: usage batch record %d: %w", i, err)
		}
	}
	err := s.copyBatch(ctx, batch)
	if uniqueViolation(err, "") { // some IDs are stored already
		err = s.insertBatch(ctx, batch)
	}
	if err != nil {
		return classify("usage write batch", err)
	}
	return nil
}

// copyBatch writes batch with COPY FROM STDIN in one transaction. It talks to lib/pq's
// driver connection directly (sql.Conn.Raw), one reused value slice for every row, which
// skips database/sql's per-row argument conversion: that halves the client's share of
// the work. lib/pq watches ctx for the whole transaction it begins with BeginTx.
func (s *UsageStore) copyBatch(ctx context.Context, batch []usage.Record) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) (err error) {
		begin, ok := dc.(driver.ConnBeginTx)
		if !ok {
			return errors.New("driver cannot begin a transaction with a context")
		}
		tx, err := begin.BeginTx(ctx, driver.TxOptions{})
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = tx.Rollback()
			}
		}()
		stmt, err := dc.(driver.Conn).Prepare(pq.CopyIn("eco_api_usage", usageColumns...))
		if err != nil {
			return err
		}
		defer func() {
			if cerr := stmt.Close(); err == nil {
				err = cerr
			}
		}()
		row := make([]driver.Value, len(usageColumns))
		for i := range batch {
			r := &batch[i]
			row[0], row[1], row[2] = string(r.ID), string(r.KeyID), string(r.UserID)
			row[3], row[4], row[5] = r.Endpoint, r.Method, int64(r.Status)
			row[6], row[7], row[8] = r.Latency.Microseconds(), r.Bytes, r.Time.UTC()
			if _, err = stmt.Exec(row); err != nil { //nolint:staticcheck // lib/pq's COPY statement takes rows here
				return err
			}
		}
		if _, err = stmt.Exec(nil); err != nil { //nolint:staticcheck // an empty Exec ends the COPY
			return err
		}
		if err = stmt.Close(); err != nil {
			return err
		}
		stmt = closedStmt{}
		return tx.Commit()
	})
}

// closedStmt stands in for a statement already closed, so the deferred Close is a no-op.
type closedStmt struct{ driver.Stmt }

func (closedStmt) Close() error { return nil }

// insertBatch writes batch with one INSERT … ON CONFLICT (id) DO NOTHING.
func (s *UsageStore) insertBatch(ctx context.Context, batch []usage.Record) error {
	n := len(batch)
	ids, keys, users := make([]string, n), make([]string, n), make([]string, n)
	endpoints, methods := make([]string, n), make([]string, n)
	statuses, latencies, sizes, micros := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i := range batch {
		r := &batch[i]
		ids[i], keys[i], users[i] = string(r.ID), string(r.KeyID), string(r.UserID)
		endpoints[i], methods[i] = r.Endpoint, r.Method
		statuses[i], latencies[i], sizes[i] = int64(r.Status), r.Latency.Microseconds(), r.Bytes
		micros[i] = r.Time.UnixMicro()
	}
	_, err := s.db.ExecContext(ctx, insertBatch,
		pq.StringArray(ids), pq.StringArray(keys), pq.StringArray(users),
		pq.StringArray(endpoints), pq.StringArray(methods),
		pq.Int64Array(statuses), pq.Int64Array(latencies), pq.Int64Array(sizes), pq.Int64Array(micros))
	return err
}

func dateString(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// AddCall implements usage.Counter in one statement: the row lock taken by ON CONFLICT
// DO UPDATE serializes concurrent calls, and the WHERE clauses keep a hard cap exact.
func (s *UsageStore) AddCall(ctx context.Context, user ecoid.ID, period time.Time, limit int64, hardCap bool) (int64, bool, error) {
	p := dateString(usage.PeriodStart(period))
	var count int64
	err := s.db.GetContext(ctx, &count, `INSERT INTO eco_usage_records AS r (user_id, period_start, calls)
		SELECT $1, $2::date, 1 WHERE NOT $4::boolean OR $3::bigint > 0
		ON CONFLICT (user_id, period_start) DO UPDATE SET calls = r.calls + 1, updated_at = now()
			WHERE NOT $4::boolean OR r.calls < $3::bigint
		RETURNING calls`, string(user), p, limit, hardCap)
	if err == nil {
		return count, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("postgres: usage add call: %w", err)
	}
	count, err = s.PeriodCalls(ctx, user, period)
	return count, false, err
}

// RemoveCall implements usage.Counter.
func (s *UsageStore) RemoveCall(ctx context.Context, user ecoid.ID, period time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE eco_usage_records SET calls = calls - 1, updated_at = now()
		WHERE user_id = $1 AND period_start = $2::date AND calls > 0`, string(user), dateString(usage.PeriodStart(period)))
	if err != nil {
		return fmt.Errorf("postgres: usage remove call: %w", err)
	}
	return nil
}

// PeriodCalls implements usage.Counter.
func (s *UsageStore) PeriodCalls(ctx context.Context, user ecoid.ID, period time.Time) (int64, error) {
	var n int64
	err := s.db.GetContext(ctx, &n, `SELECT COALESCE(max(calls), 0) FROM eco_usage_records
		WHERE user_id = $1 AND period_start = $2::date`, string(user), dateString(usage.PeriodStart(period)))
	if err != nil {
		return 0, fmt.Errorf("postgres: usage period calls: %w", err)
	}
	return n, nil
}

type dayRow struct {
	Day    string `db:"day"`
	Calls  int64  `db:"calls"`
	Errors int64  `db:"errors"`
}

// selectDays runs a query of (day, calls, errors) rows and converts them; nil when there
// are none.
func (s *UsageStore) selectDays(ctx context.Context, op, query string, args ...any) ([]usage.DailyCalls, error) {
	var rows []dayRow
	if err := s.db.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("postgres: usage %s: %w", op, err)
	}
	var out []usage.DailyCalls
	for _, r := range rows {
		d, err := time.Parse(time.DateOnly, r.Day)
		if err != nil {
			return nil, fmt.Errorf("postgres: usage %s: bad day %q: %w", op, r.Day, err)
		}
		out = append(out, usage.DailyCalls{Date: d, Calls: r.Calls, Errors: r.Errors})
	}
	return out, nil
}

// History implements usage.Reader.
func (s *UsageStore) History(ctx context.Context, user ecoid.ID, from time.Time, days int) ([]usage.DailyCalls, error) {
	if days < 1 {
		return nil, fmt.Errorf("postgres: usage history: days %d < 1", days)
	}
	start := usage.DayStart(from)
	sparse, err := s.selectDays(ctx, "history", `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
			count(*) AS calls, count(*) FILTER (WHERE status >= 400) AS errors
		FROM eco_api_usage WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
		GROUP BY 1`, string(user), start, start.AddDate(0, 0, days))
	if err != nil {
		return nil, err
	}
	return usagecalc.FillDays(start, days, sparse), nil
}

// Endpoints implements usage.Reader. The rates and rounding are computed in Go by the
// same code as the memory store, so both give identical answers.
func (s *UsageStore) Endpoints(ctx context.Context, user ecoid.ID, from, to time.Time) ([]usage.EndpointStats, error) {
	var rows []struct {
		Method   string  `db:"method"`
		Endpoint string  `db:"endpoint"`
		Calls    int64   `db:"calls"`
		Errors   int64   `db:"errors"`
		Sum      int64   `db:"sum_us"`
		P95      float64 `db:"p95_us"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT method, endpoint, count(*) AS calls,
			count(*) FILTER (WHERE status >= 400) AS errors, sum(latency_us)::bigint AS sum_us,
			percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_us) AS p95_us
		FROM eco_api_usage WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
		GROUP BY method, endpoint`, string(user), from, to)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage endpoints: %w", err)
	}
	out := make([]usage.EndpointStats, 0, len(rows))
	for _, r := range rows {
		out = append(out, usagecalc.EndpointStats(r.Method, r.Endpoint, r.Calls, r.Errors, r.Sum, r.P95))
	}
	usagecalc.SortEndpoints(out)
	return out, nil
}

// TotalCalls implements usage.Reader.
func (s *UsageStore) TotalCalls(ctx context.Context, from, to time.Time) (int64, error) {
	var n int64
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM eco_api_usage WHERE created_at >= $1 AND created_at < $2`, from, to); err != nil {
		return 0, fmt.Errorf("postgres: usage total calls: %w", err)
	}
	return n, nil
}

// TopUsers implements usage.Reader. Ties are ordered by user ID in byte order (COLLATE
// "C"), as in Go.
func (s *UsageStore) TopUsers(ctx context.Context, from, to time.Time, n int) ([]usage.UserCalls, error) {
	if n < 1 {
		return nil, nil
	}
	var rows []struct {
		UserID string `db:"user_id"`
		Calls  int64  `db:"calls"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT user_id, count(*) AS calls FROM eco_api_usage
		WHERE created_at >= $1 AND created_at < $2
		GROUP BY user_id ORDER BY calls DESC, user_id COLLATE "C" LIMIT $3`, from, to, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage top users: %w", err)
	}
	out := make([]usage.UserCalls, len(rows))
	for i, r := range rows {
		out[i] = usage.UserCalls{UserID: ecoid.ID(r.UserID), Calls: r.Calls}
	}
	return out, nil
}

// Aggregate implements usage.Reader in one statement: it upserts each user's fresh count
// for the day and deletes rollup rows of users who no longer have calls that day, so
// running it twice, or twice at once, leaves the same rows.
func (s *UsageStore) Aggregate(ctx context.Context, day time.Time) error {
	start := usage.DayStart(day)
	_, err := s.db.ExecContext(ctx, `WITH fresh AS (
			SELECT user_id, count(*) AS calls, count(*) FILTER (WHERE status >= 400) AS errors
			FROM eco_api_usage WHERE created_at >= $2 AND created_at < $3 GROUP BY user_id
		), gone AS (
			DELETE FROM eco_usage_daily d WHERE d.day = $1::date
				AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.user_id = d.user_id)
		)
		INSERT INTO eco_usage_daily (user_id, day, calls, errors)
		SELECT user_id, $1::date, calls, errors FROM fresh
		ON CONFLICT (user_id, day) DO UPDATE
			SET calls = EXCLUDED.calls, errors = EXCLUDED.errors, aggregated_at = now()`,
		dateString(start), start, start.AddDate(0, 0, 1))
	if err != nil {
		return fmt.Errorf("postgres: usage aggregate: %w", err)
	}
	return nil
}

// Daily implements usage.Reader.
func (s *UsageStore) Daily(ctx context.Context, user ecoid.ID, from, to time.Time) ([]usage.DailyCalls, error) {
	first := usage.DayStart(from)
	if first.Before(from) {
		first = first.AddDate(0, 0, 1)
	}
	end := usage.DayStart(to) // days strictly before to
	if end.Before(to) {
		end = end.AddDate(0, 0, 1)
	}
	return s.selectDays(ctx, "daily", `SELECT to_char(day, 'YYYY-MM-DD') AS day, calls, errors FROM eco_usage_daily
		WHERE user_id = $1 AND day >= $2::date AND day < $3::date ORDER BY day`,
		string(user), dateString(first), dateString(end))
}
