package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
)

var _ sso.Store = (*SSOStore)(nil)

// SSOStore implements sso.Store: registered projects and authorization codes. It is safe
// for concurrent use.
type SSOStore struct {
	db *sqlx.DB
}

// NewSSOStore returns an SSOStore over db, which must be migrated (see Migrate).
func NewSSOStore(db *sql.DB) *SSOStore { return &SSOStore{db: wrap(db)} }

type projectRow struct {
	ID           ecoid.ID       `db:"id"`
	Name         string         `db:"name"`
	RedirectURIs pq.StringArray `db:"redirect_uris"`
	CreatedAt    time.Time      `db:"created_at"`
}

func (r projectRow) project() sso.Project {
	return sso.Project{ID: r.ID, Name: r.Name, RedirectURIs: []string(r.RedirectURIs), CreatedAt: r.CreatedAt.UTC()}
}

// CreateProject implements sso.Store.
func (s *SSOStore) CreateProject(ctx context.Context, p sso.Project, secretHash []byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO eco_projects (id, name, redirect_uris, secret_hash, created_at)
		VALUES ($1, $2, $3, $4, $5)`, p.ID, p.Name, pq.StringArray(p.RedirectURIs), secretHash, p.CreatedAt)
	if uniqueViolation(err, "") {
		return fmt.Errorf("postgres: create project: %w", sso.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: create project: %w", err)
	}
	return nil
}

// Project implements sso.Store.
func (s *SSOStore) Project(ctx context.Context, id ecoid.ID) (sso.Project, error) {
	var r projectRow
	err := s.db.GetContext(ctx, &r, `SELECT id, name, redirect_uris, created_at FROM eco_projects WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return sso.Project{}, sso.ErrNotFound
	}
	if err != nil {
		return sso.Project{}, fmt.Errorf("postgres: project: %w", err)
	}
	return r.project(), nil
}

// ProjectSecretHash implements sso.Store.
func (s *SSOStore) ProjectSecretHash(ctx context.Context, id ecoid.ID) ([]byte, error) {
	var h []byte
	err := s.db.QueryRowContext(ctx, `SELECT secret_hash FROM eco_projects WHERE id = $1`, id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sso.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: project secret: %w", err)
	}
	return h, nil
}

// Projects implements sso.Store.
func (s *SSOStore) Projects(ctx context.Context) ([]sso.Project, error) {
	var rows []projectRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, name, redirect_uris, created_at FROM eco_projects ORDER BY id`); err != nil {
		return nil, fmt.Errorf("postgres: projects: %w", err)
	}
	out := make([]sso.Project, len(rows))
	for i, r := range rows {
		out[i] = r.project()
	}
	return out, nil
}

const codeColumns = `hash, project_id, user_id, redirect_uri, challenge, nonce, scope, auth_time,
	expires_at, used_at, session_id, created_at, signin_session`

type codeRow struct {
	Hash        []byte       `db:"hash"`
	ProjectID   ecoid.ID     `db:"project_id"`
	UserID      ecoid.ID     `db:"user_id"`
	RedirectURI string       `db:"redirect_uri"`
	Challenge   string       `db:"challenge"`
	Nonce       string       `db:"nonce"`
	Scope       string       `db:"scope"`
	AuthTime    time.Time    `db:"auth_time"`
	ExpiresAt   time.Time    `db:"expires_at"`
	UsedAt      sql.NullTime `db:"used_at"`
	SessionID   string       `db:"session_id"`
	CreatedAt   time.Time    `db:"created_at"`
	SignIn      string       `db:"signin_session"`
}

func (r codeRow) code() sso.Code {
	c := sso.Code{Hash: r.Hash, ProjectID: r.ProjectID, UserID: r.UserID, RedirectURI: r.RedirectURI,
		Challenge: r.Challenge, Nonce: r.Nonce, Scope: r.Scope, AuthTime: r.AuthTime.UTC(),
		ExpiresAt: r.ExpiresAt.UTC(), SessionID: ecoid.ID(r.SessionID), CreatedAt: r.CreatedAt.UTC(),
		SignInSession: ecoid.ID(r.SignIn)}
	if r.UsedAt.Valid {
		c.UsedAt = r.UsedAt.Time.UTC()
	}
	return c
}

// CreateCode implements sso.Store.
func (s *SSOStore) CreateCode(ctx context.Context, c sso.Code) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO eco_oauth_codes (`+codeColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, '', $10, $11)`,
		c.Hash, c.ProjectID, c.UserID, c.RedirectURI, c.Challenge, c.Nonce, c.Scope, c.AuthTime, c.ExpiresAt, c.CreatedAt, string(c.SignInSession))
	switch {
	case uniqueViolation(err, ""):
		return fmt.Errorf("postgres: create code: %w", sso.ErrConflict)
	case authFKViolation(err):
		return fmt.Errorf("postgres: create code: %w", sso.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: create code: %w", err)
	}
	return nil
}

// RedeemCode implements sso.Store. The conditional UPDATE takes the row lock, so of
// concurrent redemptions exactly one sees used_at NULL.
func (s *SSOStore) RedeemCode(ctx context.Context, hash []byte, at time.Time) (sso.Code, error) {
	var r codeRow
	err := s.db.GetContext(ctx, &r, `UPDATE eco_oauth_codes SET used_at = $2
		WHERE hash = $1 AND used_at IS NULL RETURNING `+codeColumns, hash, at)
	if err == nil {
		return r.code(), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return sso.Code{}, fmt.Errorf("postgres: redeem code: %w", err)
	}
	err = s.db.GetContext(ctx, &r, `SELECT `+codeColumns+` FROM eco_oauth_codes WHERE hash = $1`, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return sso.Code{}, sso.ErrNotFound
	}
	if err != nil {
		return sso.Code{}, fmt.Errorf("postgres: redeem code: %w", err)
	}
	return r.code(), sso.ErrCodeUsed
}

// SetCodeSession implements sso.Store.
func (s *SSOStore) SetCodeSession(ctx context.Context, hash []byte, sessionID ecoid.ID) error {
	res, err := s.db.ExecContext(ctx, `UPDATE eco_oauth_codes SET session_id = $2 WHERE hash = $1`, hash, sessionID)
	if err != nil {
		return fmt.Errorf("postgres: set code session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sso.ErrNotFound
	}
	return nil
}

// DeleteExpiredCodes implements sso.Store.
func (s *SSOStore) DeleteExpiredCodes(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM eco_oauth_codes WHERE expires_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired codes: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// BindSession implements sso.Store.
func (s *SSOStore) BindSession(ctx context.Context, sessionID, projectID ecoid.ID, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO eco_oauth_sessions (session_id, project_id, created_at)
		VALUES ($1, $2, $3)`, sessionID, projectID, at)
	switch {
	case uniqueViolation(err, ""):
		return fmt.Errorf("postgres: bind session: %w", sso.ErrConflict)
	case authFKViolation(err):
		return fmt.Errorf("postgres: bind session: %w", sso.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: bind session: %w", err)
	}
	return nil
}

// SessionProject implements sso.Store.
func (s *SSOStore) SessionProject(ctx context.Context, sessionID ecoid.ID) (ecoid.ID, error) {
	var p ecoid.ID
	err := s.db.QueryRowContext(ctx, `SELECT project_id FROM eco_oauth_sessions WHERE session_id = $1`, sessionID).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return "", sso.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("postgres: session project: %w", err)
	}
	return p, nil
}
