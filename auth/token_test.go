package auth_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// fakeClock is the shared settable test clock.
type fakeClock = storagetest.Clock

func newClock() *fakeClock { return storagetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

func newIssuer(t testing.TB, clock *fakeClock) *auth.Issuer {
	t.Helper()
	is, err := auth.NewIssuer(auth.IssuerConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func TestNewIssuerRejectsShortSecret(t *testing.T) {
	for _, n := range []int{0, 1, 31} {
		if _, err := auth.NewIssuer(auth.IssuerConfig{Secret: make([]byte, n)}); !errors.Is(err, auth.ErrWeakSecret) {
			t.Errorf("secret of %d bytes: %v, want ErrWeakSecret", n, err)
		}
	}
	if _, err := auth.NewIssuer(auth.IssuerConfig{Secret: testSecret, AccessTTL: -time.Second}); err == nil {
		t.Error("negative TTL accepted")
	}
}

func TestIssueAndVerify(t *testing.T) {
	clock := newClock()
	is := newIssuer(t, clock)
	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	for _, typ := range []auth.TokenType{auth.AccessToken, auth.RefreshToken} {
		tok, issued, err := is.Issue(typ, uid, sid)
		if err != nil {
			t.Fatal(err)
		}
		got, err := is.Verify(tok, typ)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got != issued {
			t.Fatalf("verified %+v, issued %+v", got, issued)
		}
		wantTTL := map[auth.TokenType]time.Duration{auth.AccessToken: 15 * time.Minute, auth.RefreshToken: 7 * 24 * time.Hour}[typ]
		if got.UserID != uid || got.SessionID != sid || got.Type != typ || got.ID == "" ||
			got.Issuer != "nexus" || got.Audience != "nexus" || got.ExpiresAt.Sub(got.IssuedAt) != wantTTL ||
			!got.IssuedAt.Equal(clock.Now()) || !got.NotBefore.Equal(clock.Now()) {
			t.Fatalf("%s claims: %+v", typ, got)
		}
		// Wire claims carry their registered names (RFC 7519) and the session and type claims.
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		for _, k := range []string{`"sub"`, `"sid"`, `"typ"`, `"jti"`, `"iss"`, `"aud"`, `"iat"`, `"nbf"`, `"exp"`} {
			if !strings.Contains(string(payload), k) {
				t.Errorf("payload lacks %s: %s", k, payload)
			}
		}
	}
	a, _, _ := is.Issue(auth.AccessToken, uid, sid)
	b, _, _ := is.Issue(auth.AccessToken, uid, sid)
	if a == b {
		t.Fatal("two tokens share a jti")
	}
	if _, _, err := is.Issue("other", uid, sid); err == nil {
		t.Fatal("unknown token type issued")
	}
	if _, _, err := is.Issue(auth.AccessToken, "bad", sid); err == nil {
		t.Fatal("invalid user ID issued")
	}
}

func TestAccessAndRefreshAreNotInterchangeable(t *testing.T) {
	is := newIssuer(t, newClock())
	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	access, _, _ := is.Issue(auth.AccessToken, uid, sid)
	refresh, _, _ := is.Issue(auth.RefreshToken, uid, sid)
	if _, err := is.Verify(access, auth.RefreshToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("access accepted as refresh: %v", err)
	}
	if _, err := is.Verify(refresh, auth.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("refresh accepted as access: %v", err)
	}
}

// rawClaims builds wire claims that a forger controls.
func rawClaims(now time.Time, typ string) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": string(ecoid.New(ecoid.User)), "sid": string(ecoid.New(ecoid.Session)), "typ": typ,
		"jti": "j1", "iss": "nexus", "aud": []string{"nexus"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signWithHeader signs c with the test secret and one more header field.
func signWithHeader(t *testing.T, name string, value any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header[name] = value
	s, err := tok.SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRFC8725Attacks checks the attacks of RFC 8725 (JWT best current practices).
func TestRFC8725Attacks(t *testing.T) {
	clock := newClock()
	is := newIssuer(t, clock)
	now := clock.Now()
	good := sign(t, jwt.SigningMethodHS256, testSecret, rawClaims(now, "access"))
	if _, err := is.Verify(good, auth.AccessToken); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	parts := strings.Split(good, ".")
	tamperedPayload := func() string {
		c := rawClaims(now, "access")
		c["sub"] = string(ecoid.New(ecoid.User))
		forged := strings.Split(sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-32"), c), ".")
		return parts[0] + "." + forged[1] + "." + parts[2]
	}()
	with := func(f func(jwt.MapClaims)) jwt.MapClaims {
		c := rawClaims(now, "access")
		f(c)
		return c
	}
	cases := map[string]string{
		"alg none":                 sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, rawClaims(now, "access")),
		"HS512 with same secret":   sign(t, jwt.SigningMethodHS512, testSecret, rawClaims(now, "access")),
		"HS384 with same secret":   sign(t, jwt.SigningMethodHS384, testSecret, rawClaims(now, "access")),
		"stripped signature":       parts[0] + "." + parts[1] + ".",
		"no signature part":        parts[0] + "." + parts[1],
		"tampered payload":         tamperedPayload,
		"other secret":             sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-32"), rawClaims(now, "access")),
		"empty key":                sign(t, jwt.SigningMethodHS256, []byte{}, rawClaims(now, "access")),
		"expired":                  sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second - auth.DefaultLeeway).Unix() })),
		"missing exp":              sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "exp") })),
		"not yet valid":            sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })),
		"issued in the future":     sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })),
		"wrong typ":                sign(t, jwt.SigningMethodHS256, testSecret, rawClaims(now, "refresh")),
		"missing typ":              sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "typ") })),
		"wrong iss":                sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["iss"] = "evil" })),
		"missing iss":              sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "iss") })),
		"wrong aud":                sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["aud"] = "other" })),
		"missing aud":              sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "aud") })),
		"sub not a user EcoID":     sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["sub"] = "admin" })),
		"sub of another type":      sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["sub"] = string(ecoid.New(ecoid.APIKey)) })),
		"sid not a session EcoID":  sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["sid"] = string(ecoid.New(ecoid.User)) })),
		"missing jti":              sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "jti") })),
		"crit header":              signWithHeader(t, "crit", []string{"exp"}, rawClaims(now, "access")),
		"client refresh as access": sign(t, jwt.SigningMethodHS256, testSecret, rawClaims(now, "client_refresh")),
		"garbage":                  "not.a.token",
		"empty":                    "",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := is.Verify(tok, auth.AccessToken)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
}

