package interop

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/sso"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

const (
	userEmail    = "ann@example.com"
	userPassword = "Correct-Horse-9-battery"
)

// nexus is a Nexus identity provider on a loopback server: the sso provider over memory
// stores, one user with a member grant on one registered project (the relying party).
type nexus struct {
	srv     *httptest.Server
	auth    *auth.Service
	project sso.Project
	secret  string
	user    auth.User
}

func startNexus(t *testing.T, redirectURI string) *nexus {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	is, err := auth.NewIssuer(auth.IssuerConfig{SigningKey: ed25519.NewKeyFromSeed(seed), SigningKeyID: "interop-1", Issuer: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(auth.Config{Store: memory.NewAuthStore(), Issuer: is, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	store := memory.NewSSOStore()
	projects := sso.NewProjects(store, nil)
	p, err := sso.NewProvider(sso.ProviderConfig{Issuer: srv.URL, Auth: svc, Projects: projects, Store: store, Cookies: auth.CookieConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	p.Register(mux)
	ctx := context.Background()
	res, err := svc.Register(ctx, auth.Client{}, userEmail, userPassword, "Ann Lee")
	if err != nil {
		t.Fatal(err)
	}
	proj, secret, err := projects.Register(ctx, "Atlas", []string{redirectURI})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.GrantAccess(ctx, auth.Client{}, res.User.ID, proj.ID, auth.RoleMember); err != nil {
		t.Fatal(err)
	}
	return &nexus{srv: srv, auth: svc, project: proj, secret: secret, user: res.User}
}

// relyingParty is a web application that signs its users in through Nexus using only
// go-oidc and x/oauth2: discovery, the code flow with PKCE S256 and a nonce, id_token
// verification from the JWKS, and userinfo.
type relyingParty struct {
	srv      *httptest.Server
	provider *oidc.Provider
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier

	mu      sync.Mutex
	pending map[string]pendingLogin // by state
	results chan rpResult
}

type pendingLogin struct{ nonce, verifier string }

// rpResult is what the callback learned.
type rpResult struct {
	IDToken  *oidc.IDToken
	Claims   map[string]any
	UserInfo *oidc.UserInfo
	Token    *oauth2.Token
	Err      error
}

// newRelyingParty starts the RP's server first (its callback URL must be registered),
// then connect points it at a Nexus.
func newRelyingParty(t *testing.T) *relyingParty {
	t.Helper()
	rp := &relyingParty{pending: map[string]pendingLogin{}, results: make(chan rpResult, 4)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", rp.login)
	mux.HandleFunc("GET /callback", rp.callback)
	rp.srv = httptest.NewServer(mux)
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *relyingParty) redirectURI() string { return rp.srv.URL + "/callback" }

func (rp *relyingParty) connect(t *testing.T, n *nexus) {
	t.Helper()
	provider, err := oidc.NewProvider(context.Background(), n.srv.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	rp.provider = provider
	rp.oauth = oauth2.Config{ClientID: string(n.project.ID), ClientSecret: n.secret, Endpoint: provider.Endpoint(),
		RedirectURL: rp.redirectURI(), Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	rp.verifier = provider.Verifier(&oidc.Config{ClientID: string(n.project.ID), SupportedSigningAlgs: []string{oidc.EdDSA}})
}

// login starts a sign-in: a fresh state, nonce and PKCE verifier, then a redirect to
// Nexus.
func (rp *relyingParty) login(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.pending[state] = pendingLogin{nonce: nonce, verifier: verifier}
	rp.mu.Unlock()
	http.Redirect(w, r, rp.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// callback finishes it: state checked, code exchanged with the verifier, id_token
// verified (signature from the JWKS, iss, aud, exp) and its nonce compared, userinfo read.
func (rp *relyingParty) callback(w http.ResponseWriter, r *http.Request) {
	res := rp.finish(r)
	rp.results <- res
	if res.Err != nil {
		http.Error(w, res.Err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, `<!doctype html><title>Signed in</title><p id="who">Signed in as %s</p>`, html.EscapeString(res.UserInfo.Email))
}

func (rp *relyingParty) finish(r *http.Request) rpResult {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return rpResult{Err: fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))}
	}
	rp.mu.Lock()
	p, ok := rp.pending[q.Get("state")]
	delete(rp.pending, q.Get("state"))
	rp.mu.Unlock()
	if !ok {
		return rpResult{Err: fmt.Errorf("unknown state")}
	}
	tok, err := rp.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		return rpResult{Err: fmt.Errorf("exchange: %w", err)}
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		return rpResult{Err: fmt.Errorf("id_token: %w", err)}
	}
	if idt.Nonce != p.nonce {
		return rpResult{Err: fmt.Errorf("nonce %q, want %q", idt.Nonce, p.nonce)}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return rpResult{Err: err}
	}
	info, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return rpResult{Err: fmt.Errorf("userinfo: %w", err)}
	}
	return rpResult{IDToken: idt, Claims: claims, UserInfo: info, Token: tok}
}

// oauth2SChallenge is a valid PKCE S256 option for requests that are refused before PKCE
// matters.
func oauth2SChallenge() oauth2.AuthCodeOption {
	return oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
}
