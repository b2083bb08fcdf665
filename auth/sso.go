package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// StartClientSession opens a session for a relying party of the OpenID provider (an
// authorization code exchange): the user has authenticated already, at authTime, and
// scope is what the client was granted. It returns the session's first client refresh
// token (ClientRefreshToken, carrying scope and auth_time, which every refresh keeps) and
// no access token: the client's access tokens are
// project tokens the provider mints. Such a session is listed and revoked like any other,
// but its refresh token works only through RefreshClient, never at Refresh, so a relying
// party cannot turn it into a first-party session. It returns ErrNotFound for an unknown
// user.
func (s *Service) StartClientSession(ctx context.Context, c Client, userID ecoid.ID, scope string, authTime time.Time) (Tokens, error) {
	if _, err := s.store.UserByID(ctx, userID); err != nil {
		return Tokens{}, fmt.Errorf("auth: start client session: %w", err)
	}
	now := s.clock()
	sid := ecoid.New(ecoid.Session)
	t, refresh, err := s.issueClient(userID, sid, scope, authTime)
	if err != nil {
		return Tokens{}, err
	}
	return t, s.createSession(ctx, c, userID, sid, refresh, now)
}

// RefreshClient is Refresh for a client refresh token (StartClientSession): the same
// rotation and reuse detection, and a new client refresh token with the same scope and
// auth_time.
// First-party refresh tokens are refused here, as client ones are at Refresh.
func (s *Service) RefreshClient(ctx context.Context, c Client, refreshToken string) (Tokens, error) {
	return s.refresh(ctx, c, refreshToken, ClientRefreshToken)
}

// LiveSession checks that the session of verified token claims is still open (not
// logged out, revoked, expired or erased, and the user's) and returns when the user
// authenticated to open it, for a decision that must not trust a signature
// alone, such as the OpenID provider's "is the user signed in" and its auth_time. An
// ended session is an error wrapping ErrInvalidToken (ErrSessionRevoked when it was
// revoked); a store failure is returned as it is.
func (s *Service) LiveSession(ctx context.Context, claims Claims) (authTime time.Time, err error) {
	sess, err := s.sessionOf(ctx, claims)
	if err != nil {
		return time.Time{}, err
	}
	if !s.clock().Before(sess.ExpiresAt) {
		return time.Time{}, fmt.Errorf("%w: session expired", ErrInvalidToken)
	}
	return sess.CreatedAt, nil
}

// RevokeSession revokes the session with this ID, whoever owns it, for example when an
// authorization code is replayed and what it issued must die (RFC 6749 §4.1.2).
// Revoking a revoked or unknown session returns nil.
func (s *Service) RevokeSession(ctx context.Context, c Client, sessionID ecoid.ID) error {
	sess, err := s.store.Session(ctx, sessionID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth: revoke session: %w", err)
	}
	return s.Logout(ctx, c, Claims{UserID: sess.UserID, SessionID: sessionID})
}

// Grant returns the user's grant on the project, or an error wrapping ErrNotFound when
// there is none.
func (s *Service) Grant(ctx context.Context, userID, projectID ecoid.ID) (Grant, error) {
	g, err := s.store.Access(ctx, userID, projectID)
	if err != nil {
		return Grant{}, fmt.Errorf("auth: grant: %w", err)
	}
	return g, nil
}

// UserGrants returns every grant of the user (the projects the user may enter), ordered
// by project ID.
func (s *Service) UserGrants(ctx context.Context, userID ecoid.ID) ([]Grant, error) {
	gs, err := s.store.UserGrants(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("auth: user grants: %w", err)
	}
	return gs, nil
}

// AccessTokenFromCookie returns the access cookie's value, or "" when there is none.
func AccessTokenFromCookie(r *http.Request, cfg CookieConfig) string {
	c, err := r.Cookie(cfg.accessName())
	if err != nil {
		return ""
	}
	return c.Value
}