func TestExpiryFollowsTheClock(t *testing.T) {
	clock := newClock()
	is := newIssuer(t, clock)
	tok, _, _ := is.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	clock.Advance(15*time.Minute - time.Second)
	if _, err := is.Verify(tok, auth.AccessToken); err != nil {
		t.Fatalf("valid one second before expiry: %v", err)
	}
	clock.Advance(2*time.Second + auth.DefaultLeeway) // past the expiry and the leeway
	_, err := is.Verify(tok, auth.AccessToken)
	if !errors.Is(err, auth.ErrTokenExpired) || !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestIssuerOptions(t *testing.T) {
	clock := newClock()
	is, err := auth.NewIssuer(auth.IssuerConfig{Secret: testSecret, Issuer: "me", Audience: "api", AccessTTL: time.Minute, RefreshTTL: time.Hour, Leeway: 5 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if is.TTL(auth.AccessToken) != time.Minute || is.TTL(auth.RefreshToken) != time.Hour {
		t.Fatal("TTL")
	}
	tok, c, _ := is.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	if c.Issuer != "me" || c.Audience != "api" {
		t.Fatalf("claims %+v", c)
	}
	clock.Advance(time.Minute + 3*time.Second)
	if _, err := is.Verify(tok, auth.AccessToken); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	if _, err := newIssuer(t, clock).Verify(tok, auth.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of another issuer/audience accepted: %v", err)
	}
}
