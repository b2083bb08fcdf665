package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Token lifetimes used when IssuerConfig leaves them zero.
const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
)

// MinSecretBytes is the shortest HS256 secret NewIssuer accepts.
const MinSecretBytes = 32

// Token errors. Every verification failure wraps ErrInvalidToken; an expired token also
// wraps ErrTokenExpired.
var (
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrTokenExpired = errors.New("auth: token expired")
	ErrWeakSecret   = errors.New("auth: JWT secret shorter than 32 bytes")
)

// TokenType is the "typ" claim: what a token may be used for.
type TokenType string

// The two token types. An access token is never accepted where a refresh token is
// expected, nor the other way round.
const (
	AccessToken  TokenType = "access"
	RefreshToken TokenType = "refresh"
)

// Claims are the verified contents of a token.
type Claims struct {
	UserID    ecoid.ID  // "sub"
	SessionID ecoid.ID  // "sid"
	Type      TokenType // "typ"
	ID        string    // "jti": unique per token
	Issuer    string    // "iss"
	Audience  string    // "aud"
	IssuedAt  time.Time // "iat"
	NotBefore time.Time // "nbf"
	ExpiresAt time.Time // "exp"
}

// jwtClaims is the wire form of Claims.
type jwtClaims struct {
	jwt.RegisteredClaims
	SessionID ecoid.ID  `json:"sid"`
	Type      TokenType `json:"typ"`
}

// IssuerConfig configures NewIssuer. Only Secret is required.
type IssuerConfig struct {
	// Secret is the HS256 key, at least MinSecretBytes bytes of random data.
	Secret []byte
	// Issuer is the "iss" claim written and required; default "nexus".
	Issuer string
	// Audience is the "aud" claim written and required; default "nexus".
	Audience string
	// AccessTTL and RefreshTTL are the token lifetimes; defaults 15 minutes and 7 days.
	AccessTTL, RefreshTTL time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat; default 0.
	Leeway time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Issuer signs and verifies HS256 JWTs. Verification pins the algorithm to HS256 (alg
// "none", HS384/HS512 with the same secret and any asymmetric algorithm are refused),
// requires exp, checks iss, aud, nbf, iat and the typ claim. It is safe for concurrent use.
type Issuer struct {
	secret     []byte
	issuer     string
	audience   string
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	parser     *jwt.Parser
}

// NewIssuer checks cfg and returns an Issuer. It returns an error wrapping ErrWeakSecret
// when the secret is shorter than MinSecretBytes, and an error for negative durations.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("%w: got %d bytes", ErrWeakSecret, len(cfg.Secret))
	}
	if cfg.AccessTTL < 0 || cfg.RefreshTTL < 0 || cfg.Leeway < 0 {
		return nil, errors.New("auth: token lifetimes and leeway must not be negative")
	}
	is := &Issuer{
		secret:     append([]byte(nil), cfg.Secret...),
		issuer:     cfg.Issuer,
		audience:   cfg.Audience,
		accessTTL:  cfg.AccessTTL,
		refreshTTL: cfg.RefreshTTL,
		now:        cfg.Now,
	}
	if is.issuer == "" {
		is.issuer = "nexus"
	}
	if is.audience == "" {
		is.audience = "nexus"
	}
	if is.accessTTL == 0 {
		is.accessTTL = DefaultAccessTTL
	}
	if is.refreshTTL == 0 {
		is.refreshTTL = DefaultRefreshTTL
	}
	if is.now == nil {
		is.now = time.Now
	}
	is.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(is.issuer),
		jwt.WithAudience(is.audience),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(is.now),
		jwt.WithStrictDecoding(),
	)
	return is, nil
}

// TTL returns the lifetime of tokens of type typ.
func (is *Issuer) TTL(typ TokenType) time.Duration {
	if typ == RefreshToken {
		return is.refreshTTL
	}
	return is.accessTTL
}

// Issue signs a token of type typ for the user and session, valid from now for the
// type's TTL. It returns the token and its claims, or an error for an unknown type or an
// invalid ID.
func (is *Issuer) Issue(typ TokenType, userID, sessionID ecoid.ID) (string, Claims, error) {
	if typ != AccessToken && typ != RefreshToken {
		return "", Claims{}, fmt.Errorf("auth: unknown token type %q", typ)
	}
	if !userID.Valid() || !sessionID.Valid() {
		return "", Claims{}, errors.New("auth: issue: invalid user or session ID")
	}
	now := is.now().UTC().Truncate(time.Second)
	c := Claims{
		UserID:    userID,
		SessionID: sessionID,
		Type:      typ,
		ID:        newJTI(),
		Issuer:    is.issuer,
		Audience:  is.audience,
		IssuedAt:  now,
		NotBefore: now,
		ExpiresAt: now.Add(is.TTL(typ)),
	}
	wire := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   string(userID),
			Audience:  jwt.ClaimStrings{c.Audience},
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			NotBefore: jwt.NewNumericDate(c.NotBefore),
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ID:        c.ID,
		},
		SessionID: sessionID,
		Type:      typ,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, wire).SignedString(is.secret)
	if err != nil {
		return "", Claims{}, fmt.Errorf("auth: sign token: %w", err)
	}
	return s, c, nil
}

// Verify checks the signature and claims of token and that its typ is want. Every failure
// returns an error wrapping ErrInvalidToken (and ErrTokenExpired when it has expired);
// the message says what was wrong but never echoes the token.
func (is *Issuer) Verify(token string, want TokenType) (Claims, error) {
	var wire jwtClaims
	_, err := is.parser.ParseWithClaims(token, &wire, is.key)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)
		}
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	if wire.Type != want {
		return Claims{}, fmt.Errorf("%w: not a %s token", ErrInvalidToken, want)
	}
	sub, err := ecoid.Parse(wire.Subject)
	if err != nil || sub.Type() != ecoid.User {
		return Claims{}, fmt.Errorf("%w: bad sub", ErrInvalidToken)
	}
	if !wire.SessionID.Valid() || wire.SessionID.Type() != ecoid.Session {
		return Claims{}, fmt.Errorf("%w: bad sid", ErrInvalidToken)
	}
	if wire.ID == "" {
		return Claims{}, fmt.Errorf("%w: missing jti", ErrInvalidToken)
	}
	c := Claims{
		UserID:    sub,
		SessionID: wire.SessionID,
		Type:      wire.Type,
		ID:        wire.ID,
		Issuer:    wire.Issuer,
		Audience:  is.audience,
		ExpiresAt: wire.ExpiresAt.UTC(),
	}
	if wire.IssuedAt != nil {
		c.IssuedAt = wire.IssuedAt.UTC()
	}
	if wire.NotBefore != nil {
		c.NotBefore = wire.NotBefore.UTC()
	}
	return c, nil
}

// key returns the HS256 secret; the parser has already pinned the method.
func (is *Issuer) key(*jwt.Token) (any, error) { return is.secret, nil }

// reason names a golang-jwt failure without leaking token contents.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable (algorithm not allowed)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "used before issued"
	default:
		return "rejected"
	}
}

// newJTI returns 128 random bits, base64url without padding.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
