package sso_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

func TestRegisterShowsSecretOnceAndAuthenticates(t *testing.T) {
	ctx := context.Background()
	store := memory.NewSSOStore()
	ps := sso.NewProjects(store, nil)
	p, secret, err := ps.Register(ctx, " Atlas ", []string{"https://atlas.test/cb"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID.Type() != ecoid.Project || p.Name != "Atlas" || len(secret) < 40 {
		t.Fatalf("Register = %+v, secret of %d chars", p, len(secret))
	}
	if h, _ := store.ProjectSecretHash(ctx, p.ID); strings.Contains(string(h), secret) {
		t.Fatal("the store holds the plain secret")
	}
	if got, err := ps.Authenticate(ctx, string(p.ID), secret); err != nil || got.ID != p.ID {
		t.Fatalf("Authenticate with the secret = %+v, %v", got, err)
	}
	for name, tc := range map[string][2]string{
		"wrong secret":   {string(p.ID), secret + "x"},
		"empty secret":   {string(p.ID), ""},
		"unknown client": {string(ecoid.New(ecoid.Project)), secret},
		"not an ID":      {"atlas", secret},
		"user ID":        {string(ecoid.New(ecoid.User)), secret},
	} {
		if _, err := ps.Authenticate(ctx, tc[0], tc[1]); !errors.Is(err, sso.ErrInvalidClient) {
			t.Errorf("%s: Authenticate = %v, want ErrInvalidClient", name, err)
		}
	}
}

func TestRegisterRefusesBadInput(t *testing.T) {
	ps := sso.NewProjects(memory.NewSSOStore(), nil)
	many := make([]string, sso.MaxRedirectURIs+1)
	for i := range many {
		many[i] = "https://a.test/cb"
	}
	for name, tc := range map[string]struct {
		name string
		uris []string
	}{
		"empty name":        {"", []string{"https://a.test/cb"}},
		"control in name":   {"a\x00b", []string{"https://a.test/cb"}},
		"C1 in name":        {"a\u0085b", []string{"https://a.test/cb"}},
		"bidi in name":      {"Atlas \u202egnp.exe", []string{"https://a.test/cb"}},
		"long name":         {strings.Repeat("n", 101), []string{"https://a.test/cb"}},
		"no uris":           {"a", nil},
		"too many uris":     {"a", many},
		"relative":          {"a", []string{"/cb"}},
		"fragment":          {"a", []string{"https://a.test/cb#x"}},
		"empty fragment":    {"a", []string{"https://a.test/cb#"}},
		"plain http":        {"a", []string{"http://a.test/cb"}},
		"javascript":        {"a", []string{"javascript:alert(1)"}},
		"userinfo":          {"a", []string{"https://u:p@a.test/cb"}},
		"http lookalike ip": {"a", []string{"http://127.0.0.1.evil.test/cb"}},
	} {
		if _, _, err := ps.Register(context.Background(), tc.name, tc.uris); !errors.Is(err, sso.ErrInvalidProject) {
			t.Errorf("%s: Register = %v, want ErrInvalidProject", name, err)
		}
	}
	for _, ok := range []string{"https://a.test/cb?x=1", "http://127.0.0.1:8081/cb", "http://[::1]/cb", "http://localhost:3000/cb"} {
		if err := sso.ValidateRedirectURI(ok); err != nil {
			t.Errorf("ValidateRedirectURI(%q) = %v", ok, err)
		}
	}
}

func TestHasRedirectURIIsExact(t *testing.T) {
	p := sso.Project{RedirectURIs: []string{"https://a.test/cb"}}
	for _, u := range []string{"https://a.test/cb/", "https://a.test/cb?x", "https://a.test/c", "HTTPS://a.test/cb", "https://a.test/cb/../cb"} {
		if p.HasRedirectURI(u) {
			t.Errorf("HasRedirectURI(%q) = true", u)
		}
	}
	if !p.HasRedirectURI("https://a.test/cb") {
		t.Error("exact URI refused")
	}
}

func edIssuer(t *testing.T, now func() time.Time) *auth.Issuer {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	is, err := auth.NewIssuer(auth.IssuerConfig{SigningKey: ed25519.NewKeyFromSeed(seed), SigningKeyID: "k1", Issuer: "https://idp.test", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func TestProjectTokenRoundTripAndPinning(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clock := func() time.Time { return now }
	is := edIssuer(t, clock)
	user, proj := ecoid.New(ecoid.User), ecoid.New(ecoid.Project)
	tok, minted, err := sso.MintProjectToken(is, sso.ProjectClaims{UserID: user, ProjectID: proj, Role: auth.RoleMember}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if !minted.ExpiresAt.Equal(now.Add(sso.DefaultProjectTokenTTL)) {
		t.Fatalf("exp = %v", minted.ExpiresAt)
	}
	v := sso.NewTokenVerifier(sso.LocalKeys(is), "https://idp.test", string(proj), 0, clock)
	c, err := v.Verify(context.Background(), tok)
	if err != nil || c.UserID != user || c.ProjectID != proj || c.Role != auth.RoleMember {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// Pinned audience: another project's verifier refuses it.
	other := sso.NewTokenVerifier(sso.LocalKeys(is), "https://idp.test", string(ecoid.New(ecoid.Project)), 0, clock)
	if _, err := other.Verify(context.Background(), tok); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("other audience: %v", err)
	}
	// Pinned issuer.
	wrongIss := sso.NewTokenVerifier(sso.LocalKeys(is), "https://evil.test", string(proj), 0, clock)
	if _, err := wrongIss.Verify(context.Background(), tok); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("other issuer: %v", err)
	}
	// Nexus's own session tokens are not project tokens (typ header differs).
	access, _, err := is.Issue(auth.AccessToken, user, ecoid.New(ecoid.Session))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), access); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("session access token accepted as a project token: %v", err)
	}
	// Expiry with the default leeway of 30 s.
	now = now.Add(sso.DefaultProjectTokenTTL + 29*time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("inside the leeway: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestProjectTokenNeedsEdDSA(t *testing.T) {
	is, err := auth.NewIssuer(auth.IssuerConfig{Secret: []byte(strings.Repeat("s", 32))})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = sso.MintProjectToken(is, sso.ProjectClaims{UserID: ecoid.New(ecoid.User), ProjectID: ecoid.New(ecoid.Project), Role: auth.RoleViewer}, 0, time.Now())
	if !errors.Is(err, sso.ErrNeedEdDSA) {
		t.Fatalf("HS256 MintProjectToken = %v", err)
	}
}
