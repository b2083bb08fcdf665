package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
)

// ssoEnv is an EdDSA server whose issuer URL is set, with boss@example.com as admin.
func ssoEnv(extra ...string) map[string]string {
	env := map[string]string{"NEXUS_BCRYPT_COST": "4", "NEXUS_JWT_ED25519_KEY": b64(testSeed(5)), "NEXUS_JWT_KID": "k5",
		"NEXUS_ADMINS": "boss@example.com", "NEXUS_PUBLIC_URL": "http://nexus.test"}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

type projectAnswer struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	RedirectURIs []string `json:"redirect_uris"`
}

func TestProjectsGrantsAndProjectTokens(t *testing.T) {
	s := startServer(t, ssoEnv())
	boss := s.adminSession("boss@example.com")
	ann := s.register("ann@example.com")

	// Only admins register projects.
	if resp := s.do("POST", "/api/projects", `{"name":"Atlas","redirect_uris":["https://atlas.test/cb"]}`, bearer(ann.AccessToken), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("non-admin registers a project: %d", resp.StatusCode)
	}
	var p projectAnswer
	resp := s.do("POST", "/api/projects", `{"name":"Atlas","redirect_uris":["https://atlas.test/cb"]}`, bearer(boss), &p)
	if resp.StatusCode != http.StatusCreated || p.ClientID != p.ID || p.ClientSecret == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("register project: %d %+v cache=%q", resp.StatusCode, p, resp.Header.Get("Cache-Control"))
	}
	var bad errorAnswer
	if resp := s.do("POST", "/api/projects", `{"name":"Evil","redirect_uris":["http://evil.test/cb"]}`, bearer(boss), &bad); resp.StatusCode != 400 || bad.Error.Code != "invalid_project" {
		t.Fatalf("plain-http redirect URI: %d %+v", resp.StatusCode, bad)
	}
	var list struct {
		Projects []projectAnswer `json:"projects"`
	}
	if resp := s.do("GET", "/api/projects", "", bearer(boss), &list); resp.StatusCode != 200 || len(list.Projects) != 1 || list.Projects[0].ClientSecret != "" {
		t.Fatalf("list projects: %d %+v", resp.StatusCode, list)
	}

	// No grant yet: no project token.
	var deny errorAnswer
	if resp := s.do("POST", "/api/auth/token", `{"project_id":"`+p.ID+`"}`, bearer(ann.AccessToken), &deny); resp.StatusCode != http.StatusForbidden || deny.Error.Code != "no_project_access" {
		t.Fatalf("token without a grant: %d %+v", resp.StatusCode, deny)
	}
	grant := `{"project_id":"` + p.ID + `","user_id":"` + ann.User.ID + `","role":"member"}`
	if resp := s.do("POST", "/api/projects/access", grant, bearer(boss), nil); resp.StatusCode != 200 {
		t.Fatalf("grant: %d", resp.StatusCode)
	}
	for name, body := range map[string]string{
		"unknown project": `{"project_id":"` + string(ecoid.New(ecoid.Project)) + `","user_id":"` + ann.User.ID + `","role":"member"}`,
		"unknown user":    `{"project_id":"` + p.ID + `","user_id":"` + string(ecoid.New(ecoid.User)) + `","role":"member"}`,
	} {
		if resp := s.do("POST", "/api/projects/access", body, bearer(boss), nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("grant to %s: %d, want 404", name, resp.StatusCode)
		}
	}
	var mine struct {
		Projects []struct{ ID, Name, Role string } `json:"projects"`
	}
	if resp := s.do("GET", "/api/projects/mine", "", bearer(ann.AccessToken), &mine); resp.StatusCode != 200 || len(mine.Projects) != 1 || mine.Projects[0].Role != "member" || mine.Projects[0].Name != "Atlas" {
		t.Fatalf("mine: %d %+v", resp.StatusCode, mine)
	}

	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	resp = s.do("POST", "/api/auth/token", `{"project_id":"`+p.ID+`"}`, bearer(ann.AccessToken), &tok)
	if resp.StatusCode != 200 || tok.TokenType != "Bearer" || tok.ExpiresIn < 60 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("project token: %d %+v", resp.StatusCode, tok)
	}
	// A project service verifies it through discovery and the JWKS alone.
	v, err := sso.NewRemoteVerifier(context.Background(), sso.RemoteConfig{Issuer: "http://nexus.test", Audience: p.ID, HTTPClient: s.rewriteClient("http://nexus.test")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok.AccessToken)
	if err != nil || string(c.UserID) != ann.User.ID || c.Role != auth.RoleMember {
		t.Fatalf("remote verify: %+v %v", c, err)
	}
	// Nexus itself refuses the project token: its audience is the project.
	if resp := s.do("GET", "/api/projects/mine", "", bearer(tok.AccessToken), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("project token on a Nexus route: %d", resp.StatusCode)
	}

	// Revoke: 200, then 404 for a grant that is gone, and no token any more.
	revoke := `{"project_id":"` + p.ID + `","user_id":"` + ann.User.ID + `"}`
	if resp := s.do("POST", "/api/projects/access/revoke", revoke, bearer(boss), nil); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/projects/access/revoke", revoke, bearer(boss), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoke again: %d, want 404", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/token", `{"project_id":"`+p.ID+`"}`, bearer(ann.AccessToken), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("token after revoke: %d", resp.StatusCode)
	}
}

func TestOIDCEndpointsNeedEdDSA(t *testing.T) {
	s := startServer(t, authEnv())
	for _, path := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration"} {
		if resp := s.do("GET", path, "", nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("HS256 %s: %d, want 404", path, resp.StatusCode)
		}
	}
	e := startServer(t, ssoEnv())
	var doc sso.Discovery
	if resp := e.do("GET", "/.well-known/openid-configuration", "", nil, &doc); resp.StatusCode != 200 || doc.Issuer != "http://nexus.test" || doc.TokenEndpoint != "http://nexus.test/oauth/token" {
		t.Fatalf("discovery: %d %+v", resp.StatusCode, doc)
	}
	var set auth.JWKSet
	if resp := e.do("GET", "/.well-known/jwks.json", "", nil, &set); resp.StatusCode != 200 || len(set.Keys) != 1 || set.Keys[0].KeyID != "k5" || set.Keys[0].Curve != "Ed25519" {
		t.Fatalf("jwks: %d %+v", resp.StatusCode, set)
	}
}

// rewriteClient sends requests for the public URL base to the test server instead.
func (s *testServer) rewriteClient(public string) *http.Client {
	return &http.Client{Transport: rewriteTransport{from: public, to: s.base}}
}

type rewriteTransport struct{ from, to string }

func (rt rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := *r.URL
	if base := u.Scheme + "://" + u.Host; base == rt.from {
		to, _ := http.NewRequest(r.Method, rt.to, nil)
		u.Scheme, u.Host = to.URL.Scheme, to.URL.Host
	}
	r2 := r.Clone(r.Context())
	r2.URL = &u
	r2.Host = u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

// adminSession registers email, which the test server lists in NEXUS_ADMINS, and returns
// its access token.
func (s *testServer) adminSession(email string) string {
	s.t.Helper()
	return s.verifiedUser(email).AccessToken
}
