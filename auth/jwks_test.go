package auth_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
)

// TestJWKSPublishesEveryAcceptedKey: during a rotation the set carries the new signing key
// and the old verification key, each as an RFC 8037 OKP key whose x is the raw public key.
func TestJWKSPublishesEveryAcceptedKey(t *testing.T) {
	oldKey, newKey := edKey(1), edKey(2)
	is := newEdIssuer(t, newClock(), newKey, "k2", map[string]ed25519.PublicKey{"k1": pubOf(oldKey)})
	set, err := is.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].KeyID != "k1" || set.Keys[1].KeyID != "k2" {
		t.Fatalf("keys = %+v, want k1 and k2", set.Keys)
	}
	for i, want := range []ed25519.PublicKey{pubOf(oldKey), pubOf(newKey)} {
		k := set.Keys[i]
		if k.KeyType != "OKP" || k.Curve != "Ed25519" || k.Use != "sig" || k.Algorithm != "EdDSA" {
			t.Errorf("key %s = %+v", k.KeyID, k)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || !ed25519.PublicKey(x).Equal(want) {
			t.Errorf("key %s: x does not decode to its public key (%v)", k.KeyID, err)
		}
	}
	raw, _ := json.Marshal(set)
	for _, field := range []string{`"kty":"OKP"`, `"crv":"Ed25519"`, `"kid":"k2"`, `"use":"sig"`, `"alg":"EdDSA"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("JSON %s lacks %s", raw, field)
		}
	}
	if strings.Contains(string(raw), `"d"`) {
		t.Fatalf("JWKS leaks a private part: %s", raw)
	}
}

// TestJWKSRefusesHS256: a shared secret is never published.
func TestJWKSRefusesHS256(t *testing.T) {
	is, err := auth.NewIssuer(auth.IssuerConfig{Secret: []byte(strings.Repeat("s", 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.JWKS(); !errors.Is(err, auth.ErrNoPublicKeys) {
		t.Fatalf("JWKS on HS256 = %v, want ErrNoPublicKeys", err)
	}
}

// TestSignClaimsVerifiesWithPublishedKey checks a SignClaims token with nothing but the
// standard library and the JWKS entry named by its kid header.
func TestSignClaimsVerifiesWithPublishedKey(t *testing.T) {
	is := newEdIssuer(t, newClock(), edKey(3), "k3", nil)
	tok, err := is.SignClaims(map[string]any{"iss": "https://idp.test", "aud": "eco_prj_x", "sub": "u", "exp": time.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	h := header(t, tok)
	if h["alg"] != "EdDSA" || h["kid"] != "k3" {
		t.Fatalf("header = %v", h)
	}
	set, _ := is.JWKS()
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	parts := strings.Split(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(ed25519.PublicKey(x), []byte(parts[0]+"."+parts[1]), sig) {
		t.Fatalf("signature does not verify with the published key (%v)", err)
	}
}
