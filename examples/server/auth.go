package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// parseAuthConfig reads NEXUS_JWT_SECRET, NEXUS_JWT_ED25519_KEY, NEXUS_JWT_KID,
// NEXUS_JWT_OLD_KEYS, NEXUS_ADMINS, NEXUS_INSECURE_COOKIES and NEXUS_BCRYPT_COST. A
// secret that is set but shorter than 32 bytes, an invalid EdDSA key setting, an admin
// entry that is not an email, or a bad cost is an error: the server refuses to start.
func parseAuthConfig(cfg *config, getenv func(string) string) error {
	if s := getenv("NEXUS_JWT_SECRET"); s != "" {
		if len(s) < auth.MinSecretBytes {
			return fmt.Errorf("NEXUS_JWT_SECRET is %d bytes; it must be at least %d (or unset for a random one)", len(s), auth.MinSecretBytes)
		}
		cfg.JWTSecret = []byte(s)
	}
	if err := parseEdDSAConfig(cfg, getenv); err != nil {
		return err
	}
	for _, e := range strings.Split(getenv("NEXUS_ADMINS"), ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		norm, err := auth.NormalizeEmail(e)
		if err != nil {
			return fmt.Errorf("NEXUS_ADMINS: %q is not an email address", e)
		}
		cfg.Admins = append(cfg.Admins, norm)
	}
	switch v := getenv("NEXUS_INSECURE_COOKIES"); v {
	case "", "0", "false":
	case "1", "true":
		cfg.InsecureCookies = true
	default:
		return fmt.Errorf("NEXUS_INSECURE_COOKIES: want 1 or 0, got %q", v)
	}
	if v := getenv("NEXUS_BCRYPT_COST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4 || n > 31 {
			return fmt.Errorf("NEXUS_BCRYPT_COST: want 4..31, got %q", v)
		}
		cfg.BcryptCost = n
	}
	return nil
}

// parseEdDSAConfig reads NEXUS_JWT_ED25519_KEY (standard base64 of a 32-byte seed or a
// 64-byte private key), NEXUS_JWT_KID (its kid, required with it) and NEXUS_JWT_OLD_KEYS
// (comma-separated kid=base64 public keys of rotated-out keys still accepted). Errors
// name the variable and what is wrong, never the key material.
func parseEdDSAConfig(cfg *config, getenv func(string) string) error {
	raw, kid, old := getenv("NEXUS_JWT_ED25519_KEY"), strings.TrimSpace(getenv("NEXUS_JWT_KID")), getenv("NEXUS_JWT_OLD_KEYS")
	if raw == "" {
		if kid != "" || old != "" {
			return errors.New("NEXUS_JWT_KID and NEXUS_JWT_OLD_KEYS need NEXUS_JWT_ED25519_KEY")
		}
		return nil
	}
	if cfg.JWTSecret != nil {
		return errors.New("set only one of NEXUS_JWT_SECRET (HS256) and NEXUS_JWT_ED25519_KEY (EdDSA)")
	}
	if kid == "" {
		return errors.New("NEXUS_JWT_KID must name the key of NEXUS_JWT_ED25519_KEY")
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return errors.New("NEXUS_JWT_ED25519_KEY is not standard base64")
	case len(b) == ed25519.SeedSize:
		cfg.JWTKey = ed25519.NewKeyFromSeed(b)
	case len(b) == ed25519.PrivateKeySize:
		cfg.JWTKey = ed25519.PrivateKey(b)
	default:
		return fmt.Errorf("NEXUS_JWT_ED25519_KEY is %d bytes; want a %d-byte seed or a %d-byte private key", len(b), ed25519.SeedSize, ed25519.PrivateKeySize)
	}
	cfg.JWTKeyID = kid
	for _, e := range strings.Split(old, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		k, v, ok := strings.Cut(e, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return errors.New("NEXUS_JWT_OLD_KEYS: want comma-separated kid=base64-public-key entries")
		}
		pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("NEXUS_JWT_OLD_KEYS: key %q is not the standard base64 of a %d-byte Ed25519 public key", k, ed25519.PublicKeySize)
		}
		if _, dup := cfg.JWTOldKeys[k]; dup {
			return fmt.Errorf("NEXUS_JWT_OLD_KEYS: kid %q listed twice", k)
		}
		if cfg.JWTOldKeys == nil {
			cfg.JWTOldKeys = map[string]ed25519.PublicKey{}
		}
		cfg.JWTOldKeys[k] = pub
	}
	// Let auth check the rest (a 64-byte key whose halves disagree, a kid reused for
	// another key); its errors name kids and sizes, never key bytes.
	if _, err := auth.NewIssuer(cfg.issuerConfig()); err != nil {
		return fmt.Errorf("NEXUS_JWT_ED25519_KEY: %w", err)
	}
	return nil
}

