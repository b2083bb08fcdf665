package sso

import (
	"context"
	"errors"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Store errors. Adapters return these (possibly wrapped) so callers can tell them apart
// with errors.Is.
var (
	// ErrNotFound means the project or authorization code does not exist.
	ErrNotFound = errors.New("sso: not found")
	// ErrConflict means a project with this ID exists already.
	ErrConflict = errors.New("sso: conflict")
	// ErrCodeUsed is returned by RedeemCode for a code that was redeemed before: the
	// code's record comes with it so the caller can revoke what the first use issued
	// (RFC 6749 §4.1.2: "the authorization server ... SHOULD revoke all tokens previously
	// issued based on that authorization code").
	ErrCodeUsed = errors.New("sso: authorization code already used")
)

// Project is an ecosystem project registered as an OpenID Connect client. Its ID is its
// OAuth client_id. The client secret is never stored, only its SHA-256.
type Project struct {
	ID           ecoid.ID  `json:"id"`
	Name         string    `json:"name"`
	RedirectURIs []string  `json:"redirect_uris"`
	CreatedAt    time.Time `json:"created_at"`
}

// Code is an authorization code of the OIDC code flow, stored by the SHA-256 of its value.
type Code struct {
	Hash        []byte    // SHA-256 of the code handed to the client
	ProjectID   ecoid.ID  // the client it was issued to
	UserID      ecoid.ID  // who signed in
	RedirectURI string    // exactly as sent to /authorize; /token must repeat it
	Challenge   string    // PKCE S256 code_challenge
	Nonce       string    // OIDC nonce, echoed in the id_token (may be empty)
	Scope       string    // granted scope, space separated
	AuthTime    time.Time // when the user authenticated
	// SignInSession is the first-party session the user was signed in with when the code
	// was issued: the exchange refuses the code once that session has ended, so a code in
	// flight dies with a logout or a password reset.
	SignInSession ecoid.ID
	ExpiresAt     time.Time // codes are short-lived (DefaultCodeTTL)
	UsedAt        time.Time // zero until redeemed
	SessionID     ecoid.ID  // the session the redemption opened; empty until then
	CreatedAt     time.Time
}

// Store keeps projects and authorization codes. storage/memory and storage/postgres
// implement it; storage/storagetest holds the behaviour every adapter must pass.
type Store interface {
	// CreateProject stores p with the hash of its client secret. It returns ErrConflict
	// when a project with p.ID exists.
	CreateProject(ctx context.Context, p Project, secretHash []byte) error
	// Project returns the project or ErrNotFound.
	Project(ctx context.Context, id ecoid.ID) (Project, error)
	// ProjectSecretHash returns the SHA-256 of the project's client secret or ErrNotFound.
	ProjectSecretHash(ctx context.Context, id ecoid.ID) ([]byte, error)
	// Projects returns every project, ordered by ID.
	Projects(ctx context.Context) ([]Project, error)

	// CreateCode stores a new authorization code; ErrConflict when its hash exists.
	CreateCode(ctx context.Context, c Code) error
	// RedeemCode marks the code with this hash used at at and returns it, atomically: of
	// many concurrent calls exactly one succeeds. A code redeemed before returns its
	// record with ErrCodeUsed; an unknown hash returns ErrNotFound. Expiry is the caller's
	// check (the record says when).
	RedeemCode(ctx context.Context, hash []byte, at time.Time) (Code, error)
	// SetCodeSession records the session a redemption opened, so a later reuse of the
	// code can revoke it. ErrNotFound for an unknown hash.
	SetCodeSession(ctx context.Context, hash []byte, sessionID ecoid.ID) error
	// DeleteExpiredCodes removes codes that expired before `before` and returns how many.
	DeleteExpiredCodes(ctx context.Context, before time.Time) (int, error)

	// BindSession records that the session was opened for the project by a code
	// exchange, so its refresh token is honoured at the token endpoint for that project
	// only. Binding a bound session again returns ErrConflict.
	BindSession(ctx context.Context, sessionID, projectID ecoid.ID, at time.Time) error
	// SessionProject returns the project the session is bound to, or ErrNotFound (a
	// session of Nexus's own sign-in, or an unknown one).
	SessionProject(ctx context.Context, sessionID ecoid.ID) (ecoid.ID, error)
}
