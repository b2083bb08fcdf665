package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nexus-ecosystem/nexus/apikey"
)

// Limiter is an apikey.Limiter whose state lives in the eco_rate_limits table, for
// services that run several instances without Redis. Each decision is one INSERT … ON
// CONFLICT DO UPDATE statement, which takes the row's lock, so concurrent decisions are
// exact. Time comes from the database server (clock_timestamp) unless WithClock
// says otherwise, so instances with skewed clocks agree. It is safe for concurrent use.
type Limiter struct {
	db  *sqlx.DB
	now func() time.Time // nil: the server's clock
}

var _ apikey.Limiter = (*Limiter)(nil)

// Option configures NewLimiter.
type Option func(*Limiter)

// WithClock makes the limiter use now instead of the database server's clock
// (for tests).
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) { l.now = now }
}

// NewLimiter returns a Limiter over db, which must be migrated.
func NewLimiter(db *sql.DB, opts ...Option) *Limiter {
	l := &Limiter{db: wrap(db)}
	for _, o := range opts {
		o(l)
	}
	return l
}

// allowSQL runs apikey.GCRA.Step in one statement. $3 is the caller's time in Unix
// microseconds, or NULL for the server's; $4 the interval and $5 the burst. In the SET
// list every column reference is to the row before the update.
const allowSQL = `
WITH p AS (
	SELECT COALESCE($3::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS now
)
INSERT INTO eco_rate_limits AS r (policy, subject, tat_us, seen_us, allowed)
SELECT $1::text, $2::text, p.now + $4::bigint, p.now, $4::bigint <= $5::bigint FROM p
ON CONFLICT (policy, subject) DO UPDATE SET
	seen_us = GREATEST(r.seen_us, EXCLUDED.seen_us),
	allowed = GREATEST(r.tat_us, r.seen_us, EXCLUDED.seen_us) + $4 - GREATEST(r.seen_us, EXCLUDED.seen_us) <= $5,
	tat_us = CASE
		WHEN GREATEST(r.tat_us, r.seen_us, EXCLUDED.seen_us) + $4 - GREATEST(r.seen_us, EXCLUDED.seen_us) <= $5
		THEN GREATEST(r.tat_us, r.seen_us, EXCLUDED.seen_us) + $4
		ELSE r.tat_us END
RETURNING allowed, tat_us, seen_us`

// Allow implements apikey.Limiter. It returns apikey.ErrInvalidLimit for an unusable
// limit, and the database's error when the statement fails.
func (l *Limiter) Allow(ctx context.Context, key string, limit apikey.Limit) (apikey.Decision, error) {
	g, err := limit.GCRA()
	if err != nil {
		return apikey.Decision{}, err
	}
	var now sql.NullInt64
	if l.now != nil {
		now = sql.NullInt64{Int64: l.now().UnixMicro(), Valid: true}
	}
	var (
		allowed   bool
		tat, seen int64
	)
	err = l.db.QueryRowContext(ctx, allowSQL, limit.Policy(), key, now, g.Interval, g.Burst).Scan(&allowed, &tat, &seen)
	if err != nil {
		return apikey.Decision{}, fmt.Errorf("postgres: rate limit: %w", err)
	}
	return g.Decision(allowed, tat, seen), nil
}

// Sweep deletes the rows that are idle (whose whole burst is available again) and
// returns how many it deleted. Run it now and then, e.g. hourly, to keep the table small;
// deleting an idle row changes no decision.
func (l *Limiter) Sweep(ctx context.Context) (int64, error) {
	var now sql.NullInt64
	if l.now != nil {
		now = sql.NullInt64{Int64: l.now().UnixMicro(), Valid: true}
	}
	res, err := l.db.ExecContext(ctx, `DELETE FROM eco_rate_limits
		WHERE tat_us <= COALESCE($1::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint)`, now)
	if err != nil {
		return 0, fmt.Errorf("postgres: sweep rate limits: %w", err)
	}
	return res.RowsAffected()
}
