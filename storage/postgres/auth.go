package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var _ auth.Store = (*AuthStore)(nil)

// AuthStore implements auth.Store on the tables of migration 0001_auth.sql. It is safe
// for concurrent use.
type AuthStore struct {
	db *sqlx.DB
}

// NewAuthStore returns an AuthStore over db, which must be migrated (see Migrate).
func NewAuthStore(db *sql.DB) *AuthStore { return &AuthStore{db: wrap(db)} }

// authFKViolation reports a foreign-key error.
func authFKViolation(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23503"
}

// CreateUser implements auth.UserStore.
func (s *AuthStore) CreateUser(ctx context.Context, u auth.User, passwordHash string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO eco_identities (id, email, created_at, email_verified_at) VALUES ($1, $2, $3, $4)`,
		string(u.ID), u.Email, u.CreatedAt, authNullTime(verifiedAt(u))); err != nil {
		if uniqueViolation(err, "eco_identities_email_key") {
			return auth.ErrEmailTaken
		}
		if uniqueViolation(err, "") {
			return fmt.Errorf("%w: user %s exists", auth.ErrConflict, u.ID)
		}
		return fmt.Errorf("postgres: create user: %w", err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO eco_credentials (user_id, password_hash, updated_at) VALUES ($1, $2, $3)`, string(u.ID), passwordHash, u.CreatedAt); err != nil {
		return fmt.Errorf("postgres: create user: credentials: %w", err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO eco_profiles (user_id, full_name, updated_at) VALUES ($1, $2, $3)`, string(u.ID), u.FullName, u.CreatedAt); err != nil {
		return fmt.Errorf("postgres: create user: profile: %w", err)
	}
	if err := tx.Commit(); err != nil {
		if uniqueViolation(err, "eco_identities_email_key") {
			return auth.ErrEmailTaken
		}
		return fmt.Errorf("postgres: create user: commit: %w", err)
	}
	return nil
}

// DeleteUser implements auth.UserStore. Credentials, profile, sessions and grants go with
// the identity (ON DELETE CASCADE); the activity log stays.
func (s *AuthStore) DeleteUser(ctx context.Context, id ecoid.ID) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM eco_identities WHERE id = $1`, string(id))
	if err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	return authNoneAffected(res)
}

type userRow struct {
	ID        ecoid.ID  `db:"id"`
	Email     string    `db:"email"`
	FullName  string    `db:"full_name"`
	CreatedAt time.Time `db:"created_at"`
	Verified  bool      `db:"email_verified"`
}

func (r userRow) user() auth.User {
	return auth.User{ID: r.ID, Email: r.Email, FullName: r.FullName, CreatedAt: r.CreatedAt.UTC(), EmailVerified: r.Verified}
}

const selectUser = `SELECT i.id, i.email, COALESCE(p.full_name, '') AS full_name, i.created_at,
	i.email_verified_at IS NOT NULL AS email_verified
	FROM eco_identities i LEFT JOIN eco_profiles p ON p.user_id = i.id `

// UserByID implements auth.UserStore.
func (s *AuthStore) UserByID(ctx context.Context, id ecoid.ID) (auth.User, error) {
	var r userRow
	if err := s.db.GetContext(ctx, &r, selectUser+`WHERE i.id = $1`, string(id)); err != nil {
		return auth.User{}, authNotFound("user", err)
	}
	return r.user(), nil
}

// UserByEmail implements auth.UserStore.
func (s *AuthStore) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	var r userRow
	if err := s.db.GetContext(ctx, &r, selectUser+`WHERE lower(i.email) = lower($1)`, email); err != nil {
		return auth.User{}, authNotFound("user", err)
	}
	return r.user(), nil
}

// PasswordHash implements auth.UserStore.
func (s *AuthStore) PasswordHash(ctx context.Context, userID ecoid.ID) (string, error) {
	var h string
	if err := s.db.GetContext(ctx, &h, `SELECT password_hash FROM eco_credentials WHERE user_id = $1`, string(userID)); err != nil {
		return "", authNotFound("password hash", err)
	}
	return h, nil
}

