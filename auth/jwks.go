package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"

	"github.com/golang-jwt/jwt/v5"
)

// ErrNoPublicKeys is returned by JWKS for an HS256 issuer: a shared secret has no public
// half to publish, so other projects cannot verify its tokens without the secret.
var ErrNoPublicKeys = errors.New("auth: HS256 issuer has no public keys to publish")

// JWK is one public key in the JSON Web Key format of RFC 7517, for an Ed25519 key as
// RFC 8037 defines it: kty "OKP", crv "Ed25519", x the raw 32-byte key in base64url.
type JWK struct {
	KeyType   string `json:"kty"`
	Curve     string `json:"crv"`
	X         string `json:"x"`
	KeyID     string `json:"kid"`
	Use       string `json:"use"`
	Algorithm string `json:"alg"`
}

// JWKSet is an RFC 7517 JWK Set, the body of a jwks_uri.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the set of public keys Verify accepts: the signing key and every
// verification key still configured (so relying parties keep verifying tokens signed
// before a rotation), ordered by kid. It returns ErrNoPublicKeys for an HS256 issuer.
func (is *Issuer) JWKS() (JWKSet, error) {
	if is.pubKeys == nil {
		return JWKSet{}, ErrNoPublicKeys
	}
	kids := make([]string, 0, len(is.pubKeys))
	for kid := range is.pubKeys {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	set := JWKSet{Keys: make([]JWK, 0, len(kids))}
	for _, kid := range kids {
		set.Keys = append(set.Keys, JWK{
			KeyType:   "OKP",
			Curve:     "Ed25519",
			X:         base64.RawURLEncoding.EncodeToString(is.pubKeys[kid]),
			KeyID:     kid,
			Use:       "sig",
			Algorithm: jwt.SigningMethodEdDSA.Alg(),
		})
	}
	return set, nil
}

// IssuerName returns the "iss" claim the issuer writes and requires.
func (is *Issuer) IssuerName() string { return is.issuer }

// KeyID returns the "kid" of the signing key; empty for HS256.
func (is *Issuer) KeyID() string { return is.kid }

// SignClaims signs claims with the issuer's key and algorithm, adding the "kid" header
// with EdDSA. It is the building block for tokens other than the session pair (OpenID
// Connect id_tokens, project access tokens): the caller sets every claim, including
// iss, aud, exp and iat. It returns an error when a claim cannot be encoded.
func (is *Issuer) SignClaims(claims map[string]any) (string, error) {
	return is.SignClaimsWithType(claims, "")
}

// SignClaimsWithType is SignClaims with a JOSE "typ" header (for example "at+jwt" for
// RFC 9068 access tokens), so that tokens of different kinds cannot be substituted for
// one another (RFC 8725 §3.11). An empty typ leaves golang-jwt's default "JWT".
func (is *Issuer) SignClaimsWithType(claims map[string]any, typ string) (string, error) {
	tok := jwt.NewWithClaims(is.method, jwt.MapClaims(claims))
	if typ != "" {
		tok.Header["typ"] = typ
	}
	if is.kid != "" {
		tok.Header["kid"] = is.kid
	}
	s, err := tok.SignedString(is.signKey)
	if err != nil {
		return "", fmt.Errorf("auth: sign claims: %w", err)
	}
	return s, nil
}

// PublicKey returns the Ed25519 verification key with this kid, or false.
func (is *Issuer) PublicKey(kid string) (ed25519.PublicKey, bool) {
	k, ok := is.pubKeys[kid]
	return k, ok && kid != ""
}
