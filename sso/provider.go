package sso

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Provider defaults used when ProviderConfig leaves them zero.
const (
	DefaultCodeTTL       = time.Minute      // RFC 6749 §4.1.2 recommends at most 10 minutes
	DefaultAccessTTL     = 10 * time.Minute // OIDC access tokens
	DefaultIDTokenTTL    = 10 * time.Minute
	maxParam             = 512 // bytes of state, nonce, scope
	maxFormBytes         = 16 << 10
	csrfCookie           = "nexus_oauth_csrf"
	discoveryPath        = "/.well-known/openid-configuration"
	jwksPath             = "/.well-known/jwks.json"
	authorizePath        = "/oauth/authorize"
	tokenPath            = "/oauth/token"
	userinfoPath         = "/oauth/userinfo"
	pkceMethodS256       = "S256"
	grantAuthorizationCd = "authorization_code"
	grantRefresh         = "refresh_token"
)

// UserInfo is what the provider says about a user: the userinfo answer and the id_token's
// profile claims.
type UserInfo struct {
	Subject       ecoid.ID `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
}

// ProviderConfig configures NewProvider. Issuer, Auth, Projects and Store are required.
type ProviderConfig struct {
	// Issuer is the provider's public base URL (NEXUS_PUBLIC_URL), without a trailing
	// slash: the "iss" of every token and the base of every endpoint in the discovery
	// document. It must equal the Auth service issuer's "iss" claim.
	Issuer string
	// Auth signs users in (the sign-in page), opens and refreshes sessions and checks
	// project grants. Its issuer must sign with EdDSA.
	Auth *auth.Service
	// Projects authenticates clients and knows their redirect URIs.
	Projects *Projects
	// Store keeps authorization codes and session bindings.
	Store Store
	// Cookies names the Nexus session cookies the sign-in page sets and reads.
	Cookies auth.CookieConfig
	// UserInfo describes a user; default: from Auth.UserByID.
	UserInfo func(ctx context.Context, user ecoid.ID) (UserInfo, error)
	// CodeTTL, AccessTTL and IDTokenTTL default to DefaultCodeTTL, DefaultAccessTTL and
	// DefaultIDTokenTTL.
	CodeTTL, AccessTTL, IDTokenTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives operational errors; default: discard. Secrets are never logged.
	Logger *slog.Logger
}

// Provider is an OpenID Connect provider for the ecosystem's projects: discovery, JWKS,
// the authorization-code flow with PKCE (S256 only), the token endpoint with refresh,
// and userinfo. It is safe for concurrent use.
type Provider struct {
	cfg      ProviderConfig
	issuer   *auth.Issuer
	log      *slog.Logger
	now      func() time.Time
	userInfo func(ctx context.Context, user ecoid.ID) (UserInfo, error)
}

// NewProvider checks cfg and returns a Provider. It returns ErrNeedEdDSA when the Auth
// service signs with HS256 (relying parties could not verify without the secret), and an
// error for a missing field or an Issuer that is not an absolute http(s) URL or differs
// from the Auth issuer's "iss".
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	if cfg.Auth == nil || cfg.Projects == nil || cfg.Store == nil {
		return nil, errors.New("sso: provider needs Auth, Projects and Store")
	}
	is := cfg.Auth.Issuer()
	if is.Algorithm() != "EdDSA" {
		return nil, ErrNeedEdDSA
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("sso: issuer %q is not an absolute http(s) URL", cfg.Issuer)
	}
	if is.IssuerName() != cfg.Issuer {
		return nil, fmt.Errorf("sso: issuer %q differs from the token issuer's iss %q", cfg.Issuer, is.IssuerName())
	}
	p := &Provider{cfg: cfg, issuer: is, log: cfg.Logger, now: cfg.Now, userInfo: cfg.UserInfo}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.cfg.CodeTTL <= 0 {
		p.cfg.CodeTTL = DefaultCodeTTL
	}
	if p.cfg.AccessTTL <= 0 {
		p.cfg.AccessTTL = DefaultAccessTTL
	}
	if p.cfg.IDTokenTTL <= 0 {
		p.cfg.IDTokenTTL = DefaultIDTokenTTL
	}
	if p.userInfo == nil {
		p.userInfo = func(ctx context.Context, id ecoid.ID) (UserInfo, error) {
			u, err := cfg.Auth.UserByID(ctx, id)
			if err != nil {
				return UserInfo{}, err
			}
			return UserInfo{Subject: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.FullName}, nil
		}
	}
	return p, nil
}

// Mux is what Register needs of a router: *http.ServeMux has it.
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// Register adds the provider's routes to mux (Go 1.22 patterns): GET discovery and JWKS,
// GET and POST /oauth/authorize (POST is the sign-in form, guarded against cross-origin
// requests), POST /oauth/token, GET and POST /oauth/userinfo.
func (p *Provider) Register(mux Mux) {
	mux.Handle("GET "+discoveryPath, http.HandlerFunc(p.discovery))
	mux.Handle("GET "+jwksPath, http.HandlerFunc(p.jwks))
	mux.Handle("GET "+authorizePath, http.HandlerFunc(p.authorize))
	mux.Handle("POST "+authorizePath, http.NewCrossOriginProtection().Handler(http.HandlerFunc(p.signIn)))
	mux.Handle("POST "+tokenPath, http.HandlerFunc(p.token))
	mux.Handle("GET "+userinfoPath, http.HandlerFunc(p.userinfo))
	mux.Handle("POST "+userinfoPath, http.HandlerFunc(p.userinfo))
}

// Discovery is the OpenID Connect discovery document (OpenID Connect Discovery 1.0 §3).
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseISSParameter bool     `json:"authorization_response_iss_parameter_supported"`
}

// Discovery returns the provider's discovery document.
func (p *Provider) Discovery() Discovery {
	base := p.cfg.Issuer
	return Discovery{
		Issuer:                            base,
		AuthorizationEndpoint:             base + authorizePath,
		TokenEndpoint:                     base + tokenPath,
		UserinfoEndpoint:                  base + userinfoPath,
		JWKSURI:                           base + jwksPath,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{grantAuthorizationCd, grantRefresh},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"EdDSA"},
		ScopesSupported:                   slices.Clone(supportedScopes),
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name"},
		CodeChallengeMethodsSupported:     []string{pkceMethodS256},
		AuthorizationResponseISSParameter: true,
	}
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, p.Discovery())
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	set, err := p.issuer.JWKS()
	if err != nil { // cannot happen: NewProvider requires EdDSA
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
		return
	}
	// Short caching: a rotation shows within minutes, and relying parties refetch on an
	// unknown kid anyway.
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(set)
}

// authRequest is a validated authorization request.
type authRequest struct {
	project     Project
	redirectURI string
	scope       string
	state       string
	nonce       string
	challenge   string
	prompt      string
	params      url.Values // the request as sent, for the sign-in form's hidden fields
}

// parseAuthRequest validates an authorization request in the order RFC 6749 §4.1.2.1
// requires: a bad client_id or redirect_uri is answered on the page (never redirected),
// anything else is redirected to the registered redirect_uri as an error.
func (p *Provider) parseAuthRequest(ctx context.Context, q url.Values) (authRequest, *pageError, *redirectError) {
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt"} {
		if len(q[k]) > 1 {
			if k == "client_id" || k == "redirect_uri" {
				return authRequest{}, &pageError{http.StatusBadRequest, "The request repeats " + k + "."}, nil
			}
		}
	}
	clientID := q.Get("client_id")
	id, err := ecoid.Parse(clientID)
	if err != nil || id.Type() != ecoid.Project {
		return authRequest{}, &pageError{http.StatusBadRequest, "Unknown application (client_id)."}, nil
	}
	proj, err := p.cfg.Projects.Project(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return authRequest{}, &pageError{http.StatusBadRequest, "Unknown application (client_id)."}, nil
	}
	if err != nil {
		p.log.Error("sso: authorize: project lookup", "err", err)
		return authRequest{}, &pageError{http.StatusServiceUnavailable, "The sign-in service is unavailable; try again."}, nil
	}
	redirectURI := q.Get("redirect_uri")
	if !proj.HasRedirectURI(redirectURI) {
		return authRequest{}, &pageError{http.StatusBadRequest, "The redirect_uri is not registered for this application."}, nil
	}
	ar := authRequest{project: proj, redirectURI: redirectURI, state: q.Get("state"), params: q}
	fail := func(code, desc string) (authRequest, *pageError, *redirectError) {
		return authRequest{}, nil, &redirectError{uri: redirectURI, state: ar.state, code: code, desc: desc}
	}
	for _, k := range []string{"response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt"} {
		if len(q[k]) > 1 {
			return fail("invalid_request", k+" is repeated")
		}
		if len(q.Get(k)) > maxParam {
			return fail("invalid_request", k+" is too long")
		}
	}
	if q.Get("response_type") != "code" {
		return fail("unsupported_response_type", "only response_type=code is supported")
	}
	if !hasScope(q.Get("scope"), "openid") {
		return fail("invalid_scope", "scope must include openid")
	}
	ar.scope = supportedScope(q.Get("scope"))
	ar.challenge = q.Get("code_challenge")
	if q.Get("code_challenge_method") != pkceMethodS256 || !validPKCE(ar.challenge) {
		return fail("invalid_request", "PKCE is required: code_challenge (43-128 characters) with code_challenge_method=S256")
	}
	ar.nonce = q.Get("nonce")
	ar.prompt = q.Get("prompt")
	return ar, nil, nil
}

// authorize handles GET /oauth/authorize: a signed-in user with a grant on the project is
// sent back with a code; one who is not signed in gets the sign-in page.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ar, perr, rerr := p.parseAuthRequest(r.Context(), r.URL.Query())
	if perr != nil {
		p.renderError(w, perr)
		return
	}
	if rerr != nil {
		rerr.send(w, r, p.cfg.Issuer)
		return
	}
	claims, authTime, signedIn := p.signedIn(r)
	if !signedIn || ar.prompt == "login" {
		if ar.prompt == "none" {
			(&redirectError{uri: ar.redirectURI, state: ar.state, code: "login_required", desc: "the user is not signed in"}).send(w, r, p.cfg.Issuer)
			return
		}
		p.renderSignIn(w, r, ar, "", "", http.StatusOK)
		return
	}
	p.issueCode(w, r, ar, claims.UserID, claims.SessionID, authTime)
}

// signedIn returns the claims of the Nexus access cookie and when its session was
// authenticated, when the cookie is valid and its session still open: a signature alone
// is not enough, since the token of a session logged out, revoked by a password reset or
// erased stays valid for its last minutes.
func (p *Provider) signedIn(r *http.Request) (auth.Claims, time.Time, bool) {
	tok := auth.AccessTokenFromCookie(r, p.cfg.Cookies)
	if tok == "" {
		return auth.Claims{}, time.Time{}, false
	}
	c, err := p.issuer.Verify(tok, auth.AccessToken)
	if err != nil {
		return auth.Claims{}, time.Time{}, false
	}
	authTime, err := p.cfg.Auth.LiveSession(r.Context(), c)
	if err != nil {
		if !errors.Is(err, auth.ErrInvalidToken) {
			p.log.Error("sso: authorize: session check", "err", err)
		}
		return auth.Claims{}, time.Time{}, false
	}
	return c, authTime, true
}

// signIn handles the sign-in form (POST /oauth/authorize): CSRF-checked, then the
// credentials (and a second factor when the login needs one), then the code.
func (p *Provider) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderError(w, &pageError{http.StatusBadRequest, "The form could not be read."})
		return
	}
	ar, perr, rerr := p.parseAuthRequest(r.Context(), authParams(r.PostForm))
	if perr != nil {
		p.renderError(w, perr)
		return
	}
	if rerr != nil {
		rerr.send(w, r, p.cfg.Issuer)
		return
	}
	if !p.csrfOK(r) {
		p.renderError(w, &pageError{http.StatusForbidden, "The form expired or came from another site; go back and try again."})
		return
	}
	res, err := p.checkCredentials(r.Context(), auth.ClientFromRequest(r), r.PostForm)
	var (
		throttled *auth.ThrottledError
		second    *auth.MFARequiredError
	)
	switch {
	case errors.As(err, &second):
		p.renderSignIn(w, r, ar, "", second.Token, http.StatusOK)
		return
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", fmt.Sprint(auth.RetryAfterSeconds(throttled.RetryAfter)))
		p.renderSignIn(w, r, ar, "Too many attempts. Wait a while and try again.", "", http.StatusTooManyRequests)
		return
	case errors.Is(err, auth.ErrInvalidCode):
		// The mfa_token stays valid until its own failure limit, so the user may retry.
		p.renderSignIn(w, r, ar, "Wrong code. Try again.", r.PostForm.Get("mfa_token"), http.StatusUnauthorized)
		return
	case err != nil:
		if !errors.Is(err, auth.ErrInvalidCredentials) && !errors.Is(err, auth.ErrInvalidMFAToken) {
			p.log.Error("sso: sign-in", "err", err)
		}
		p.renderSignIn(w, r, ar, "Wrong email, password or code.", "", http.StatusUnauthorized)
		return
	}
	auth.SetTokenCookies(w, res.Tokens, p.cfg.Cookies)
	p.issueCode(w, r, ar, res.User.ID, res.Tokens.SessionID, p.now())
}

// checkCredentials runs one step of the sign-in form: email and password, or, after
// Login answered *auth.MFARequiredError, the mfa_token with a TOTP code or a recovery
// code (the same second factor and limits as POST /api/auth/mfa/verify).
func (p *Provider) checkCredentials(ctx context.Context, c auth.Client, form url.Values) (auth.Result, error) {
	if tok := form.Get("mfa_token"); tok != "" {
		if rc := form.Get("recovery_code"); rc != "" {
			return p.cfg.Auth.VerifyMFARecovery(ctx, c, tok, rc)
		}
		return p.cfg.Auth.VerifyMFA(ctx, c, tok, form.Get("code"))
	}
	return p.cfg.Auth.Login(ctx, c, form.Get("email"), form.Get("password"))
}

// issueCode checks the user's grant on the project and redirects with a new code.
func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, ar authRequest, user, signIn ecoid.ID, authTime time.Time) {
	err := p.cfg.Auth.CheckAccess(r.Context(), user, ar.project.ID, auth.RoleViewer)
	if errors.Is(err, auth.ErrForbidden) {
		(&redirectError{uri: ar.redirectURI, state: ar.state, code: "access_denied", desc: "the user has no access to this project"}).send(w, r, p.cfg.Issuer)
		return
	}
	if err != nil {
		p.log.Error("sso: authorize: access check", "err", err)
		(&redirectError{uri: ar.redirectURI, state: ar.state, code: "temporarily_unavailable"}).send(w, r, p.cfg.Issuer)
		return
	}
	code := randomToken()
	now := p.now().UTC().Truncate(time.Microsecond)
	if authTime.IsZero() {
		authTime = now
	}
	h := sha256.Sum256([]byte(code))
	c := Code{Hash: h[:], ProjectID: ar.project.ID, UserID: user, RedirectURI: ar.redirectURI, Challenge: ar.challenge,
		Nonce: ar.nonce, Scope: ar.scope, AuthTime: authTime.UTC().Truncate(time.Second), SignInSession: signIn,
		ExpiresAt: now.Add(p.cfg.CodeTTL), CreatedAt: now}
	if err := p.cfg.Store.CreateCode(r.Context(), c); err != nil {
		p.log.Error("sso: authorize: store code", "err", err)
		(&redirectError{uri: ar.redirectURI, state: ar.state, code: "temporarily_unavailable"}).send(w, r, p.cfg.Issuer)
		return
	}
	u, _ := url.Parse(ar.redirectURI) // registered URIs parse
	q := u.Query()
	q.Set("code", code)
	if ar.state != "" {
		q.Set("state", ar.state)
	}
	q.Set("iss", p.cfg.Issuer) // RFC 9207
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// tokenError is an RFC 6749 §5.2 error answer.
type tokenError struct {
	status int
	code   string
	desc   string
}

func (e *tokenError) write(w http.ResponseWriter) {
	if e.code == "invalid_client" {
		w.Header().Set("WWW-Authenticate", `Basic realm="nexus", charset="UTF-8"`)
	}
	body := map[string]string{"error": e.code}
	if e.desc != "" {
		body["error_description"] = e.desc
	}
	writeJSON(w, e.status, body)
}

// TokenResponse is the token endpoint's success answer (RFC 6749 §5.1, OIDC Core §3.1.3.3).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Scope        string `json:"scope,omitempty"`
}

// token handles POST /oauth/token for the authorization_code and refresh_token grants.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		(&tokenError{http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded"}).write(w)
		return
	}
	if err := r.ParseForm(); err != nil {
		(&tokenError{http.StatusBadRequest, "invalid_request", "the form could not be read"}).write(w)
		return
	}
	form := r.PostForm
	for k, v := range form {
		if len(v) > 1 {
			(&tokenError{http.StatusBadRequest, "invalid_request", k + " is repeated"}).write(w)
			return
		}
	}
	proj, terr := p.authenticateClient(r.Context(), r, form)
	if terr != nil {
		terr.write(w)
		return
	}
	var (
		resp TokenResponse
		err  *tokenError
	)
	switch form.Get("grant_type") {
	case grantAuthorizationCd:
		resp, err = p.exchangeCode(r.Context(), auth.ClientFromRequest(r), proj, form)
	case grantRefresh:
		resp, err = p.refresh(r.Context(), auth.ClientFromRequest(r), proj, form)
	case "":
		err = &tokenError{http.StatusBadRequest, "invalid_request", "grant_type is required"}
	default:
		err = &tokenError{http.StatusBadRequest, "unsupported_grant_type", ""}
	}
	if err != nil {
		err.write(w)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// authenticateClient reads client_secret_basic or client_secret_post (one, not both:
// RFC 6749 §2.3) and checks it.
func (p *Provider) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (Project, *tokenError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		if form.Get("client_secret") != "" {
			return Project{}, &tokenError{http.StatusBadRequest, "invalid_request", "use one client authentication method"}
		}
		// RFC 6749 §2.3.1: client_id and secret are form-urlencoded inside Basic.
		var e1, e2 error
		id, e1 = url.QueryUnescape(id)
		secret, e2 = url.QueryUnescape(secret)
		if e1 != nil || e2 != nil {
			return Project{}, &tokenError{http.StatusUnauthorized, "invalid_client", ""}
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return Project{}, &tokenError{http.StatusBadRequest, "invalid_request", "client_id differs from the authenticated client"}
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	proj, err := p.cfg.Projects.Authenticate(ctx, id, secret)
	if errors.Is(err, ErrInvalidClient) {
		return Project{}, &tokenError{http.StatusUnauthorized, "invalid_client", ""}
	}
	if err != nil {
		p.log.Error("sso: token: client authentication", "err", err)
		return Project{}, &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", ""}
	}
	return proj, nil
}

var errGrant = &tokenError{http.StatusBadRequest, "invalid_grant", ""}

// exchangeCode redeems an authorization code (once: a second use revokes the session the
// first opened) and returns the tokens.
func (p *Provider) exchangeCode(ctx context.Context, client auth.Client, proj Project, form url.Values) (TokenResponse, *tokenError) {
	code, verifier := form.Get("code"), form.Get("code_verifier")
	if code == "" || len(code) > maxParam {
		return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_request", "code is required"}
	}
	if !validPKCE(verifier) {
		return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_request", "code_verifier (43-128 characters) is required"}
	}
	now := p.now().UTC().Truncate(time.Microsecond)
	h := sha256.Sum256([]byte(code))
	c, err := p.cfg.Store.RedeemCode(ctx, h[:], now)
	switch {
	case errors.Is(err, ErrNotFound):
		return TokenResponse{}, errGrant
	case errors.Is(err, ErrCodeUsed):
		if c.SessionID == "" {
			// An earlier exchange of the code failed (wrong verifier, client or
			// redirect_uri): redeeming spends a code before those checks, so that a
			// verifier cannot be guessed on one code, and nothing was issued to revoke.
			p.log.Warn("sso: authorization code sent again after a failed exchange", "project", c.ProjectID, "user", c.UserID)
			return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_grant", "the code was already used"}
		}
		if err := p.cfg.Auth.RevokeSession(ctx, client, c.SessionID); err != nil {
			p.log.Error("sso: token: revoke after code reuse", "err", err)
		}
		p.log.Warn("sso: authorization code reused; its session is revoked", "project", c.ProjectID, "user", c.UserID)
		return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_grant", "the code was already used"}
	case err != nil:
		p.log.Error("sso: token: redeem code", "err", err)
		return TokenResponse{}, &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", ""}
	}
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	switch {
	case c.ProjectID != proj.ID, !now.Before(c.ExpiresAt), form.Get("redirect_uri") != c.RedirectURI:
		return TokenResponse{}, errGrant
	case subtle.ConstantTimeCompare([]byte(challenge), []byte(c.Challenge)) != 1:
		return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_grant", "code_verifier does not match"}
	}
	if c.SignInSession != "" { // the sign-in the code came from must still be open
		if _, err := p.cfg.Auth.LiveSession(ctx, auth.Claims{UserID: c.UserID, SessionID: c.SignInSession}); err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) {
				p.log.Error("sso: token: sign-in session check", "err", err)
				return TokenResponse{}, &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", ""}
			}
			return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_grant", "the sign-in the code came from has ended"}
		}
	}
	role, terr := p.role(ctx, c.UserID, proj.ID)
	if terr != nil {
		return TokenResponse{}, terr
	}
	tokens, err := p.cfg.Auth.StartClientSession(ctx, client, c.UserID, c.Scope, c.AuthTime)
	if err != nil {
		p.log.Error("sso: token: start session", "err", err)
		return TokenResponse{}, &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", ""}
	}
	if err := p.cfg.Store.BindSession(ctx, tokens.SessionID, proj.ID, now); err != nil {
		p.log.Error("sso: token: bind session", "err", err)
		return TokenResponse{}, &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", ""}
	}
	if err := p.cfg.Store.SetCodeSession(ctx, h[:], tokens.SessionID); err != nil {
		p.log.Error("sso: token: record code session", "err", err)
	}
	return p.respond(ctx, proj, c.UserID, role, c.Scope, c.Nonce, c.AuthTime, tokens.RefreshToken, now)
}

// refresh rotates a refresh token of a session bound to this client.
func (p *Provider) refresh(ctx context.Context, client auth.Client, proj Project, form url.Values) (TokenResponse, *tokenError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_request", "refresh_token is required"}
	}
	claims, err := p.issuer.Verify(rt, auth.ClientRefreshToken)
	if err != nil {
		// Refused; RefreshClient refuses it too, and revokes its session when it is a
		// retired first-party refresh token (reuse, though sent to the wrong place).
		_, _ = p.cfg.Auth.RefreshClient(ctx, client, rt)
		return TokenResponse{}, errGrant
	}
	// RFC 6749 §6: a refresh may narrow the scope granted, never widen it; omitted, it is
	// the scope granted.
	scope := claims.Scope
	if asked := form.Get("scope"); asked != "" {
		for _, s := range strings.Fields(asked) {
			if !hasScope(claims.Scope, s) {
				return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_scope", "scope " + strconv.Quote(s) + " was not granted"}
			}
		}
		if !hasScope(asked, "openid") {
			return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_scope", "scope must include openid"}
		}
		scope = supportedScope(asked)
	}
	bound, err := p.cfg.Store.SessionProject(ctx, claims.SessionID)
	if errors.Is(err, ErrNotFound) || (err == nil && bound != proj.ID) {
		return TokenResponse{}, errGrant
	}
	if err != nil {
		p.log.Error("sso: token: session binding", "err", err)
		return TokenResponse{}, &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", ""}
	}
	role, terr := p.role(ctx, claims.UserID, proj.ID)
	if terr != nil {
		return TokenResponse{}, terr
	}
	tokens, err := p.cfg.Auth.RefreshClient(ctx, client, rt)
	if err == nil { // auth_time: the sign-in the client's session came from, kept by every refresh
		return p.respond(ctx, proj, claims.UserID, role, scope, "", claims.AuthTime, tokens.RefreshToken, p.now().UTC())
	}
	if !errors.Is(err, auth.ErrInvalidToken) {
		p.log.Error("sso: token: refresh", "err", err)
	}
	return TokenResponse{}, errGrant
}

// role returns the user's current role on the project: a revoked grant stops both the
// code exchange and refreshes.
func (p *Provider) role(ctx context.Context, user, project ecoid.ID) (auth.Role, *tokenError) {
	g, err := p.cfg.Auth.Grant(ctx, user, project)
	if errors.Is(err, auth.ErrNotFound) || (err == nil && !g.Role.Valid()) {
		return "", &tokenError{http.StatusBadRequest, "invalid_grant", "the user has no access to this project"}
	}
	if err != nil {
		p.log.Error("sso: token: grant", "err", err)
		return "", &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", ""}
	}
	return g.Role, nil
}

// respond mints the access token and id_token.
func (p *Provider) respond(ctx context.Context, proj Project, user ecoid.ID, role auth.Role, scope, nonce string, authTime time.Time, refreshToken string, now time.Time) (TokenResponse, *tokenError) {
	access, _, err := MintProjectToken(p.issuer, ProjectClaims{UserID: user, ProjectID: proj.ID, Role: role, Scope: scope}, p.cfg.AccessTTL, now)
	if err != nil {
		p.log.Error("sso: token: mint access token", "err", err)
		return TokenResponse{}, &tokenError{http.StatusInternalServerError, "server_error", ""}
	}
	info, err := p.userInfo(ctx, user)
	if err != nil {
		p.log.Error("sso: token: user info", "err", err)
		return TokenResponse{}, &tokenError{http.StatusBadRequest, "invalid_grant", ""}
	}
	now = now.Truncate(time.Second)
	claims := map[string]any{
		"iss": p.cfg.Issuer,
		"sub": string(user),
		"aud": string(proj.ID),
		"exp": now.Add(p.cfg.IDTokenTTL).Unix(),
		"iat": now.Unix(),
	}
	if !authTime.IsZero() {
		claims["auth_time"] = authTime.Unix()
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if hasScope(scope, "email") {
		claims["email"], claims["email_verified"] = info.Email, info.EmailVerified
	}
	if hasScope(scope, "profile") {
		claims["name"] = info.Name
	}
	idToken, err := p.issuer.SignClaims(claims)
	if err != nil {
		p.log.Error("sso: token: sign id_token", "err", err)
		return TokenResponse{}, &tokenError{http.StatusInternalServerError, "server_error", ""}
	}
	return TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(p.cfg.AccessTTL / time.Second),
		RefreshToken: refreshToken, IDToken: idToken, Scope: scope}, nil
}

// userinfo answers GET or POST /oauth/userinfo for an access token of the code flow.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fail := func(desc string) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nexus", error="invalid_token", error_description="`+desc+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": desc})
	}
	tok, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		fail("a Bearer access token is required")
		return
	}
	aud, ok := unverifiedAudience(tok)
	if !ok {
		fail("malformed token")
		return
	}
	if _, err := p.cfg.Projects.Project(r.Context(), aud); err != nil {
		fail("unknown audience")
		return
	}
	c, err := NewTokenVerifier(LocalKeys(p.issuer), p.cfg.Issuer, string(aud), 0, p.now).Verify(r.Context(), tok)
	if err != nil || !hasScope(c.Scope, "openid") {
		fail("invalid or expired access token")
		return
	}
	info, err := p.userInfo(r.Context(), c.UserID)
	if err != nil {
		fail("the user no longer exists")
		return
	}
	info.Subject = c.UserID
	out := map[string]any{"sub": info.Subject}
	if hasScope(c.Scope, "email") {
		out["email"], out["email_verified"] = info.Email, info.EmailVerified
	}
	if hasScope(c.Scope, "profile") {
		out["name"] = info.Name
	}
	writeJSON(w, http.StatusOK, out)
}

