package auth_test

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// rawClaimsT is what a hand-written golang-jwt integration would use: the same claims.
type rawClaimsT struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
	Type      string `json:"typ"`
}

// The Raw benchmarks do the same work with golang-jwt directly, as the baseline for our
// overhead (target ≤ 10 %).
func BenchmarkIssueAccess(b *testing.B) {
	is := newIssuer(b, storagetest.NewClock(time.Now()))
	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := is.Issue(auth.AccessToken, uid, sid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawJWTIssue(b *testing.B) {
	uid, sid := string(ecoid.New(ecoid.User)), string(ecoid.New(ecoid.Session))
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now().Truncate(time.Second)
		c := rawClaimsT{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "nexus", Subject: uid, Audience: jwt.ClaimStrings{"nexus"},
				ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute)), NotBefore: jwt.NewNumericDate(now),
				IssuedAt: jwt.NewNumericDate(now), ID: rawJTI(),
			},
			SessionID: sid, Type: "access",
		}
		if _, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret); err != nil {
			b.Fatal(err)
		}
	}
}

// rawJTI is the random token ID any integration needs: 128 bits, base64url.
func rawJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func BenchmarkIssueAccessEdDSA(b *testing.B) {
	is := newEdIssuer(b, storagetest.NewClock(time.Now()), edKey(1), "k1", nil)
	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := is.Issue(auth.AccessToken, uid, sid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAccessEdDSA(b *testing.B) {
	clock := storagetest.NewClock(time.Now())
	is := newEdIssuer(b, clock, edKey(1), "k1", nil)
	tok, _, _ := is.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Verify(tok, auth.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAccess(b *testing.B) {
	is := newIssuer(b, storagetest.NewClock(time.Now()))
	tok, _, _ := is.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Verify(tok, auth.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawJWTVerify(b *testing.B) {
	is := newIssuer(b, storagetest.NewClock(time.Now()))
	tok, _, _ := is.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithIssuer("nexus"), jwt.WithAudience("nexus"))
	key := func(*jwt.Token) (any, error) { return testSecret, nil }
	b.ReportAllocs()
	for b.Loop() {
		var c rawClaimsT
		if _, err := p.ParseWithClaims(tok, &c, key); err != nil || c.Type != "access" {
			b.Fatal(err)
		}
	}
}

func BenchmarkBearerToken(b *testing.B) {
	h := "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := auth.BearerToken(h); !ok {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkVerifyPasswordCost10 is the cost of one login's bcrypt comparison at the
// default cost; an unknown email pays the same through the dummy hash.
func BenchmarkVerifyPasswordCost10(b *testing.B) {
	h := auth.Hasher{}
	hash, err := h.Hash("Correct-Horse-9")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Verify(hash, "Correct-Horse-9"); err != nil {
			b.Fatal(err)
		}
	}
}
