package auth_test

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// FuzzVerify feeds arbitrary strings to the token verifier: it must never panic, and it
// must accept nothing except what the issuer signed.
func FuzzVerify(f *testing.F) {
	clock := newClock()
	is := newIssuer(f, clock)
	good, _, _ := is.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	f.Add(good)
	// EdDSA tokens (with a kid) are refused by this HS256 issuer: a seed for the header paths.
	ed, _, _ := newEdIssuer(f, clock, edKey(1), "k1", nil).Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	f.Add(ed)
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := is.Verify(token, auth.AccessToken)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			if len(token) > 40 && strings.Contains(err.Error(), token) {
				t.Fatalf("error echoes the token")
			}
			return
		}
		if c.Type != auth.AccessToken || !c.UserID.Valid() || !c.SessionID.Valid() || c.ID == "" {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}

// FuzzBearerToken checks the Authorization header parser: no panic, and what it returns
// is a non-empty token68 string taken from the header.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Basic x", "Bearer ", "Bearer a=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, ok := auth.BearerToken(header)
		if !ok {
			if tok != "" {
				t.Fatal("token returned with ok=false")
			}
			return
		}
		if tok == "" || !strings.HasSuffix(header, tok) || strings.ContainsAny(tok, " \t\r\n\"") {
			t.Fatalf("BearerToken(%q) = %q", header, tok)
		}
	})
}

// FuzzNormalizeEmail: no panic; an accepted address is lower-case NFC, at most 254
// bytes, normalising it again changes nothing, and its NFD form names the same address.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"ann@example.com", "Ann <a@b.c>", "a@b", "\"q u\"@x.org", "kate\u0301@example.com", "\u0130@x.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := auth.NormalizeEmail(in)
		if err != nil {
			return
		}
		if len(out) > auth.MaxEmailBytes || out != strings.ToLower(out) || !norm.NFC.IsNormalString(out) {
			t.Fatalf("NormalizeEmail(%q) = %q", in, out)
		}
		if again, err := auth.NormalizeEmail(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q, %v", out, again, err)
		}
		if d, err := auth.NormalizeEmail(norm.NFD.String(in)); err == nil && d != out {
			t.Fatalf("NFD form of %q gives %q, the input %q", in, d, out)
		}
	})
}
