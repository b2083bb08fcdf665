package main

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/sso"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
)

// defaultPublicURL is NEXUS_PUBLIC_URL's default: the address go run ./examples/server
// listens on.
const defaultPublicURL = "http://127.0.0.1:8080"

// parsePublicURL reads NEXUS_PUBLIC_URL: the server's public base URL, the OIDC issuer
// and the base of links in mail. It must be an absolute http(s) URL without query.
func parsePublicURL(cfg *config, getenv func(string) string) error {
	raw := strings.TrimRight(getenv("NEXUS_PUBLIC_URL"), "/")
	if raw == "" {
		raw = defaultPublicURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("NEXUS_PUBLIC_URL must be an absolute http(s) URL such as https://id.example.com")
	}
	cfg.PublicURL = raw
	return nil
}

// initSSO builds the project registry and, with an EdDSA issuer, the OpenID Connect
// provider. With HS256 there is no provider: relying parties could not verify its tokens
// without the shared secret, so discovery and /oauth/* answer 404 and project tokens 503.
func (s *services) initSSO() error {
	var store sso.Store = memory.NewSSOStore()
	if s.db != nil {
		store = postgres.NewSSOStore(s.db)
	}
	s.projects = sso.NewProjects(store, nil)
	if s.issuer.Algorithm() != "EdDSA" {
		return nil
	}
	p, err := sso.NewProvider(sso.ProviderConfig{
		Issuer: s.cfg.PublicURL, Auth: s.auth, Projects: s.projects, Store: store, Cookies: s.cookies, Logger: s.log,
	})
	if err != nil {
		return err
	}
	s.provider = p
	return nil
}

// ssoHandlers serve the project registry (/api/projects*, admin), a user's projects and
// project tokens, and mount the OIDC provider.
type ssoHandlers struct {
	auth         *auth.Service
	projects     *sso.Projects
	provider     *sso.Provider // nil with HS256
	requireUser  func(http.Handler) http.Handler
	requireAdmin func(http.Handler) http.Handler
	log          *slog.Logger
}

func (h ssoHandlers) register(rt *router) {
	rt.Handle("POST /api/projects", h.requireAdmin(http.HandlerFunc(h.createProject)))
	rt.Handle("GET /api/projects", h.requireAdmin(http.HandlerFunc(h.listProjects)))
	rt.Handle("POST /api/projects/access", h.requireAdmin(http.HandlerFunc(h.grant)))
	rt.Handle("POST /api/projects/access/revoke", h.requireAdmin(http.HandlerFunc(h.revoke)))
	rt.Handle("GET /api/projects/mine", h.requireUser(http.HandlerFunc(h.mine)))
	rt.Handle("POST /api/auth/token", h.requireUser(http.HandlerFunc(h.projectToken)))
	if h.provider != nil {
		h.provider.Register(rt)
	}
}

type projectJSON struct {
	ID           ecoid.ID  `json:"id"`
	Name         string    `json:"name"`
	ClientID     ecoid.ID  `json:"client_id"`
	ClientSecret string    `json:"client_secret,omitempty"`
	RedirectURIs []string  `json:"redirect_uris"`
	CreatedAt    time.Time `json:"created_at"`
}

func toProjectJSON(p sso.Project) projectJSON {
	return projectJSON{ID: p.ID, Name: p.Name, ClientID: p.ID, RedirectURIs: p.RedirectURIs, CreatedAt: p.CreatedAt}
}

// createProject: POST /api/projects {name, redirect_uris} → 201 with the client secret,
// shown this once.
func (h ssoHandlers) createProject(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name         string   `json:"name"`
		RedirectURIs []string `json:"redirect_uris"`
	}
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	p, secret, err := h.projects.Register(r.Context(), req.Name, req.RedirectURIs)
	if errors.Is(err, sso.ErrInvalidProject) {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_project", strings.TrimPrefix(err.Error(), "sso: invalid project: "))
		return
	}
	if err != nil {
		internalError(h.log, w, r, "register project", err)
		return
	}
	out := toProjectJSON(p)
	out.ClientSecret = secret
	httpjson.WriteSecret(w, http.StatusCreated, out)
}

// listProjects: GET /api/projects → {projects:[…]} without secrets.
func (h ssoHandlers) listProjects(w http.ResponseWriter, r *http.Request) {
	ps, err := h.projects.List(r.Context())
	if err != nil {
		internalError(h.log, w, r, "list projects", err)
		return
	}
	out := make([]projectJSON, len(ps))
	for i, p := range ps {
		out[i] = toProjectJSON(p)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"projects": out})
}

type accessRequest struct {
	ProjectID string `json:"project_id"`
	UserID    string `json:"user_id"`
	Role      string `json:"role"`
}

