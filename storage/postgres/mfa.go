package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var _ auth.MFAStore = (*AuthStore)(nil)

// The MFA methods of AuthStore work on the tables of migration 0008_mfa.sql. Every
// compare-and-set is one conditional UPDATE: PostgreSQL re-checks its WHERE clause on the
// newest row version after waiting for a concurrent writer, so of racing callers (on any
// number of instances) exactly one sees its row change.

// PutPendingTOTP implements auth.MFAStore.
func (s *AuthStore) PutPendingTOTP(ctx context.Context, userID ecoid.ID, sealed []byte, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `
		INSERT INTO eco_mfa_totp (user_id, secret_sealed, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed,
			created_at = EXCLUDED.created_at, last_step = -1
		WHERE eco_mfa_totp.enabled_at IS NULL`, string(userID), sealed, at)
	if authFKViolation(err) {
		return auth.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: put pending totp: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: put pending totp: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: totp already enabled", auth.ErrConflict)
	}
	return nil
}

// TOTP implements auth.MFAStore.
func (s *AuthStore) TOTP(ctx context.Context, userID ecoid.ID) (auth.TOTPState, error) {
	st := auth.TOTPState{UserID: userID}
	var enabled sql.NullTime
	err := s.db.QueryRowContext(ctx,
		`SELECT secret_sealed, created_at, enabled_at, last_step FROM eco_mfa_totp WHERE user_id = $1`,
		string(userID)).Scan(&st.Sealed, &st.CreatedAt, &enabled, &st.LastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.TOTPState{}, auth.ErrNotFound
	}
	if err != nil {
		return auth.TOTPState{}, fmt.Errorf("postgres: totp: %w", err)
	}
	st.CreatedAt = st.CreatedAt.UTC()
	if enabled.Valid {
		st.EnabledAt = enabled.Time.UTC()
	}
	return st, nil
}

// EnableTOTP implements auth.MFAStore.
func (s *AuthStore) EnableTOTP(ctx context.Context, userID ecoid.ID, sealed []byte, step int64, recoveryHashes [][]byte, at time.Time) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: enable totp: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `
		UPDATE eco_mfa_totp SET enabled_at = $3, last_step = $4
		WHERE user_id = $1 AND enabled_at IS NULL AND secret_sealed = $2`, string(userID), sealed, at, step)
	if err != nil {
		return fmt.Errorf("postgres: enable totp: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: enable totp: %w", err)
	} else if n == 0 {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM eco_mfa_totp WHERE user_id = $1`, string(userID)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return auth.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("postgres: enable totp: %w", err)
		}
		return fmt.Errorf("%w: enabled already or re-enrolled", auth.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM eco_mfa_recovery_codes WHERE user_id = $1`, string(userID)); err != nil {
		return fmt.Errorf("postgres: enable totp: recovery codes: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO eco_mfa_recovery_codes (user_id, code_hash)
		SELECT $1, h FROM unnest($2::bytea[]) AS h ON CONFLICT DO NOTHING`,
		string(userID), pq.ByteaArray(recoveryHashes)); err != nil {
		return fmt.Errorf("postgres: enable totp: recovery codes: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: enable totp: commit: %w", err)
	}
	return nil
}

// DeleteTOTP implements auth.MFAStore, in one statement.
func (s *AuthStore) DeleteTOTP(ctx context.Context, userID ecoid.ID) error {
	var n int
	err := s.db.QueryRowContext(ctx, `
		WITH t AS (DELETE FROM eco_mfa_totp WHERE user_id = $1 RETURNING 1),
		     r AS (DELETE FROM eco_mfa_recovery_codes WHERE user_id = $1),
		     c AS (DELETE FROM eco_mfa_challenges WHERE user_id = $1)
		SELECT count(*) FROM t`, string(userID)).Scan(&n)
	if err != nil {
		return fmt.Errorf("postgres: delete totp: %w", err)
	}
	if n == 0 {
		return auth.ErrNotFound
	}
	return nil
}

// UseTOTPStep implements auth.MFAStore: a compare-and-set on last_step.
func (s *AuthStore) UseTOTPStep(ctx context.Context, userID ecoid.ID, step int64) error {
	res, err := s.db.ExecContext(ctx, `
		UPDATE eco_mfa_totp SET last_step = $2
		WHERE user_id = $1 AND enabled_at IS NOT NULL AND last_step < $2`, string(userID), step)
	if err != nil {
		return fmt.Errorf("postgres: use totp step: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: use totp step: %w", err)
	} else if n == 1 {
		return nil
	}
	var enabled bool
	err = s.db.QueryRowContext(ctx, `SELECT enabled_at IS NOT NULL FROM eco_mfa_totp WHERE user_id = $1`, string(userID)).Scan(&enabled)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !enabled) {
		return auth.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: use totp step: %w", err)
	}
	return fmt.Errorf("%w: time step already used", auth.ErrConflict)
}

// UseRecoveryCode implements auth.MFAStore.
func (s *AuthStore) UseRecoveryCode(ctx context.Context, userID ecoid.ID, hash []byte, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `
		UPDATE eco_mfa_recovery_codes SET used_at = $3
		WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`, string(userID), hash, at)
	if err != nil {
		return fmt.Errorf("postgres: use recovery code: %w", err)
	}
	return authNoneAffected(res)
}

// RecoveryCodesLeft implements auth.MFAStore.
func (s *AuthStore) RecoveryCodesLeft(ctx context.Context, userID ecoid.ID) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM eco_mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL`, string(userID)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: recovery codes left: %w", err)
	}
	return n, nil
}

