package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

// nexusJWKS serves what the project reads from Nexus: discovery and the JWKS of is, at
// an issuer URL equal to the server's.
func nexusJWKS(t *testing.T) (*httptest.Server, *auth.Issuer) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	seed := bytes.Repeat([]byte{4}, ed25519.SeedSize)
	is, err := auth.NewIssuer(auth.IssuerConfig{SigningKey: ed25519.NewKeyFromSeed(seed), SigningKeyID: "k1", Issuer: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(auth.Config{Store: memory.NewAuthStore(), Issuer: is, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	store := memory.NewSSOStore()
	p, err := sso.NewProvider(sso.ProviderConfig{Issuer: srv.URL, Auth: svc, Projects: sso.NewProjects(store, nil), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	p.Register(mux)
	return srv, is
}

func TestHelloNeedsAProjectTokenForThisProject(t *testing.T) {
	nexus, is := nexusJWKS(t)
	project := ecoid.New(ecoid.Project)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-issuer", nexus.URL, "-project", string(project)}, func(string) string { return "" }, io.Discard, io.Discard, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("project did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("project did not start")
	}
	t.Cleanup(func() { cancel(); <-done })

	user := ecoid.New(ecoid.User)
	mint := func(p ecoid.ID) string {
		tok, _, err := sso.MintProjectToken(is, sso.ProjectClaims{UserID: user, ProjectID: p, Role: auth.RoleMember}, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	get := func(tok string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/hello", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if status, body := get(mint(project)); status != 200 || body["user_id"] != string(user) || body["role"] != "member" {
		t.Fatalf("with a token for this project: %d %v", status, body)
	}
	if status, _ := get(mint(ecoid.New(ecoid.Project))); status != http.StatusUnauthorized {
		t.Fatalf("token of another project: %d, want 401", status)
	}
	if status, _ := get(""); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", status)
	}
	session, _, _ := is.Issue(auth.AccessToken, user, ecoid.New(ecoid.Session))
	if status, _ := get(session); status != http.StatusUnauthorized {
		t.Fatalf("a Nexus session token: %d, want 401", status)
	}
}

func TestProjectFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out, io.Discard, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-addr", "-issuer", "-project", "NEXUS_ISSUER", "NEXUS_PROJECT_ID"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h does not mention %s:\n%s", want, out.String())
		}
	}
	if err := run(context.Background(), nil, func(string) string { return "" }, io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "-project") {
		t.Fatalf("without -project: %v", err)
	}
}