// issuerConfig returns the key part of the auth.IssuerConfig cfg selects.
func (cfg *config) issuerConfig() auth.IssuerConfig {
	if cfg.JWTKey != nil {
		// With EdDSA, other projects verify Nexus's tokens through the JWKS, and OIDC
		// requires iss to be the issuer URL of the discovery document.
		return auth.IssuerConfig{SigningKey: cfg.JWTKey, SigningKeyID: cfg.JWTKeyID, VerificationKeys: cfg.JWTOldKeys, Issuer: cfg.PublicURL}
	}
	return auth.IssuerConfig{Secret: cfg.JWTSecret}
}

// authHandlers serve /api/auth/*: accounts and sessions.
type authHandlers struct {
	svc         *auth.Service
	cookies     auth.CookieConfig
	requireUser func(http.Handler) http.Handler // 401 without a valid access token
	log         *slog.Logger
}

func (h authHandlers) register(rt *router) {
	rt.HandleFunc("POST /api/auth/register", h.registerUser)
	rt.HandleFunc("POST /api/auth/login", h.login)
	rt.HandleFunc("POST /api/auth/refresh", h.refresh)
	rt.Handle("POST /api/auth/logout", h.requireUser(http.HandlerFunc(h.logout)))
}

// currentUser returns the user of a request that passed auth.RequireUser (empty otherwise).
func currentUser(r *http.Request) ecoid.ID {
	c, _ := auth.UserFrom(r.Context())
	return c.UserID
}

// adminOnly returns middleware that admits users whose email is in admins (NEXUS_ADMINS)
// and verified (whoever registers a listed address first must not become admin): 401
// without a valid user, 403 forbidden for anyone else.
func adminOnly(users *auth.Service, admins map[string]bool, requireUser func(http.Handler) http.Handler, log *slog.Logger) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return requireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, err := users.UserByID(r.Context(), currentUser(r))
			switch {
			case errors.Is(err, auth.ErrNotFound):
				httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "the account no longer exists")
				return
			case err != nil:
				internalError(log, w, r, "request failed", err)
				return
			case !admins[u.Email]:
				httpjson.WriteError(w, http.StatusForbidden, "forbidden", "administrators only")
				return
			case !u.EmailVerified:
				httpjson.WriteError(w, http.StatusForbidden, "forbidden", "administrators only, once their email is verified")
				return
			}
			h.ServeHTTP(w, r)
		}))
	}
}

// authUserJSON is the public shape of a user.
type authUserJSON struct {
	ID       ecoid.ID `json:"id"`
	Email    string   `json:"email"`
	FullName string   `json:"full_name"`
}

type authSessionJSON struct {
	User         authUserJSON `json:"user"`
	AccessToken  string       `json:"access_token"`
	RefreshToken string       `json:"refresh_token"`
}

func (h authHandlers) writeSession(w http.ResponseWriter, status int, res auth.Result) {
	auth.SetTokenCookies(w, res.Tokens, h.cookies)
	httpjson.WriteSecret(w, status, authSessionJSON{
		User:        authUserJSON{ID: res.User.ID, Email: res.User.Email, FullName: res.User.FullName},
		AccessToken: res.AccessToken, RefreshToken: res.RefreshToken,
	})
}

// registerUser: POST /api/auth/register {email,password,full_name}.
func (h authHandlers) registerUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		FullName string `json:"full_name"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	res, err := h.svc.Register(r.Context(), auth.ClientFromRequest(r), in.Email, in.Password, in.FullName)
	if err != nil {
		h.authError(w, r, err)
		return
	}
	h.writeSession(w, http.StatusCreated, res)
}

// login: POST /api/auth/login {email,password}.
func (h authHandlers) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	res, err := h.svc.Login(r.Context(), auth.ClientFromRequest(r), in.Email, in.Password)
	if err != nil {
		h.authError(w, r, err)
		return
	}
	h.writeSession(w, http.StatusOK, res)
}

// refresh: POST /api/auth/refresh with {refresh_token} or the refresh cookie.
func (h authHandlers) refresh(w http.ResponseWriter, r *http.Request) {
	var in struct {
		RefreshToken string `json:"refresh_token"`
	}
	if hasBody(r) {
		if err := httpjson.Decode(w, r, &in); err != nil {
			httpjson.WriteDecodeError(w, err)
			return
		}
	}
	token := in.RefreshToken
	if token == "" {
		token = auth.RefreshTokenFromCookie(r, h.cookies)
	}
	if token == "" {
		httpjson.WriteError(w, http.StatusUnauthorized, "invalid_token", "no refresh token in the body or cookie")
		return
	}
	t, err := h.svc.Refresh(r.Context(), auth.ClientFromRequest(r), token)
	if err != nil {
		h.authError(w, r, err)
		return
	}
	auth.SetTokenCookies(w, t, h.cookies)
	httpjson.WriteSecret(w, http.StatusOK, map[string]string{"access_token": t.AccessToken, "refresh_token": t.RefreshToken})
}

// hasBody reports whether r carries a body. One of unknown length (chunked) is peeked at,
// so that an empty one counts as none, like Content-Length: 0.
func hasBody(r *http.Request) bool {
	if r.ContentLength >= 0 {
		return r.ContentLength > 0
	}
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); err != nil {
		return false
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return true
}

// logout: POST /api/auth/logout revokes the caller's session and clears the cookies.
func (h authHandlers) logout(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.UserFrom(r.Context())
	if err := h.svc.Logout(r.Context(), auth.ClientFromRequest(r), claims); err != nil {
		internalError(h.log, w, r, "request failed", err)
		return
	}
	auth.ClearTokenCookies(w, h.cookies)
	w.WriteHeader(http.StatusNoContent)
}

// authError maps auth errors to the contract's status codes and error codes.
func (h authHandlers) authError(w http.ResponseWriter, r *http.Request, err error) {
	if writeLoginMFA(w, err) { // login of a user with TOTP on (mfa.go)
		return
	}
	var pe *auth.PolicyError
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &pe):
		httpjson.WriteError(w, http.StatusBadRequest, "weak_password", strings.TrimPrefix(pe.Error(), "auth: "))
	case errors.Is(err, auth.ErrInvalidEmail):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_email", "email must be a plain address such as ann@example.com, at most 254 bytes")
	case errors.Is(err, auth.ErrInvalidName):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_full_name", strings.TrimPrefix(err.Error(), "auth: "))
	case errors.Is(err, auth.ErrEmailTaken):
		httpjson.WriteError(w, http.StatusConflict, "email_taken", "an account with this email exists")
	case errors.Is(err, auth.ErrInvalidCredentials):
		httpjson.WriteError(w, http.StatusUnauthorized, "invalid_credentials", "invalid email or password")
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfterSeconds(te.RetryAfter)))
		httpjson.WriteError(w, http.StatusTooManyRequests, "too_many_attempts", "too many failed logins for this email; retry later")
	case errors.Is(err, auth.ErrThrottleUnavailable):
		h.log.Error("login refused: the login throttle's store fails", "err", err)
		w.Header().Set("Retry-After", "5")
		httpjson.WriteError(w, http.StatusServiceUnavailable, "throttle_unavailable", "logins are paused: the service cannot count attempts; retry shortly")
	case errors.Is(err, auth.ErrRefreshReuse):
		httpjson.WriteError(w, http.StatusUnauthorized, "invalid_token", "refresh token already used; the session has been revoked")
	case errors.Is(err, auth.ErrInvalidToken):
		httpjson.WriteError(w, http.StatusUnauthorized, "invalid_token", "invalid, expired or revoked refresh token")
	default:
		internalError(h.log, w, r, "request failed", err)
	}
}
