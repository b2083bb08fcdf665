package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/usagecalc"
	"github.com/nexus-ecosystem/nexus/usage"
)

var (
	_ usage.Store      = (*UsageStore)(nil)
	_ usage.Maintainer = (*UsageStore)(nil)
	_ usage.Pinger     = (*UsageStore)(nil)
)

// UsageStore is the PostgreSQL usage.Store and usage.Maintainer.
//
// The log is eco_api_usage, partitioned by calendar month (UTC): one partition per month
// (eco_api_usage_pYYYYMM) and a default partition for rows of a month without one. Migrate
// and Maintain create this month's partition and the next two; Maintain moves rows out of
// the default partition into their month's, rolls up closed days, and drops whole months
// older than its retention. The exact per-period counter is eco_usage_records; the rollup
// is eco_usage_daily (per user and day) and eco_usage_daily_endpoints (per user, day,
// method and endpoint, with a latency histogram); eco_usage_rollup_days lists the days
// whose rollup readers may use.
type UsageStore struct {
	db  *sqlx.DB
	now func() time.Time
}

// NewUsageStore returns a UsageStore over db, which must be migrated.
func NewUsageStore(db *sql.DB) *UsageStore { return &UsageStore{db: wrap(db), now: time.Now} }

// usageColumns are the columns of eco_api_usage that a batch fills.
var usageColumns = []string{"id", "key_id", "user_id", "endpoint", "method", "status", "latency_us", "bytes", "created_at"}

// insertBatch is the idempotent path: one statement, nine arrays unnested into rows, ON
// CONFLICT DO NOTHING skipping the rows already stored (the key is the ID and the time,
// which a record keeps across retries).
const insertBatch = `INSERT INTO eco_api_usage
	(id, key_id, user_id, endpoint, method, status, latency_us, bytes, created_at)
SELECT id, key_id, user_id, endpoint, method, status, latency_us, bytes,
	timestamptz 'epoch' + micros * interval '1 microsecond'
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::bigint[], $8::bigint[], $9::bigint[])
	AS t(id, key_id, user_id, endpoint, method, status, latency_us, bytes, micros)
ON CONFLICT (id, created_at) DO NOTHING`

// WriteBatch implements usage.Writer. It first streams the batch with COPY (the fastest
// way into PostgreSQL) in a transaction; when that meets a record ID already stored (a
// batch sent again after its answer was lost: rare), it rolls back and writes the batch
// with one INSERT … ON CONFLICT DO NOTHING instead. Either way the batch is stored
// whole or not at all. A batch holding records of days that may be rolled up already (late
// records) withdraws those days from eco_usage_rollup_days in the same transaction, under
// a lock Aggregate of the day also takes, so no late record is ever hidden by a rollup. Transient failures wrap usage.ErrRetriable; a record that fails
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
	late := s.lateDays(batch)
	err := s.copyBatch(ctx, batch, late)
	if uniqueViolation(err, "") { // some IDs are stored already
		err = s.insertBatch(ctx, batch, late)
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
func (s *UsageStore) copyBatch(ctx context.Context, batch []usage.Record, late []string) error {
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
		if len(late) > 0 {
			exec, ok := dc.(driver.ExecerContext)
			if !ok {
				return errors.New("driver cannot execute with a context")
			}
			arg := []driver.NamedValue{{Ordinal: 1, Value: dateArray(late)}}
			for _, q := range lateDaySQL {
				if _, err = exec.ExecContext(ctx, q, arg); err != nil {
					return err
				}
			}
		}
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

// insertBatch writes batch with one INSERT … ON CONFLICT DO NOTHING (in a transaction
// with the late days' statements when there are late days).
func (s *UsageStore) insertBatch(ctx context.Context, batch []usage.Record, late []string) error {
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
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if len(late) > 0 {
		for _, q := range lateDaySQL {
			if _, err := tx.ExecContext(ctx, q, dateArray(late)); err != nil {
				return err
			}
		}
	}
	if _, err := tx.ExecContext(ctx, insertBatch,
		pq.StringArray(ids), pq.StringArray(keys), pq.StringArray(users),
		pq.StringArray(endpoints), pq.StringArray(methods),
		pq.Int64Array(statuses), pq.Int64Array(latencies), pq.Int64Array(sizes), pq.Int64Array(micros)); err != nil {
		return err
	}
	return tx.Commit()
}

// dayLockKey is the advisory lock of one day's rollup ($1 a date), scoped to the schema:
// writers of late records take it shared, Aggregate exclusive.
const dayLockKey = `hashtextextended('nexus.usage.day.' || current_schema() || to_char(%s, 'YYYYMMDD'), 0)`

// lateDaySQL runs in a batch's transaction before its rows ($1: the batch's days that may
// be rolled up): wait for a running Aggregate of those days, and withdraw them from the
// rollup, so they are read from the log until Aggregate runs again.
var lateDaySQL = []string{
	`SELECT pg_advisory_xact_lock_shared(` + fmt.Sprintf(dayLockKey, "d") + `) FROM unnest($1::date[]) AS d ORDER BY d`,
	`DELETE FROM eco_usage_rollup_days WHERE day = ANY($1::date[])`,
}

// lateDays returns the distinct days of batch that may already be rolled up, by the
// store's clock: usually none.
func (s *UsageStore) lateDays(batch []usage.Record) []string {
	now := s.now()
	var out []string
	for i := range batch {
		if !usagecalc.MaybeClosed(batch[i].Time, now) {
			continue
		}
		d := dateString(batch[i].Time)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// dateArray is a PostgreSQL array literal of dates ("YYYY-MM-DD" strings).
func dateArray(days []string) string {
	v, _ := pq.StringArray(days).Value()
	if v == nil {
		return "{}"
	}
	return v.(string)
}

// Ping implements usage.Pinger: one round trip on a pooled connection (a new one when the
// pool has none), so the Tracker learns at once that the server is back.
func (s *UsageStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return classify("usage ping", err)
	}
	return nil
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