// accessTarget decodes and checks {project_id, user_id}: both must exist (404 otherwise).
func (h ssoHandlers) accessTarget(w http.ResponseWriter, r *http.Request) (accessRequest, ecoid.ID, ecoid.ID, bool) {
	var req accessRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteDecodeError(w, err)
		return req, "", "", false
	}
	pid, err := ecoid.Parse(req.ProjectID)
	if err != nil || pid.Type() != ecoid.Project {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_project_id", "project_id is not a project ID (eco_prj_…)")
		return req, "", "", false
	}
	uid, err := ecoid.Parse(req.UserID)
	if err != nil || uid.Type() != ecoid.User {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_user_id", "user_id is not a user ID (eco_usr_…)")
		return req, "", "", false
	}
	if _, err := h.projects.Project(r.Context(), pid); errors.Is(err, sso.ErrNotFound) {
		httpjson.WriteError(w, http.StatusNotFound, "project_not_found", "no such project")
		return req, "", "", false
	} else if err != nil {
		internalError(h.log, w, r, "project lookup", err)
		return req, "", "", false
	}
	if _, err := h.auth.UserByID(r.Context(), uid); errors.Is(err, auth.ErrNotFound) {
		httpjson.WriteError(w, http.StatusNotFound, "user_not_found", "no such user")
		return req, "", "", false
	} else if err != nil {
		internalError(h.log, w, r, "user lookup", err)
		return req, "", "", false
	}
	return req, pid, uid, true
}

// grant: POST /api/projects/access {project_id, user_id, role} → 200.
func (h ssoHandlers) grant(w http.ResponseWriter, r *http.Request) {
	req, pid, uid, ok := h.accessTarget(w, r)
	if !ok {
		return
	}
	err := h.auth.GrantAccess(r.Context(), auth.ClientFromRequest(r), uid, pid, auth.Role(req.Role))
	switch {
	case errors.Is(err, auth.ErrInvalidRole):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_role", "role must be owner, admin, member or viewer")
	case errors.Is(err, auth.ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "user_not_found", "no such user")
	case err != nil:
		internalError(h.log, w, r, "grant access", err)
	default:
		httpjson.Write(w, http.StatusOK, map[string]any{"project_id": pid, "user_id": uid, "role": req.Role})
	}
}

// revoke: POST /api/projects/access/revoke {project_id, user_id} → 200; 404 when there
// was no grant.
func (h ssoHandlers) revoke(w http.ResponseWriter, r *http.Request) {
	_, pid, uid, ok := h.accessTarget(w, r)
	if !ok {
		return
	}
	if _, err := h.auth.Grant(r.Context(), uid, pid); errors.Is(err, auth.ErrNotFound) {
		httpjson.WriteError(w, http.StatusNotFound, "grant_not_found", "the user has no role on this project")
		return
	} else if err != nil {
		internalError(h.log, w, r, "grant lookup", err)
		return
	}
	if err := h.auth.RevokeAccess(r.Context(), auth.ClientFromRequest(r), uid, pid); err != nil {
		internalError(h.log, w, r, "revoke access", err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"project_id": pid, "user_id": uid, "revoked": true})
}

// mine: GET /api/projects/mine → {projects:[{id,name,role}]}.
func (h ssoHandlers) mine(w http.ResponseWriter, r *http.Request) {
	grants, err := h.auth.UserGrants(r.Context(), currentUser(r))
	if err != nil {
		internalError(h.log, w, r, "user grants", err)
		return
	}
	type mineJSON struct {
		ID   ecoid.ID  `json:"id"`
		Name string    `json:"name"`
		Role auth.Role `json:"role"`
	}
	out := make([]mineJSON, 0, len(grants))
	for _, g := range grants {
		p, err := h.projects.Project(r.Context(), g.ProjectID)
		if errors.Is(err, sso.ErrNotFound) {
			continue // a grant on a project that is not registered (any more)
		}
		if err != nil {
			internalError(h.log, w, r, "project lookup", err)
			return
		}
		out = append(out, mineJSON{ID: p.ID, Name: p.Name, Role: g.Role})
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"projects": out})
}

// projectToken: POST /api/auth/token {project_id} → a short project access token (aud =
// the project, claim role) for a project the user has a role on.
func (h ssoHandlers) projectToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProjectID string `json:"project_id"`
	}
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	pid, err := ecoid.Parse(req.ProjectID)
	if err != nil || pid.Type() != ecoid.Project {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_project_id", "project_id is not a project ID (eco_prj_…)")
		return
	}
	if h.provider == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "sso_disabled", "project tokens need EdDSA signing (NEXUS_JWT_ED25519_KEY)")
		return
	}
	user := currentUser(r)
	g, err := h.auth.Grant(r.Context(), user, pid)
	if errors.Is(err, auth.ErrNotFound) {
		httpjson.WriteError(w, http.StatusForbidden, "no_project_access", "you have no role on this project")
		return
	}
	if err != nil {
		internalError(h.log, w, r, "grant lookup", err)
		return
	}
	tok, c, err := sso.MintProjectToken(h.auth.Issuer(), sso.ProjectClaims{UserID: user, ProjectID: pid, Role: g.Role}, 0, time.Now())
	if err != nil {
		internalError(h.log, w, r, "mint project token", err)
		return
	}
	httpjson.WriteSecret(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int(time.Until(c.ExpiresAt).Round(time.Second) / time.Second),
	})
}