// CreateMFAChallenge implements auth.MFAStore: one transaction deletes the user's
// expired challenges and those beyond the newest MaxMFAChallenges-1, then inserts c.
func (s *AuthStore) CreateMFAChallenge(ctx context.Context, c auth.MFAChallenge) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: create mfa challenge: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `
		DELETE FROM eco_mfa_challenges WHERE user_id = $1 AND (expires_at <= $2 OR token_hash NOT IN (
			SELECT token_hash FROM eco_mfa_challenges WHERE user_id = $1 AND expires_at > $2
			ORDER BY created_at DESC, token_hash LIMIT $3))`,
		string(c.UserID), c.CreatedAt, auth.MaxMFAChallenges-1); err != nil {
		return fmt.Errorf("postgres: create mfa challenge: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO eco_mfa_challenges (token_hash, user_id, ip, user_agent, attempts, created_at, expires_at)
		VALUES ($1, $2, $3, $4, 0, $5, $6)`,
		c.TokenHash, string(c.UserID), c.IP, c.UserAgent, c.CreatedAt, c.ExpiresAt)
	if authFKViolation(err) {
		return auth.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: create mfa challenge: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: create mfa challenge: commit: %w", err)
	}
	return nil
}

const challengeCols = `user_id, ip, user_agent, attempts, created_at, expires_at`

func scanChallenge(row *sql.Row, hash []byte) (auth.MFAChallenge, error) {
	c := auth.MFAChallenge{TokenHash: hash}
	var uid string
	if err := row.Scan(&uid, &c.IP, &c.UserAgent, &c.Attempts, &c.CreatedAt, &c.ExpiresAt); err != nil {
		return auth.MFAChallenge{}, err
	}
	c.UserID, c.CreatedAt, c.ExpiresAt = ecoid.ID(uid), c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	return c, nil
}

// ReserveMFAAttempt implements auth.MFAStore: one conditional UPDATE counts the attempt.
func (s *AuthStore) ReserveMFAAttempt(ctx context.Context, tokenHash []byte, max int, now time.Time) (auth.MFAChallenge, error) {
	c, err := scanChallenge(s.db.QueryRowContext(ctx, `
		UPDATE eco_mfa_challenges SET attempts = attempts + 1
		WHERE token_hash = $1 AND expires_at > $3 AND attempts < $2
		RETURNING `+challengeCols, tokenHash, max, now), tokenHash)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return auth.MFAChallenge{}, fmt.Errorf("postgres: reserve mfa attempt: %w", err)
	}
	c, err = scanChallenge(s.db.QueryRowContext(ctx,
		`SELECT `+challengeCols+` FROM eco_mfa_challenges WHERE token_hash = $1 AND expires_at > $2`, tokenHash, now), tokenHash)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.MFAChallenge{}, auth.ErrNotFound
	}
	if err != nil {
		return auth.MFAChallenge{}, fmt.Errorf("postgres: reserve mfa attempt: %w", err)
	}
	return c, fmt.Errorf("%w: no attempts left", auth.ErrConflict)
}

// DeleteMFAChallenge implements auth.MFAStore.
func (s *AuthStore) DeleteMFAChallenge(ctx context.Context, tokenHash []byte) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM eco_mfa_challenges WHERE token_hash = $1`, tokenHash)
	if err != nil {
		return fmt.Errorf("postgres: delete mfa challenge: %w", err)
	}
	return authNoneAffected(res)
}
