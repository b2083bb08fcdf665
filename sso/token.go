package sso

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// DefaultProjectTokenTTL is the lifetime of a project access token.
const DefaultProjectTokenTTL = 5 * time.Minute

// DefaultLeeway absorbs clock skew between Nexus and a project service on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// ProjectTokenType is the JOSE "typ" header of project access tokens (RFC 9068 §2.1), so
// they cannot be confused with id_tokens or Nexus's own session tokens (RFC 8725 §3.11).
const ProjectTokenType = "at+jwt"

var (
	// ErrInvalidToken is wrapped by every Verify failure; the message says what was
	// wrong without echoing the token.
	ErrInvalidToken = errors.New("sso: invalid token")
	// ErrNeedEdDSA is returned when a project token is requested from an HS256 issuer:
	// other projects could only verify it with the shared secret.
	ErrNeedEdDSA = errors.New("sso: project tokens need an EdDSA issuer (NEXUS_JWT_ED25519_KEY)")
)

// ProjectClaims are the verified contents of a project access token.
type ProjectClaims struct {
	UserID    ecoid.ID  // "sub"
	ProjectID ecoid.ID  // "aud" and "client_id"
	Role      auth.Role // "role": the user's role on the project
	Scope     string    // "scope", space separated (OIDC flow) or empty
	ID        string    // "jti"
	Issuer    string    // "iss"
	IssuedAt  time.Time // "iat"
	ExpiresAt time.Time // "exp"
}

// MintProjectToken signs a project access token for user with role on project, valid for
// ttl (DefaultProjectTokenTTL when 0) from now: iss is the issuer's name, aud and
// client_id the project's ID, header typ "at+jwt". It needs an EdDSA issuer.
func MintProjectToken(is *auth.Issuer, c ProjectClaims, ttl time.Duration, now time.Time) (string, ProjectClaims, error) {
	if is.Algorithm() != jwt.SigningMethodEdDSA.Alg() {
		return "", ProjectClaims{}, ErrNeedEdDSA
	}
	if ttl <= 0 {
		ttl = DefaultProjectTokenTTL
	}
	now = now.UTC().Truncate(time.Second)
	c.Issuer, c.IssuedAt, c.ExpiresAt, c.ID = is.IssuerName(), now, now.Add(ttl), newJTI()
	claims := map[string]any{
		"iss":       c.Issuer,
		"sub":       string(c.UserID),
		"aud":       string(c.ProjectID),
		"client_id": string(c.ProjectID),
		"role":      string(c.Role),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       c.ExpiresAt.Unix(),
		"jti":       c.ID,
	}
	if c.Scope != "" {
		claims["scope"] = c.Scope
	}
	tok, err := is.SignClaimsWithType(claims, ProjectTokenType)
	if err != nil {
		return "", ProjectClaims{}, err
	}
	return tok, c, nil
}

// KeyFunc returns the Ed25519 public key with this kid, or an error when there is none.
// It may do I/O (a JWKS refresh), bounded by ctx.
type KeyFunc func(ctx context.Context, kid string) (ed25519.PublicKey, error)

// TokenVerifier checks project access tokens: signature (EdDSA only, key by kid), the
// typ header, iss and aud pinned, exp required, nbf and iat with a leeway. It is safe for
// concurrent use.
type TokenVerifier struct {
	keys     KeyFunc
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time
}

// NewTokenVerifier returns a verifier of tokens issued by issuer for audience (a project
// ID) with the keys keys returns. leeway < 0 means none, 0 DefaultLeeway; now nil is
// time.Now.
func NewTokenVerifier(keys KeyFunc, issuer, audience string, leeway time.Duration, now func() time.Time) *TokenVerifier {
	if leeway == 0 {
		leeway = DefaultLeeway
	} else if leeway < 0 {
		leeway = 0
	}
	if now == nil {
		now = time.Now
	}
	return &TokenVerifier{keys: keys, issuer: issuer, audience: audience, leeway: leeway, now: now}
}

type projectWire struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Role     string `json:"role"`
	Scope    string `json:"scope"`
}

// Verify checks token and returns its claims, or an error wrapping ErrInvalidToken.
func (v *TokenVerifier) Verify(ctx context.Context, token string) (ProjectClaims, error) {
	var wire projectWire
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	var keyErr error
	t, err := parser.ParseWithClaims(token, &wire, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != ProjectTokenType {
			keyErr = fmt.Errorf("typ header is not %s", ProjectTokenType)
			return nil, keyErr
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			keyErr = errors.New("missing kid")
			return nil, keyErr
		}
		k, err := v.keys(ctx, kid)
		if err != nil {
			keyErr = fmt.Errorf("unknown kid: %w", err)
			return nil, keyErr
		}
		return k, nil
	})
	if err != nil || !t.Valid {
		switch {
		case keyErr != nil:
			return ProjectClaims{}, fmt.Errorf("%w: %v", ErrInvalidToken, keyErr)
		case errors.Is(err, jwt.ErrTokenExpired):
			return ProjectClaims{}, fmt.Errorf("%w: expired", ErrInvalidToken)
		default:
			return ProjectClaims{}, fmt.Errorf("%w: %s", ErrInvalidToken, auth.DescribeJWTError(err))
		}
	}
	sub, err := ecoid.Parse(wire.Subject)
	if err != nil || sub.Type() != ecoid.User {
		return ProjectClaims{}, fmt.Errorf("%w: bad sub", ErrInvalidToken)
	}
	proj, err := ecoid.Parse(wire.ClientID)
	if err != nil || string(proj) != v.audience {
		return ProjectClaims{}, fmt.Errorf("%w: client_id is not the audience", ErrInvalidToken)
	}
	role := auth.Role(wire.Role)
	if !role.Valid() {
		return ProjectClaims{}, fmt.Errorf("%w: bad role", ErrInvalidToken)
	}
	c := ProjectClaims{UserID: sub, ProjectID: proj, Role: role, Scope: wire.Scope, ID: wire.ID, Issuer: wire.Issuer, ExpiresAt: wire.ExpiresAt.UTC()}
	if wire.IssuedAt != nil {
		c.IssuedAt = wire.IssuedAt.UTC()
	}
	return c, nil
}

// LocalKeys is a KeyFunc over an issuer's own verification keys, for the provider itself.
func LocalKeys(is *auth.Issuer) KeyFunc {
	return func(_ context.Context, kid string) (ed25519.PublicKey, error) {
		if k, ok := is.PublicKey(kid); ok {
			return k, nil
		}
		return nil, errors.New("no such key")
	}
}

// newJTI returns 128 random bits, base64url without padding.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
