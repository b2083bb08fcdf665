package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// StartSession opens a new session for a user who has already been authenticated by
// other means (an OpenID Connect code exchange, for example) and returns its first token
// pair. It returns ErrNotFound for an unknown user.
func (s *Service) StartSession(ctx context.Context, c Client, userID ecoid.ID) (Tokens, error) {
	if _, err := s.store.UserByID(ctx, userID); err != nil {
		return Tokens{}, fmt.Errorf("auth: start session: %w", err)
	}
	return s.openSession(ctx, c, userID, s.clock())
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
