package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// The auth.AccountStore half of AuthStore, on the tables of migration 0006_accounts.sql.

// verifiedAt is when CreateUser records a user created as verified: at creation.
func verifiedAt(u auth.User) time.Time {
	if u.EmailVerified {
		return u.CreatedAt
	}
	return time.Time{}
}

type tokenRow struct {
	UserID    ecoid.ID  `db:"user_id"`
	Purpose   string    `db:"purpose"`
	Hash      []byte    `db:"token_hash"`
	Email     string    `db:"email"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

func (r tokenRow) token() auth.OneTimeToken {
	return auth.OneTimeToken{
		Hash: r.Hash, UserID: r.UserID, Purpose: auth.TokenPurpose(r.Purpose), Email: r.Email,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}
}

const tokenColumns = `user_id, purpose, token_hash, email, created_at, expires_at`

// SaveOneTimeToken implements auth.AccountStore with one upsert.
func (s *AuthStore) SaveOneTimeToken(ctx context.Context, t auth.OneTimeToken) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO eco_one_time_tokens (`+tokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id, purpose) DO UPDATE SET token_hash = EXCLUDED.token_hash, email = EXCLUDED.email,
			created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at`,
		string(t.UserID), string(t.Purpose), t.Hash, t.Email, t.CreatedAt, t.ExpiresAt)
	switch {
	case authFKViolation(err):
		return fmt.Errorf("%w: user %s", auth.ErrNotFound, t.UserID)
	case uniqueViolation(err, ""):
		return fmt.Errorf("%w: token hash exists", auth.ErrConflict)
	case err != nil:
		return fmt.Errorf("postgres: save one-time token: %w", err)
	}
	return nil
}

// ConsumeOneTimeToken implements auth.AccountStore with one DELETE … RETURNING: of
// concurrent calls, the row lock lets exactly one delete it.
func (s *AuthStore) ConsumeOneTimeToken(ctx context.Context, hash []byte, purpose auth.TokenPurpose, now time.Time) (auth.OneTimeToken, error) {
	var r tokenRow
	err := s.db.GetContext(ctx, &r, `DELETE FROM eco_one_time_tokens WHERE token_hash = $1 AND purpose = $2
		RETURNING `+tokenColumns, hash, string(purpose))
	if err != nil {
		return auth.OneTimeToken{}, authNotFound("one-time token", err)
	}
	if !now.Before(r.ExpiresAt) {
		return auth.OneTimeToken{}, fmt.Errorf("%w: one-time token expired", auth.ErrNotFound)
	}
	return r.token(), nil
}

// DeleteOneTimeTokens implements auth.AccountStore.
func (s *AuthStore) DeleteOneTimeTokens(ctx context.Context, userID ecoid.ID, purpose auth.TokenPurpose) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM eco_one_time_tokens WHERE user_id = $1 AND ($2 = '' OR purpose = $2)`,
		string(userID), string(purpose)); err != nil {
		return fmt.Errorf("postgres: delete one-time tokens: %w", err)
	}
	return nil
}

// OneTimeTokens implements auth.AccountStore.
func (s *AuthStore) OneTimeTokens(ctx context.Context, userID ecoid.ID) ([]auth.OneTimeToken, error) {
	var rows []tokenRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+tokenColumns+` FROM eco_one_time_tokens
		WHERE user_id = $1 ORDER BY purpose`, string(userID)); err != nil {
		return nil, fmt.Errorf("postgres: one-time tokens: %w", err)
	}
	out := make([]auth.OneTimeToken, len(rows))
	for i, r := range rows {
		out[i] = r.token()
	}
	return out, nil
}

// SetEmailVerified implements auth.AccountStore.
func (s *AuthStore) SetEmailVerified(ctx context.Context, userID ecoid.ID, email string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE eco_identities SET email_verified_at = COALESCE(email_verified_at, $3)
		WHERE id = $1 AND lower(email) = lower($2)`, string(userID), email, at)
	if err != nil {
		return fmt.Errorf("postgres: set email verified: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	if _, err := s.UserByID(ctx, userID); err != nil {
		return err
	}
	return fmt.Errorf("%w: the email changed", auth.ErrConflict)
}

// UpdateProfile implements auth.AccountStore.
func (s *AuthStore) UpdateProfile(ctx context.Context, userID ecoid.ID, fullName string, at time.Time) (auth.User, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO eco_profiles (user_id, full_name, updated_at)
		SELECT id, $2, $3 FROM eco_identities WHERE id = $1
		ON CONFLICT (user_id) DO UPDATE SET full_name = EXCLUDED.full_name, updated_at = EXCLUDED.updated_at`,
		string(userID), fullName, at)
	if err != nil {
		return auth.User{}, fmt.Errorf("postgres: update profile: %w", err)
	}
	if err := authNoneAffected(res); err != nil {
		return auth.User{}, err
	}
	return s.UserByID(ctx, userID)
}

// UserSessions implements auth.AccountStore.
func (s *AuthStore) UserSessions(ctx context.Context, userID ecoid.ID) ([]auth.Session, error) {
	var rows []sessionRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, user_id, refresh_hash, prev_hash, created_at, rotated_at,
		expires_at, revoked_at, ip, user_agent FROM eco_sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC`,
		string(userID)); err != nil {
		return nil, fmt.Errorf("postgres: user sessions: %w", err)
	}
	out := make([]auth.Session, len(rows))
	for i, r := range rows {
		out[i] = auth.Session{
			ID: r.ID, UserID: r.UserID, RefreshHash: r.RefreshHash, PrevHash: r.PrevHash,
			CreatedAt: r.CreatedAt.UTC(), RotatedAt: r.RotatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
			IP: r.IP, UserAgent: r.UserAgent,
		}
		if r.RevokedAt.Valid {
			out[i].RevokedAt = r.RevokedAt.Time.UTC()
		}
	}
	return out, nil
}

// AccountActivities implements auth.AccountStore.
func (s *AuthStore) AccountActivities(ctx context.Context, userID ecoid.ID, email string, limit int) ([]auth.Activity, error) {
	if limit <= 0 {
		limit = 100
	}
	var rows []activityRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, user_id, email, action, success, detail, ip, user_agent, created_at
		FROM eco_activity_log WHERE user_id = $1 OR (user_id IS NULL AND $2 <> '' AND email = $2)
		ORDER BY created_at DESC, id DESC LIMIT $3`, string(userID), email, limit); err != nil {
		return nil, fmt.Errorf("postgres: account activities: %w", err)
	}
	out := make([]auth.Activity, len(rows))
	for i, r := range rows {
		out[i] = auth.Activity{
			ID: r.ID, UserID: ecoid.ID(r.UserID.String), Email: r.Email, Action: auth.Action(r.Action),
			Success: r.Success, Detail: r.Detail, IP: r.IP, UserAgent: r.UserAgent, At: r.CreatedAt.UTC(),
		}
	}
	return out, nil
}

// EraseUser implements auth.AccountStore in one transaction: the activity entries of the
// user or naming its email, then the identity, whose credentials, profile, sessions,
// grants, one-time tokens and authorization codes go with it (ON DELETE CASCADE).
func (s *AuthStore) EraseUser(ctx context.Context, userID ecoid.ID) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: erase user: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var email string
	err = tx.GetContext(ctx, &email, `SELECT email FROM eco_identities WHERE id = $1 FOR UPDATE`, string(userID))
	if errors.Is(err, sql.ErrNoRows) {
		return auth.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: erase user: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM eco_activity_log WHERE user_id = $1 OR email = $2`, string(userID), email); err != nil {
		return fmt.Errorf("postgres: erase user: activity: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM eco_identities WHERE id = $1`, string(userID)); err != nil {
		return fmt.Errorf("postgres: erase user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: erase user: commit: %w", err)
	}
	return nil
}
