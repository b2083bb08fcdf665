package auth

import (
	"context"
	"errors"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Store errors. Adapters return these (possibly wrapped) so the Service can tell them
// apart with errors.Is.
var (
	// ErrNotFound means the user, session or grant does not exist.
	ErrNotFound = errors.New("auth: not found")
	// ErrEmailTaken means another identity already has this (normalised) email.
	ErrEmailTaken = errors.New("auth: email already registered")
	// ErrConflict means a conditional update did not apply because the row changed: a
	// session was revoked or rotated by someone else.
	ErrConflict = errors.New("auth: conflict")
)

// User is an identity with its profile. Email is normalised (see NormalizeEmail).
type User struct {
	ID        ecoid.ID  `json:"id"`
	Email     string    `json:"email"`
	FullName  string    `json:"full_name"`
	CreatedAt time.Time `json:"created_at"`
	// EmailVerified is true once a verification link (or a password-reset link) sent to
	// Email was used (see Service.VerifyEmail).
	EmailVerified bool `json:"email_verified"`
}

// Session is one login: a chain of refresh tokens of which only the current one works.
// Only hashes of refresh token IDs (jti) are stored.
type Session struct {
	ID          ecoid.ID
	UserID      ecoid.ID
	RefreshHash []byte    // SHA-256 of the current refresh token's jti
	PrevHash    []byte    // SHA-256 of the jti it replaced; nil before the first rotation
	CreatedAt   time.Time //
	RotatedAt   time.Time // when RefreshHash was last set (CreatedAt at first)
	ExpiresAt   time.Time // expiry of the current refresh token
	RevokedAt   time.Time // zero while the session is live
	IP          string    // client address at login
	UserAgent   string    // client User-Agent at login
}

// Revoked reports whether the session has been revoked.
func (s Session) Revoked() bool { return !s.RevokedAt.IsZero() }

// Role is a user's role on a project. Roles are ordered: owner > admin > member > viewer.
type Role string

// The roles, from most to least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleViewer Role = "viewer"
)

// rank orders roles; an unknown role ranks 0 and satisfies nothing.
func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 4
	case RoleAdmin:
		return 3
	case RoleMember:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Satisfies reports whether r is at least as powerful as need.
func (r Role) Satisfies(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// Grant is a user's role on a project.
type Grant struct {
	UserID    ecoid.ID
	ProjectID ecoid.ID
	Role      Role
	GrantedAt time.Time
}

// Activity is one entry of the activity log: who did what, when, from where, and whether
// it worked. It never holds secrets (passwords, tokens, hashes).
type Activity struct {
	ID        ecoid.ID  // an EcoID of type evt
	UserID    ecoid.ID  // empty when no user is known (e.g. login with an unknown email)
	Email     string    // normalised email the action named, if any
	Action    Action    // what was attempted
	Success   bool      // whether it worked
	Detail    string    // a short reason for a failure, e.g. "wrong password"
	IP        string    // client address
	UserAgent string    // client User-Agent
	At        time.Time // when
}

// Action names what an Activity records.
type Action string

// The actions the Service logs.
const (
	ActionRegister       Action = "register"
	ActionLogin          Action = "login"
	ActionLoginThrottled Action = "login_throttled"
	ActionRefresh        Action = "refresh"
	ActionRefreshReuse   Action = "refresh_reuse"
	ActionLogout         Action = "logout"
	ActionPasswordChange Action = "password_change"
	ActionAccessGrant    Action = "access_grant"
	ActionAccessRevoke   Action = "access_revoke"
)

// UserStore keeps identities, their credentials and profiles.
type UserStore interface {
	// CreateUser stores the identity, its credentials (passwordHash) and its profile
	// atomically. u.Email must already be normalised. It returns ErrEmailTaken when an
	// identity with the same email (compared case-insensitively) exists; of many
	// concurrent calls with one email exactly one succeeds.
	CreateUser(ctx context.Context, u User, passwordHash string) error
	// DeleteUser removes the identity with its credentials, profile, sessions and grants.
	// It returns ErrNotFound when there is no such user.
	DeleteUser(ctx context.Context, id ecoid.ID) error
	// UserByID returns the user or ErrNotFound.
	UserByID(ctx context.Context, id ecoid.ID) (User, error)
	// UserByEmail returns the user with this normalised email or ErrNotFound.
	UserByEmail(ctx context.Context, email string) (User, error)
	// PasswordHash returns the user's password hash or ErrNotFound.
	PasswordHash(ctx context.Context, userID ecoid.ID) (string, error)
	// SetPasswordHash replaces the user's password hash; ErrNotFound when there is no such user.
	SetPasswordHash(ctx context.Context, userID ecoid.ID, hash string, at time.Time) error
}

// SessionStore keeps sessions.
type SessionStore interface {
	// CreateSession stores a new session. Its user must exist (ErrNotFound otherwise).
	CreateSession(ctx context.Context, s Session) error
	// Session returns the session, revoked or not, or ErrNotFound.
	Session(ctx context.Context, id ecoid.ID) (Session, error)
	// RotateSession replaces the refresh hash of a live session if, and only if, its
	// current hash equals oldHash: PrevHash becomes oldHash, RefreshHash newHash,
	// RotatedAt at and ExpiresAt expiresAt. It returns ErrNotFound when there is no such
	// session and ErrConflict, changing nothing, when the session is revoked or its hash
	// is no longer oldHash (another rotation won). It is atomic.
	RotateSession(ctx context.Context, id ecoid.ID, oldHash, newHash []byte, expiresAt, at time.Time) error
	// RevokeSession marks the session revoked at at. Revoking a revoked session is a
	// no-op that keeps the first time and returns nil; ErrNotFound when there is none.
	RevokeSession(ctx context.Context, id ecoid.ID, at time.Time) error
	// RevokeUserSessions revokes every live session of the user except the one with ID
	// except (may be empty), and returns how many it revoked.
	RevokeUserSessions(ctx context.Context, userID, except ecoid.ID, at time.Time) (int, error)
}

// AccessStore keeps project access grants.
type AccessStore interface {
	// GrantAccess sets the user's role on the project, replacing an earlier grant. The
	// user must exist (ErrNotFound otherwise).
	GrantAccess(ctx context.Context, g Grant) error
	// RevokeAccess removes the user's grant on the project. Removing a grant that does
	// not exist is a no-op and returns nil.
	RevokeAccess(ctx context.Context, userID, projectID ecoid.ID) error
	// Access returns the user's grant on the project or ErrNotFound.
	Access(ctx context.Context, userID, projectID ecoid.ID) (Grant, error)
	// ProjectGrants returns every grant on the project, ordered by user ID.
	ProjectGrants(ctx context.Context, projectID ecoid.ID) ([]Grant, error)
	// UserGrants returns every grant of the user, ordered by project ID; none is an
	// empty result, not an error.
	UserGrants(ctx context.Context, userID ecoid.ID) ([]Grant, error)
}

// ActivityLog keeps the activity log.
type ActivityLog interface {
	// LogActivity appends an entry. Entries with an empty UserID are allowed.
	LogActivity(ctx context.Context, a Activity) error
	// Activities returns the user's newest entries first, at most limit (≤ 0: 100).
	Activities(ctx context.Context, userID ecoid.ID, limit int) ([]Activity, error)
}

// Store is everything the Service needs. storage/memory and storage/postgres implement it.
type Store interface {
	UserStore
	SessionStore
	AccessStore
	ActivityLog
	AccountStore
}
