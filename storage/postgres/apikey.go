package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// KeyStore is an apikey.Store in the eco_api_keys table. It is safe for concurrent use.
type KeyStore struct {
	db *sqlx.DB
}

var _ apikey.Store = (*KeyStore)(nil)

// NewKeyStore returns a KeyStore over db, which must be migrated.
func NewKeyStore(db *sql.DB) *KeyStore { return &KeyStore{db: wrap(db)} }

const keyColumns = `id, owner_id, name, scopes, status, rate_limit_per_minute, key_hash,
	prev_key_hash, prev_valid_until, created_at, last_used_at, expires_at, rotated_at`

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

func utc(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

type scanner interface{ Scan(dest ...any) error }

func scanRecord(row scanner) (apikey.Record, error) {
	var (
		r                                     apikey.Record
		scopes                                pq.StringArray
		status                                string
		hash, prevHash                        []byte
		created                               time.Time
		prevUntil, lastUsed, expires, rotated sql.NullTime
	)
	err := row.Scan(&r.ID, &r.Owner, &r.Name, &scopes, &status, &r.RateLimitPerMinute, &hash,
		&prevHash, &prevUntil, &created, &lastUsed, &expires, &rotated)
	if err != nil {
		return apikey.Record{}, err
	}
	r.Scopes = []string(scopes)
	if r.Scopes == nil {
		r.Scopes = []string{}
	}
	r.Status = apikey.Status(status)
	copy(r.Hash[:], hash)
	copy(r.PrevHash[:], prevHash)
	r.PrevValidUntil = utc(prevUntil)
	r.CreatedAt = created.UTC()
	r.LastUsedAt, r.ExpiresAt, r.RotatedAt = utc(lastUsed), utc(expires), utc(rotated)
	return r, nil
}

// Create implements apikey.Store. With a cap it is one transaction that takes an
// advisory lock on the owner, then counts and inserts in one statement: a concurrent
// Create for the same owner waits for the lock, and its count sees this key.
func (s *KeyStore) Create(ctx context.Context, r apikey.Record, maxLive int) error {
	var prevHash []byte
	if !r.PrevHash.IsZero() {
		prevHash = r.PrevHash[:]
	}
	scopes := r.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	args := []any{r.ID, r.Owner, r.Name, pq.StringArray(scopes), string(r.Status), r.RateLimitPerMinute, r.Hash[:],
		prevHash, nullTime(r.PrevValidUntil), r.CreatedAt, nullTime(r.LastUsedAt), nullTime(r.ExpiresAt), nullTime(r.RotatedAt)}
	if maxLive <= 0 {
		_, err := s.db.ExecContext(ctx, `INSERT INTO eco_api_keys (`+keyColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, args...)
		return createError(err)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: create API key: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('nexus.apikey.owner.' || $1, 0))`, r.Owner); err != nil {
		return fmt.Errorf("postgres: create API key: lock owner: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO eco_api_keys (`+keyColumns+`)
		SELECT $1::text, $2::text, $3::text, $4::text[], $5::text, $6::integer, $7::bytea,
			$8::bytea, $9::timestamptz, $10::timestamptz, $11::timestamptz, $12::timestamptz, $13::timestamptz
		WHERE (SELECT count(*) FROM (SELECT 1 FROM eco_api_keys
			WHERE owner_id = $2 AND status = 'active' AND (expires_at IS NULL OR expires_at > $10)
			LIMIT $14) live) < $14`, append(args, maxLive)...)
	if err != nil {
		return createError(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: create API key: %w", err)
	} else if n == 0 {
		return apikey.ErrTooManyKeys
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: create API key: %w", err)
	}
	return nil
}

func createError(err error) error {
	if uniqueViolation(err, "") {
		return apikey.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("postgres: create API key: %w", err)
	}
	return nil
}

// Get implements apikey.Store.
func (s *KeyStore) Get(ctx context.Context, id ecoid.ID) (apikey.Record, error) {
	r, err := scanRecord(s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM eco_api_keys WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.Record{}, apikey.ErrNotFound
	}
	if err != nil {
		return apikey.Record{}, fmt.Errorf("postgres: get API key: %w", err)
	}
	return r, nil
}

// List implements apikey.Store: one statement on the (owner_id, created_at, id) index,
// and a second only to tell an unknown cursor from the end of the list.
func (s *KeyStore) List(ctx context.Context, owner, after ecoid.ID, limit int) ([]apikey.Key, error) {
	lim := sql.NullInt64{Int64: int64(limit), Valid: limit > 0} // NULL: LIMIT ALL
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM eco_api_keys
		WHERE owner_id = $1 AND ($2 = '' OR (created_at, id) >
			(SELECT created_at, id FROM eco_api_keys WHERE id = $2 AND owner_id = $1))
		ORDER BY created_at, id LIMIT $3`, owner, string(after), lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list API keys: %w", err)
	}
	defer rows.Close()
	out := []apikey.Key{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list API keys: %w", err)
		}
		out = append(out, r.Key)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list API keys: %w", err)
	}
	if len(out) == 0 && after != "" {
		var one int
		err := s.db.QueryRowContext(ctx, `SELECT 1 FROM eco_api_keys WHERE id = $1 AND owner_id = $2`, after, owner).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, apikey.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: list API keys: %w", err)
		}
	}
	return out, nil
}

// Revoke implements apikey.Store.
func (s *KeyStore) Revoke(ctx context.Context, owner, id ecoid.ID, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE eco_api_keys
		SET status = 'revoked', revoked_at = COALESCE(revoked_at, $3)
		WHERE id = $1 AND owner_id = $2`, id, owner, at)
	if err != nil {
		return fmt.Errorf("postgres: revoke API key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: revoke API key: %w", err)
	} else if n == 0 {
		return apikey.ErrNotFound
	}
	return nil
}

// Rotate implements apikey.Store. It is one statement: the check of the status and the
// swap of the hashes cannot interleave with another rotation or a revocation.
func (s *KeyStore) Rotate(ctx context.Context, owner, id ecoid.ID, hash apikey.Hash, prevValidUntil, at time.Time) error {
	grace := prevValidUntil.After(at)
	var status string
	err := s.db.QueryRowContext(ctx, `WITH k AS (
			SELECT id, status FROM eco_api_keys WHERE id = $1 AND owner_id = $2 FOR UPDATE
		), u AS (
			UPDATE eco_api_keys e SET
				prev_key_hash    = CASE WHEN $4 THEN e.key_hash END,
				prev_valid_until = CASE WHEN $4 THEN $5::timestamptz END,
				key_hash = $3, rotated_at = $6
			FROM k WHERE e.id = k.id AND k.status = 'active'
		)
		SELECT status FROM k`,
		id, owner, hash[:], grace, nullTime(prevValidUntil), at).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: rotate API key: %w", err)
	}
	if status != string(apikey.Active) {
		return apikey.ErrRevoked
	}
	return nil
}

// MarkUsed implements apikey.Store: one statement for the whole batch.
func (s *KeyStore) MarkUsed(ctx context.Context, uses []apikey.Use) error {
	if len(uses) == 0 {
		return nil
	}
	ids := make([]string, len(uses))
	ats := make([]string, len(uses))
	for i, u := range uses {
		ids[i] = string(u.ID)
		ats[i] = u.At.UTC().Format(time.RFC3339Nano)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE eco_api_keys e
		SET last_used_at = GREATEST(e.last_used_at, u.at)
		FROM (SELECT id, max(at) AS at
		      FROM unnest($1::text[], $2::timestamptz[]) AS x(id, at) GROUP BY id) u
		WHERE e.id = u.id`, pq.StringArray(ids), pq.StringArray(ats))
	if err != nil {
		return fmt.Errorf("postgres: mark API keys used: %w", err)
	}
	return nil
}