// SetPasswordHash implements auth.UserStore.
func (s *AuthStore) SetPasswordHash(ctx context.Context, userID ecoid.ID, hash string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO eco_credentials (user_id, password_hash, updated_at)
		SELECT id, $2, $3 FROM eco_identities WHERE id = $1
		ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = EXCLUDED.updated_at`,
		string(userID), hash, at)
	if err != nil {
		return fmt.Errorf("postgres: set password hash: %w", err)
	}
	return authNoneAffected(res)
}

type sessionRow struct {
	ID          ecoid.ID     `db:"id"`
	UserID      ecoid.ID     `db:"user_id"`
	RefreshHash []byte       `db:"refresh_hash"`
	PrevHash    []byte       `db:"prev_hash"`
	CreatedAt   time.Time    `db:"created_at"`
	RotatedAt   time.Time    `db:"rotated_at"`
	ExpiresAt   time.Time    `db:"expires_at"`
	RevokedAt   sql.NullTime `db:"revoked_at"`
	IP          string       `db:"ip"`
	UserAgent   string       `db:"user_agent"`
}

// CreateSession implements auth.SessionStore.
func (s *AuthStore) CreateSession(ctx context.Context, sess auth.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO eco_sessions
		(id, user_id, refresh_hash, prev_hash, created_at, rotated_at, expires_at, revoked_at, ip, user_agent)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		string(sess.ID), string(sess.UserID), sess.RefreshHash, sess.PrevHash, sess.CreatedAt, sess.RotatedAt, sess.ExpiresAt,
		authNullTime(sess.RevokedAt), sess.IP, sess.UserAgent)
	switch {
	case authFKViolation(err):
		return fmt.Errorf("%w: user %s", auth.ErrNotFound, sess.UserID)
	case uniqueViolation(err, ""):
		return fmt.Errorf("%w: session %s exists", auth.ErrConflict, sess.ID)
	case err != nil:
		return fmt.Errorf("postgres: create session: %w", err)
	}
	return nil
}

// Session implements auth.SessionStore.
func (s *AuthStore) Session(ctx context.Context, id ecoid.ID) (auth.Session, error) {
	var r sessionRow
	if err := s.db.GetContext(ctx, &r, `SELECT * FROM eco_sessions WHERE id = $1`, string(id)); err != nil {
		return auth.Session{}, authNotFound("session", err)
	}
	out := auth.Session{
		ID: r.ID, UserID: r.UserID, RefreshHash: r.RefreshHash, PrevHash: r.PrevHash,
		CreatedAt: r.CreatedAt.UTC(), RotatedAt: r.RotatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
		IP: r.IP, UserAgent: r.UserAgent,
	}
	if r.RevokedAt.Valid {
		out.RevokedAt = r.RevokedAt.Time.UTC()
	}
	return out, nil
}

// RotateSession implements auth.SessionStore with one conditional UPDATE.
func (s *AuthStore) RotateSession(ctx context.Context, id ecoid.ID, oldHash, newHash []byte, expiresAt, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE eco_sessions
		SET prev_hash = refresh_hash, refresh_hash = $3, rotated_at = $4, expires_at = $5
		WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL`,
		string(id), oldHash, newHash, at, expiresAt)
	if err != nil {
		return fmt.Errorf("postgres: rotate session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return s.conflictOrNotFound(ctx, id)
}

func (s *AuthStore) conflictOrNotFound(ctx context.Context, id ecoid.ID) error {
	var one int
	err := s.db.GetContext(ctx, &one, `SELECT 1 FROM eco_sessions WHERE id = $1`, string(id))
	if err != nil {
		return authNotFound("session", err)
	}
	return auth.ErrConflict
}

// RevokeSession implements auth.SessionStore.
func (s *AuthStore) RevokeSession(ctx context.Context, id ecoid.ID, at time.Time) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE eco_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`, string(id), at)
	if err != nil {
		return fmt.Errorf("postgres: revoke session: %w", err)
	}
	return authNoneAffected(res)
}

// RevokeUserSessions implements auth.SessionStore.
func (s *AuthStore) RevokeUserSessions(ctx context.Context, userID, except ecoid.ID, at time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE eco_sessions SET revoked_at = $3
		WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL`, string(userID), string(except), at)
	if err != nil {
		return 0, fmt.Errorf("postgres: revoke user sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

type grantRow struct {
	UserID    ecoid.ID  `db:"user_id"`
	ProjectID ecoid.ID  `db:"project_id"`
	Role      string    `db:"role"`
	GrantedAt time.Time `db:"granted_at"`
}

func (r grantRow) grant() auth.Grant {
	return auth.Grant{UserID: r.UserID, ProjectID: r.ProjectID, Role: auth.Role(r.Role), GrantedAt: r.GrantedAt.UTC()}
}

// GrantAccess implements auth.AccessStore.
func (s *AuthStore) GrantAccess(ctx context.Context, g auth.Grant) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO eco_project_access (project_id, user_id, role, granted_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role, granted_at = EXCLUDED.granted_at`,
		string(g.ProjectID), string(g.UserID), string(g.Role), g.GrantedAt)
	if authFKViolation(err) {
		return fmt.Errorf("%w: user %s", auth.ErrNotFound, g.UserID)
	}
	if err != nil {
		return fmt.Errorf("postgres: grant access: %w", err)
	}
	return nil
}

// RevokeAccess implements auth.AccessStore.
func (s *AuthStore) RevokeAccess(ctx context.Context, userID, projectID ecoid.ID) error {
	if _, err := s.db.ExecContext(ctx,
		`DELETE FROM eco_project_access WHERE project_id = $1 AND user_id = $2`, string(projectID), string(userID)); err != nil {
		return fmt.Errorf("postgres: revoke access: %w", err)
	}
	return nil
}

// Access implements auth.AccessStore.
func (s *AuthStore) Access(ctx context.Context, userID, projectID ecoid.ID) (auth.Grant, error) {
	var r grantRow
	if err := s.db.GetContext(ctx, &r, `SELECT user_id, project_id, role, granted_at
		FROM eco_project_access WHERE project_id = $1 AND user_id = $2`, string(projectID), string(userID)); err != nil {
		return auth.Grant{}, authNotFound("grant", err)
	}
	return r.grant(), nil
}

// ProjectGrants implements auth.AccessStore.
func (s *AuthStore) ProjectGrants(ctx context.Context, projectID ecoid.ID) ([]auth.Grant, error) {
	var rows []grantRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT user_id, project_id, role, granted_at
		FROM eco_project_access WHERE project_id = $1 ORDER BY user_id`, string(projectID)); err != nil {
		return nil, fmt.Errorf("postgres: project grants: %w", err)
	}
	out := make([]auth.Grant, len(rows))
	for i, r := range rows {
		out[i] = r.grant()
	}
	return out, nil
}

// UserGrants implements auth.AccessStore.
func (s *AuthStore) UserGrants(ctx context.Context, userID ecoid.ID) ([]auth.Grant, error) {
	var rows []grantRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT user_id, project_id, role, granted_at
		FROM eco_project_access WHERE user_id = $1 ORDER BY project_id`, string(userID)); err != nil {
		return nil, fmt.Errorf("postgres: user grants: %w", err)
	}
	out := make([]auth.Grant, len(rows))
	for i, r := range rows {
		out[i] = r.grant()
	}
	return out, nil
}

// LogActivity implements auth.ActivityLog.
func (s *AuthStore) LogActivity(ctx context.Context, a auth.Activity) error {
	var user any
	if a.UserID != "" {
		user = string(a.UserID)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO eco_activity_log
		(id, user_id, email, action, success, detail, ip, user_agent, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		string(a.ID), user, a.Email, string(a.Action), a.Success, a.Detail, a.IP, a.UserAgent, a.At); err != nil {
		return fmt.Errorf("postgres: log activity: %w", err)
	}
	return nil
}

type activityRow struct {
	ID        ecoid.ID       `db:"id"`
	UserID    sql.NullString `db:"user_id"`
	Email     string         `db:"email"`
	Action    string         `db:"action"`
	Success   bool           `db:"success"`
	Detail    string         `db:"detail"`
	IP        string         `db:"ip"`
	UserAgent string         `db:"user_agent"`
	CreatedAt time.Time      `db:"created_at"`
}

// Activities implements auth.ActivityLog.
func (s *AuthStore) Activities(ctx context.Context, userID ecoid.ID, limit int) ([]auth.Activity, error) {
	if limit <= 0 {
		limit = 100
	}
	var rows []activityRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM eco_activity_log WHERE user_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, string(userID), limit); err != nil {
		return nil, fmt.Errorf("postgres: activities: %w", err)
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

// authNotFound maps sql.ErrNoRows to auth.ErrNotFound and wraps other errors.
func authNotFound(what string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", auth.ErrNotFound, what)
	}
	return fmt.Errorf("postgres: read %s: %w", what, err)
}

// authNoneAffected returns auth.ErrNotFound when an UPDATE or DELETE touched no row.
func authNoneAffected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("postgres: rows affected: %w", err)
	}
	if n == 0 {
		return auth.ErrNotFound
	}
	return nil
}

func authNullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }
