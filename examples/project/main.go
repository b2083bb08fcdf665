// Command project is an ecosystem project's service that trusts Nexus as its identity
// provider through OpenID Connect discovery and the JWKS only: no shared secret, no
// database of users. It protects GET /api/hello with a project access token minted by
// Nexus for this project (POST /api/auth/token at Nexus, or the access token of the OIDC
// code flow).
//
//	go run ./examples/project -project eco_prj_… -issuer http://127.0.0.1:8080
//
// Nexus must sign with EdDSA (NEXUS_JWT_ED25519_KEY) for discovery to exist.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/sso"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "project:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, when not nil, receives the listening address.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, logOut io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("project", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	issuer := fs.String("issuer", envOr(getenv, "NEXUS_ISSUER", "http://127.0.0.1:8080"), "Nexus issuer URL, its NEXUS_PUBLIC_URL (env NEXUS_ISSUER)")
	project := fs.String("project", getenv("NEXUS_PROJECT_ID"), "this project's ID at Nexus, eco_prj_… (env NEXUS_PROJECT_ID); required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *project == "" {
		return errors.New("-project (or NEXUS_PROJECT_ID) is required: register the project at Nexus with POST /api/projects")
	}
	log := slog.New(slog.NewJSONHandler(logOut, nil))

	startCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	verifier, err := sso.NewRemoteVerifier(startCtx, sso.RemoteConfig{Issuer: *issuer, Audience: *project})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /api/hello", verifier.Require(auth.RoleViewer)(http.HandlerFunc(hello)))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "issuer", *issuer, "project", *project)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShutdown()
	return srv.Shutdown(shutdownCtx)
}

// hello answers who called: GET /api/hello → {user_id, role}.
func hello(w http.ResponseWriter, r *http.Request) {
	c, _ := sso.ProjectClaimsFrom(r.Context())
	httpjson.Write(w, http.StatusOK, map[string]any{"user_id": c.UserID, "role": c.Role, "project_id": c.ProjectID})
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
