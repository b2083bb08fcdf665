package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/nexus-ecosystem/nexus/auth"
)

// ThrottleStore is the auth.ThrottleStore in the eco_throttle table, shared by every
// instance of a service on one database, so login failures spread over instances are
// throttled together. Each Reserve is one INSERT … ON CONFLICT DO UPDATE statement,
// which takes the row's lock, so concurrent reservations are exact. Keys are stored as
// their SHA-256, so the table holds no emails or addresses. It is safe for concurrent
// use.
type ThrottleStore struct {
	db *sqlx.DB
}

var _ auth.ThrottleStore = (*ThrottleStore)(nil)

// NewThrottleStore returns a ThrottleStore over db, which must be migrated.
func NewThrottleStore(db *sql.DB) *ThrottleStore { return &ThrottleStore{db: wrap(db)} }

// reserveSQL runs auth.AttemptLimit.Reserve in one statement: $2 is now and $3 the window
// in microseconds, $4 the limit's Max. In the SET list every column reference is to the
// row before the update; a window is closed when now ≥ start + window.
const reserveSQL = `
INSERT INTO eco_throttle AS t (key_hash, count, start_us, end_us, ok)
VALUES ($1::bytea, 1, $2::bigint, $2::bigint + $3::bigint, true)
ON CONFLICT (key_hash) DO UPDATE SET
	count = CASE WHEN $2 >= t.start_us + $3 THEN 1
	             WHEN t.count < $4::integer THEN t.count + 1
	             ELSE t.count END,
	start_us = CASE WHEN $2 >= t.start_us + $3 THEN $2 ELSE t.start_us END,
	end_us = CASE WHEN $2 >= t.start_us + $3 THEN $2 + $3 ELSE GREATEST(t.end_us, t.start_us + $3) END,
	ok = $2 >= t.start_us + $3 OR t.count < $4
RETURNING ok, count, start_us`

// Reserve implements auth.ThrottleStore.
func (s *ThrottleStore) Reserve(ctx context.Context, key string, limit auth.AttemptLimit, now time.Time) (auth.Reservation, error) {
	if !limit.Valid() {
		return auth.Reservation{}, auth.ErrInvalidAttemptLimit
	}
	nowUS, window := now.UnixMicro(), limit.Window.Microseconds()
	var (
		r       auth.Reservation
		startUS int64
	)
	err := s.db.QueryRowContext(ctx, reserveSQL, throttleKey(key), nowUS, window, limit.Max).Scan(&r.OK, &r.Count, &startUS)
	if err != nil {
		return auth.Reservation{}, fmt.Errorf("postgres: throttle reserve: %w", err)
	}
	r.Start = time.UnixMicro(startUS).UTC()
	if !r.OK {
		r.RetryAfter = time.Duration(min(startUS+window-nowUS, window)) * time.Microsecond
	}
	return r, nil
}

// Release implements auth.ThrottleStore.
func (s *ThrottleStore) Release(ctx context.Context, key string, start time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE eco_throttle SET count = count - 1
		WHERE key_hash = $1 AND start_us = $2 AND count > 0`, throttleKey(key), start.UnixMicro())
	if err != nil {
		return fmt.Errorf("postgres: throttle release: %w", err)
	}
	return nil
}

// Reset implements auth.ThrottleStore.
func (s *ThrottleStore) Reset(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM eco_throttle WHERE key_hash = $1`, throttleKey(key)); err != nil {
		return fmt.Errorf("postgres: throttle reset: %w", err)
	}
	return nil
}

// Sweep deletes the counters whose window closed before now and returns how many it
// deleted. Run it now and then (hourly is plenty) to keep the table small; deleting a
// closed window changes no decision.
func (s *ThrottleStore) Sweep(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM eco_throttle WHERE end_us <= $1`, now.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("postgres: throttle sweep: %w", err)
	}
	return res.RowsAffected()
}

// throttleKey is what the table stores instead of a key.
func throttleKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}
