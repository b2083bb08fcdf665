package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// edKey derives a deterministic Ed25519 key from a one-byte seed pattern.
func edKey(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b + byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func newEdIssuer(t testing.TB, clock *fakeClock, key ed25519.PrivateKey, kid string, old map[string]ed25519.PublicKey) *auth.Issuer {
	t.Helper()
	is, err := auth.NewIssuer(auth.IssuerConfig{SigningKey: key, SigningKeyID: kid, VerificationKeys: old, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// header decodes a token's JOSE header.
func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestEdDSAIssueAndVerify(t *testing.T) {
	clock := newClock()
	is := newEdIssuer(t, clock, edKey(1), "k1", nil)
	if is.Algorithm() != "EdDSA" || newIssuer(t, clock).Algorithm() != "HS256" {
		t.Fatalf("Algorithm() = %q", is.Algorithm())
	}
	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	for _, typ := range []auth.TokenType{auth.AccessToken, auth.RefreshToken} {
		tok, issued, err := is.Issue(typ, uid, sid)
		if err != nil {
			t.Fatal(err)
		}
		if h := header(t, tok); h["alg"] != "EdDSA" || h["kid"] != "k1" {
			t.Fatalf("header %v", h)
		}
		got, err := is.Verify(tok, typ)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got != issued || got.UserID != uid || got.SessionID != sid || got.Type != typ {
			t.Fatalf("verified %+v, issued %+v", got, issued)
		}
		// A verifier holding only the public key accepts it too.
		other := newEdIssuer(t, clock, edKey(9), "k9", map[string]ed25519.PublicKey{"k1": pubOf(edKey(1))})
		if _, err := other.Verify(tok, typ); err != nil {
			t.Fatalf("public-key verifier: %v", err)
		}
	}
	// HS256 tokens never carry a kid.
	hs, _, _ := newIssuer(t, clock).Issue(auth.AccessToken, uid, sid)
	if _, ok := header(t, hs)["kid"]; ok {
		t.Fatal("HS256 token has a kid")
	}
	// Expiry and the other checks still apply.
	tok, _, _ := is.Issue(auth.AccessToken, uid, sid)
	if _, err := is.Verify(tok, auth.RefreshToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("access accepted as refresh: %v", err)
	}
	clock.Advance(16 * time.Minute)
	if _, err := is.Verify(tok, auth.AccessToken); !errors.Is(err, auth.ErrTokenExpired) {
		t.Fatalf("expired EdDSA token: %v", err)
	}
}

func TestEdDSARotation(t *testing.T) {
	clock := newClock()
	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	old := newEdIssuer(t, clock, edKey(1), "2026-01", nil)
	oldTok, _, _ := old.Issue(auth.AccessToken, uid, sid)

	// Rotated: new signing key, old public key kept for verification.
	rotated := newEdIssuer(t, clock, edKey(2), "2026-02", map[string]ed25519.PublicKey{"2026-01": pubOf(edKey(1))})
	newTok, _, _ := rotated.Issue(auth.AccessToken, uid, sid)
	if h := header(t, newTok); h["kid"] != "2026-02" {
		t.Fatalf("rotated issuer signs with kid %v", h["kid"])
	}
	if _, err := rotated.Verify(oldTok, auth.AccessToken); err != nil {
		t.Fatalf("old token refused during rotation: %v", err)
	}
	if _, err := rotated.Verify(newTok, auth.AccessToken); err != nil {
		t.Fatalf("new token refused: %v", err)
	}
	// The old issuer does not know the new key.
	if _, err := old.Verify(newTok, auth.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("old issuer accepted a token of an unknown kid: %v", err)
	}
	// Rotation finished: old kid removed, old tokens fail, new ones still pass.
	done := newEdIssuer(t, clock, edKey(2), "2026-02", nil)
	if _, err := done.Verify(oldTok, auth.AccessToken); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "kid") {
		t.Fatalf("old token after its kid was removed: %v", err)
	}
	if _, err := done.Verify(newTok, auth.AccessToken); err != nil {
		t.Fatalf("new token after rotation: %v", err)
	}
	// A token whose kid names the wrong key fails on the signature.
	swapped := newEdIssuer(t, clock, edKey(2), "2026-02", map[string]ed25519.PublicKey{"2026-01": pubOf(edKey(3))})
	if _, err := swapped.Verify(oldTok, auth.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token verified with another key under its kid: %v", err)
	}
}

// signKID signs claims with method m and key, setting the kid header unless kid is nil.
func signKID(t *testing.T, m jwt.SigningMethod, key any, kid any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != nil {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEdDSAAttacks is TestRFC8725Attacks for an EdDSA issuer: algorithm confusion, kid
// games and tampering.
func TestEdDSAAttacks(t *testing.T) {
	clock := newClock()
	key := edKey(1)
	pub := pubOf(key)
	is := newEdIssuer(t, clock, key, "k1", map[string]ed25519.PublicKey{"old": pubOf(edKey(2))})
	now := clock.Now()
	good := signKID(t, jwt.SigningMethodEdDSA, key, "k1", rawClaims(now, "access"))
	if _, err := is.Verify(good, auth.AccessToken); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	parts := strings.Split(good, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	flipped := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	otherPayload := strings.Split(signKID(t, jwt.SigningMethodEdDSA, key, "k1", rawClaims(now, "access")), ".")[1]
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"HS256 keyed with the public key":     signKID(t, jwt.SigningMethodHS256, []byte(pub), "k1", rawClaims(now, "access")),
		"HS256 keyed with the public key b64": signKID(t, jwt.SigningMethodHS256, []byte(base64.StdEncoding.EncodeToString(pub)), "k1", rawClaims(now, "access")),
		"HS256 without kid":                   signKID(t, jwt.SigningMethodHS256, []byte(pub), nil, rawClaims(now, "access")),
		"alg none":                            signKID(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", rawClaims(now, "access")),
		"RS256":                               signKID(t, jwt.SigningMethodRS256, rsaKey, "k1", rawClaims(now, "access")),
		"unknown kid":                         signKID(t, jwt.SigningMethodEdDSA, key, "k2", rawClaims(now, "access")),
		"missing kid":                         signKID(t, jwt.SigningMethodEdDSA, key, nil, rawClaims(now, "access")),
		"empty kid":                           signKID(t, jwt.SigningMethodEdDSA, key, "", rawClaims(now, "access")),
		"non-string kid":                      signKID(t, jwt.SigningMethodEdDSA, key, 1, rawClaims(now, "access")),
		"kid of another key":                  signKID(t, jwt.SigningMethodEdDSA, key, "old", rawClaims(now, "access")),
		"foreign key under our kid":           signKID(t, jwt.SigningMethodEdDSA, edKey(3), "k1", rawClaims(now, "access")),
		"flipped signature bit":               flipped,
		"stripped signature":                  parts[0] + "." + parts[1] + ".",
		"payload of another token":            parts[0] + "." + otherPayload + "." + parts[2],
		"expired":                             signKID(t, jwt.SigningMethodEdDSA, key, "k1", jwt.MapClaims(mutate(rawClaims(now, "access"), "exp", now.Add(-time.Second-auth.DefaultLeeway).Unix()))),
		"missing exp":                         signKID(t, jwt.SigningMethodEdDSA, key, "k1", jwt.MapClaims(mutate(rawClaims(now, "access"), "exp", nil))),
		"wrong iss":                           signKID(t, jwt.SigningMethodEdDSA, key, "k1", jwt.MapClaims(mutate(rawClaims(now, "access"), "iss", "evil"))),
		"wrong aud":                           signKID(t, jwt.SigningMethodEdDSA, key, "k1", jwt.MapClaims(mutate(rawClaims(now, "access"), "aud", "other"))),
		"not yet valid":                       signKID(t, jwt.SigningMethodEdDSA, key, "k1", jwt.MapClaims(mutate(rawClaims(now, "access"), "nbf", now.Add(time.Minute).Unix()))),
		"issued in the future":                signKID(t, jwt.SigningMethodEdDSA, key, "k1", jwt.MapClaims(mutate(rawClaims(now, "access"), "iat", now.Add(time.Minute).Unix()))),
		"wrong typ":                           signKID(t, jwt.SigningMethodEdDSA, key, "k1", rawClaims(now, "refresh")),
	}
	if payloadOf := strings.Split(good, ".")[1]; payloadOf == otherPayload {
		t.Fatal("two payloads are equal; the splice case tests nothing")
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := is.Verify(tok, auth.AccessToken)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
			if strings.Contains(err.Error(), tok) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
	// An HS256 issuer refuses EdDSA tokens in turn.
	if _, err := newIssuer(t, clock).Verify(good, auth.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("HS256 issuer accepted an EdDSA token: %v", err)
	}
}

// mutate sets (or, for nil, deletes) claim k.
func mutate(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
	return c
}

func TestNewIssuerKeyConfig(t *testing.T) {
	key := edKey(1)
	corrupt := append(ed25519.PrivateKey(nil), key...)
	corrupt[40] ^= 1 // public half no longer matches the seed
	cases := map[string]auth.IssuerConfig{
		"neither key":                  {},
		"both keys":                    {Secret: testSecret, SigningKey: key, SigningKeyID: "k"},
		"seed instead of private key":  {SigningKey: key.Seed(), SigningKeyID: "k"},
		"private key too long":         {SigningKey: append(append([]byte(nil), key...), 0), SigningKeyID: "k"},
		"mismatched public half":       {SigningKey: corrupt, SigningKeyID: "k"},
		"empty kid":                    {SigningKey: key},
		"verification key wrong size":  {SigningKey: key, SigningKeyID: "k", VerificationKeys: map[string]ed25519.PublicKey{"old": pubOf(key)[:31]}},
		"verification key empty kid":   {SigningKey: key, SigningKeyID: "k", VerificationKeys: map[string]ed25519.PublicKey{"": pubOf(edKey(2))}},
		"kid reused for another key":   {SigningKey: key, SigningKeyID: "k", VerificationKeys: map[string]ed25519.PublicKey{"k": pubOf(edKey(2))}},
		"kid without signing key":      {Secret: testSecret, SigningKeyID: "k"},
		"verification keys with HS256": {Secret: testSecret, VerificationKeys: map[string]ed25519.PublicKey{"old": pubOf(key)}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := auth.NewIssuer(cfg)
			if !errors.Is(err, auth.ErrKeyConfig) {
				t.Fatalf("got %v, want ErrKeyConfig", err)
			}
			if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(key.Seed())) {
				t.Fatal("error contains the key")
			}
		})
	}
	// Neither key also reports the weak (empty) secret, as before EdDSA existed.
	if _, err := auth.NewIssuer(auth.IssuerConfig{}); !errors.Is(err, auth.ErrWeakSecret) {
		t.Fatalf("empty config: %v", err)
	}
	// The signing key's own public half may be listed; a negative TTL is still refused.
	if _, err := auth.NewIssuer(auth.IssuerConfig{SigningKey: key, SigningKeyID: "k", VerificationKeys: map[string]ed25519.PublicKey{"k": pubOf(key)}}); err != nil {
		t.Fatalf("own public key listed: %v", err)
	}
	if _, err := auth.NewIssuer(auth.IssuerConfig{SigningKey: key, SigningKeyID: "k", AccessTTL: -time.Second}); err == nil {
		t.Fatal("negative TTL accepted with EdDSA")
	}
}

func TestEdDSAIssuerCopiesKeys(t *testing.T) {
	clock := newClock()
	key := append(ed25519.PrivateKey(nil), edKey(1)...)
	old := map[string]ed25519.PublicKey{"old": append(ed25519.PublicKey(nil), pubOf(edKey(2))...)}
	is := newEdIssuer(t, clock, key, "k1", old)
	oldTok, _, _ := newEdIssuer(t, clock, edKey(2), "old", nil).Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	// The caller later scribbles over its key material and map.
	for i := range key {
		key[i] = 0
	}
	old["old"][0] ^= 0xff
	delete(old, "old")
	tok, _, err := is.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newEdIssuer(t, clock, edKey(1), "k1", nil).Verify(tok, auth.AccessToken); err != nil {
		t.Fatalf("issuer used the caller's mutated key: %v", err)
	}
	if _, err := is.Verify(oldTok, auth.AccessToken); err != nil {
		t.Fatalf("issuer used the caller's mutated map: %v", err)
	}
}