// unverifiedAudience reads the single "aud" of a JWT without verifying it, only to pick
// the verifier that then checks everything.
func unverifiedAudience(tok string) (ecoid.ID, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var body struct {
		Aud string `json:"aud"`
	}
	if json.Unmarshal(raw, &body) != nil {
		return "", false
	}
	id, err := ecoid.Parse(body.Aud)
	if err != nil || id.Type() != ecoid.Project {
		return "", false
	}
	return id, true
}

// redirectError is an authorization error sent back to the client's registered
// redirect_uri (RFC 6749 §4.1.2.1).
type redirectError struct {
	uri, state, code, desc string
}

func (e *redirectError) send(w http.ResponseWriter, r *http.Request, issuer string) {
	u, _ := url.Parse(e.uri)
	q := u.Query()
	q.Set("error", e.code)
	if e.desc != "" {
		q.Set("error_description", e.desc)
	}
	if e.state != "" {
		q.Set("state", e.state)
	}
	q.Set("iss", issuer)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// pageError is an error shown on the provider's own page, never redirected.
type pageError struct {
	status  int
	message string
}

// supportedScopes are the scope values the provider understands (its discovery's
// scopes_supported).
var supportedScopes = []string{"openid", "email", "profile"}

// supportedScope is the scope asked for with what the provider does not understand left
// out (OpenID Connect Core §3.1.2.1: unknown values are ignored) and repeats dropped, in
// the order asked: only scopes the provider knows are granted or reach a token.
func supportedScope(asked string) string {
	var out []string
	for _, s := range strings.Fields(asked) {
		if slices.Contains(supportedScopes, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// hasScope reports whether the space-separated scope contains want.
func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if s == want {
			return true
		}
	}
	return false
}

// validPKCE checks a code_verifier or S256 code_challenge: 43 to 128 characters of
// [A-Za-z0-9-._~] (RFC 7636 §4.1, §4.2).
func validPKCE(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// randomToken returns 256 random bits, base64url without padding.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
