package auth

import (
	"bytes"
	"crypto/ed25519"
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

// DefaultLeeway is the clock skew Verify tolerates when IssuerConfig.Leeway is zero: a
// token issued by an instance whose clock runs up to 30 s ahead is accepted (its iat and
// nbf up to 30 s in the future), and one expired less than 30 s ago still is. NTP keeps
// servers well within this; 30 s is the margin common JWT libraries and OIDC providers
// use, short against the 15-minute access lifetime.
const DefaultLeeway = 30 * time.Second

// MinSecretBytes is the shortest HS256 secret NewIssuer accepts.
const MinSecretBytes = 32

// Token errors. Every verification failure wraps ErrInvalidToken; an expired token also
// wraps ErrTokenExpired.
var (
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrTokenExpired = errors.New("auth: token expired")
	ErrWeakSecret   = errors.New("auth: JWT secret shorter than 32 bytes")
	// ErrKeyConfig is wrapped by every NewIssuer error about keys: neither or both of
	// Secret and SigningKey set, an Ed25519 key of the wrong size, an empty key ID, or a
	// verification key that contradicts the signing key.
	ErrKeyConfig = errors.New("auth: invalid JWT key configuration")
)

// errUnknownKID is returned by the EdDSA key lookup for a missing or unknown "kid".
var errUnknownKID = errors.New("unknown or missing kid")

// TokenType is the "typ" claim: what a token may be used for.
type TokenType string

// The token types. A token is accepted only where its own type is expected: an access
// token never where a refresh token is, nor the other way round, and a client refresh
// token only at the OpenID provider's token endpoint (Service.RefreshClient), never as a
// first-party refresh token (Service.Refresh) nor as an access token.
const (
	AccessToken  TokenType = "access"
	RefreshToken TokenType = "refresh"
	// ClientRefreshToken is the refresh token of a session that an OpenID relying party
	// holds (Service.StartClientSession): bound to that client's session and carrying the
	// scope granted to it.
	ClientRefreshToken TokenType = "client_refresh"
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
	Scope     string    // "scope": what was granted to the client, in a client refresh token only
	AuthTime  time.Time // "auth_time": when the user signed in, in a client refresh token only
}

// jwtClaims is the wire form of Claims.
type jwtClaims struct {
	jwt.RegisteredClaims
	SessionID ecoid.ID         `json:"sid"`
	Type      TokenType        `json:"typ"`
	Scope     string           `json:"scope,omitempty"`
	AuthTime  *jwt.NumericDate `json:"auth_time,omitempty"`
}

// IssuerConfig configures NewIssuer. Exactly one of Secret (HS256) and SigningKey
// (EdDSA) is required.
type IssuerConfig struct {
	// Secret is the HS256 key, at least MinSecretBytes bytes of random data.
	Secret []byte
	// SigningKey selects EdDSA (Ed25519) instead of HS256: tokens are signed with it and
	// carry SigningKeyID in their "kid" header. It must be ed25519.PrivateKeySize bytes
	// (use ed25519.NewKeyFromSeed for a 32-byte seed).
	SigningKey ed25519.PrivateKey
	// SigningKeyID is the "kid" of SigningKey; required and non-empty with SigningKey.
	SigningKeyID string
	// VerificationKeys are further public keys, by kid, that Verify accepts with EdDSA:
	// during a rotation, the old signing key's public half stays here until every token
	// it signed has expired, then its entry is removed. The public half of SigningKey is
	// included automatically. Only valid with SigningKey.
	VerificationKeys map[string]ed25519.PublicKey
	// Issuer is the "iss" claim written and required; default "nexus".
	Issuer string
	// Audience is the "aud" claim written and required; default "nexus".
	Audience string
	// AccessTTL and RefreshTTL are the token lifetimes; defaults 15 minutes and 7 days.
	AccessTTL, RefreshTTL time.Duration
	// Leeway tolerates clock skew between instances on exp, nbf and iat: a token is
	// accepted up to Leeway before its nbf and iat and after its exp. Zero means
	// DefaultLeeway (30 s); a negative value means none.
	Leeway time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Issuer signs and verifies HS256 or EdDSA JWTs. Verification pins the algorithm to the
// configured one (alg "none", HS384/HS512 with the same secret, any other asymmetric
// algorithm, and HS256 on an EdDSA issuer are refused), requires exp, checks iss, aud,
// nbf, iat and the typ claim. With EdDSA the key is chosen by the token's "kid" header;
// a missing or unknown kid is refused. It is safe for concurrent use.
type Issuer struct {
	secret     []byte
	method     jwt.SigningMethod
	signKey    any    // []byte for HS256, ed25519.PrivateKey for EdDSA
	kid        string // EdDSA only
	pubKeys    map[string]ed25519.PublicKey
	issuer     string
	audience   string
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	parser     *jwt.Parser
}

// NewIssuer checks cfg and returns an Issuer. It returns an error wrapping ErrKeyConfig
// when neither or both of Secret and SigningKey are set or an Ed25519 key or kid is
// invalid, one wrapping ErrWeakSecret when the secret is shorter than MinSecretBytes
// (with neither key set, the error wraps both), and an error for negative durations.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	is := &Issuer{}
	switch {
	case len(cfg.Secret) > 0 && len(cfg.SigningKey) > 0:
		return nil, fmt.Errorf("%w: set only one of Secret (HS256) and SigningKey (EdDSA)", ErrKeyConfig)
	case len(cfg.SigningKey) > 0:
		if err := is.setEdDSA(cfg); err != nil {
			return nil, err
		}
	case len(cfg.Secret) < MinSecretBytes:
		if len(cfg.Secret) == 0 {
			return nil, fmt.Errorf("%w: %w: set Secret (HS256) or SigningKey (EdDSA)", ErrKeyConfig, ErrWeakSecret)
		}
		return nil, fmt.Errorf("%w: got %d bytes", ErrWeakSecret, len(cfg.Secret))
	case cfg.SigningKeyID != "" || cfg.VerificationKeys != nil:
		return nil, fmt.Errorf("%w: SigningKeyID and VerificationKeys need SigningKey", ErrKeyConfig)
	default:
		is.secret = append([]byte(nil), cfg.Secret...)
		is.method, is.signKey = jwt.SigningMethodHS256, is.secret
	}
	if cfg.AccessTTL < 0 || cfg.RefreshTTL < 0 {
		return nil, errors.New("auth: token lifetimes must not be negative")
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	is.issuer, is.audience = cfg.Issuer, cfg.Audience
	is.accessTTL, is.refreshTTL, is.now = cfg.AccessTTL, cfg.RefreshTTL, cfg.Now
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
		jwt.WithValidMethods([]string{is.method.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(is.issuer),
		jwt.WithAudience(is.audience),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(is.now),
		jwt.WithStrictDecoding(),
	)
	return is, nil
}

// setEdDSA checks the EdDSA part of cfg and stores copies of its keys in is.
func (is *Issuer) setEdDSA(cfg IssuerConfig) error {
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: Ed25519 private key is %d bytes, want %d", ErrKeyConfig, len(cfg.SigningKey), ed25519.PrivateKeySize)
	}
	if cfg.SigningKeyID == "" {
		return fmt.Errorf("%w: SigningKeyID is empty", ErrKeyConfig)
	}
	priv := ed25519.NewKeyFromSeed(cfg.SigningKey.Seed())
	if !bytes.Equal(priv, cfg.SigningKey) {
		return fmt.Errorf("%w: Ed25519 private key's public half does not match its seed", ErrKeyConfig)
	}
	pub := priv.Public().(ed25519.PublicKey)
	keys := make(map[string]ed25519.PublicKey, len(cfg.VerificationKeys)+1)
	for kid, k := range cfg.VerificationKeys {
		switch {
		case kid == "":
			return fmt.Errorf("%w: verification key with an empty kid", ErrKeyConfig)
		case len(k) != ed25519.PublicKeySize:
			return fmt.Errorf("%w: verification key %q is %d bytes, want %d", ErrKeyConfig, kid, len(k), ed25519.PublicKeySize)
		case kid == cfg.SigningKeyID && !pub.Equal(k):
			return fmt.Errorf("%w: verification key %q is not the signing key's public half", ErrKeyConfig, kid)
		}
		keys[kid] = append(ed25519.PublicKey(nil), k...)
	}
	keys[cfg.SigningKeyID] = pub
	is.method, is.signKey, is.kid, is.pubKeys = jwt.SigningMethodEdDSA, priv, cfg.SigningKeyID, keys
	return nil
}

// Algorithm returns the JWT "alg" the issuer signs with and accepts: "HS256" or "EdDSA".
func (is *Issuer) Algorithm() string { return is.method.Alg() }

// TTL returns the lifetime of tokens of type typ.
func (is *Issuer) TTL(typ TokenType) time.Duration {
	if typ == RefreshToken || typ == ClientRefreshToken {
		return is.refreshTTL
	}
	return is.accessTTL
}

// Issue signs a token of type typ for the user and session, valid from now for the
// type's TTL. It returns the token and its claims, or an error for an unknown type or an
// invalid ID.
func (is *Issuer) Issue(typ TokenType, userID, sessionID ecoid.ID) (string, Claims, error) {
	return is.issue(typ, userID, sessionID, "", time.Time{})
}

// issue is Issue with the scope and auth_time claims of a client refresh token.
func (is *Issuer) issue(typ TokenType, userID, sessionID ecoid.ID, scope string, authTime time.Time) (string, Claims, error) {
	if typ != AccessToken && typ != RefreshToken && typ != ClientRefreshToken {
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
		Scope:     scope,
	}
	if !authTime.IsZero() {
		c.AuthTime = authTime.UTC().Truncate(time.Second)
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
		Scope:     scope,
	}
	if !c.AuthTime.IsZero() {
		wire.AuthTime = jwt.NewNumericDate(c.AuthTime)
	}
	tok := jwt.NewWithClaims(is.method, wire)
	if is.kid != "" {
		tok.Header["kid"] = is.kid
	}
	s, err := tok.SignedString(is.signKey)
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
	tok, err := is.parser.ParseWithClaims(token, &wire, is.key)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)
		}
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, DescribeJWTError(err))
	}
	if _, ok := tok.Header["crit"]; ok {
		// RFC 7515 §4.1.11: a recipient must refuse a token whose "crit" names extensions
		// it does not understand, and this one understands none (RFC 8725 §3.1).
		return Claims{}, fmt.Errorf("%w: unsupported crit header", ErrInvalidToken)
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
		Scope:     wire.Scope,
	}
	if wire.AuthTime != nil {
		c.AuthTime = wire.AuthTime.UTC()
	}
	if wire.IssuedAt != nil {
		c.IssuedAt = wire.IssuedAt.UTC()
	}
	if wire.NotBefore != nil {
		c.NotBefore = wire.NotBefore.UTC()
	}
	return c, nil
}

// key returns the verification key: the HS256 secret, or the Ed25519 public key named
// by the token's "kid". The parser has already pinned the method.
func (is *Issuer) key(t *jwt.Token) (any, error) {
	if is.pubKeys == nil {
		return is.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	if k, ok := is.pubKeys[kid]; ok && kid != "" {
		return k, nil
	}
	return nil, errUnknownKID
}

// DescribeJWTError names a golang-jwt verification failure in a few words ("expired",
// "bad signature", "wrong audience", …) without echoing any part of the token, for error
// messages of verifiers built on golang-jwt (sso's project-token verifier uses it too).
func DescribeJWTError(err error) string {
	switch {
	case errors.Is(err, errUnknownKID):
		return errUnknownKID.Error()
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
