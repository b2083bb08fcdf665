package auth

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/httpjson"
)

// Cookie defaults used when CookieConfig leaves them empty.
const (
	DefaultAccessCookie  = "nexus_access"
	DefaultRefreshCookie = "nexus_refresh"
	DefaultRefreshPath   = "/api/auth/refresh"
)

// CookieConfig names and scopes the token cookies. The zero value means the defaults:
// cookies nexus_access (Path "/") and nexus_refresh (Path "/api/auth/refresh"), HttpOnly,
// Secure, SameSite=Lax, host-only.
type CookieConfig struct {
	AccessName  string // default DefaultAccessCookie
	RefreshName string // default DefaultRefreshCookie
	// RefreshPath scopes the refresh cookie, so browsers send it to the refresh route
	// only; default DefaultRefreshPath.
	RefreshPath string
	// Domain of both cookies; empty: host-only (recommended).
	Domain string
	// Insecure drops the Secure attribute, for local development over plain HTTP only.
	Insecure bool
}

func (c CookieConfig) accessName() string {
	if c.AccessName == "" {
		return DefaultAccessCookie
	}
	return c.AccessName
}

func (c CookieConfig) refreshName() string {
	if c.RefreshName == "" {
		return DefaultRefreshCookie
	}
	return c.RefreshName
}

func (c CookieConfig) refreshPath() string {
	if c.RefreshPath == "" {
		return DefaultRefreshPath
	}
	return c.RefreshPath
}

// SetTokenCookies sets the access cookie (Path "/") and the refresh cookie (Path
// RefreshPath), each expiring with its token: HttpOnly, SameSite=Lax, Secure unless
// cfg.Insecure.
func SetTokenCookies(w http.ResponseWriter, t Tokens, cfg CookieConfig) {
	http.SetCookie(w, cfg.cookie(cfg.accessName(), "/", t.AccessToken, t.AccessExpiresAt))
	http.SetCookie(w, cfg.cookie(cfg.refreshName(), cfg.refreshPath(), t.RefreshToken, t.RefreshExpiresAt))
}

// ClearTokenCookies tells the browser to delete both token cookies.
func ClearTokenCookies(w http.ResponseWriter, cfg CookieConfig) {
	for _, c := range []*http.Cookie{
		cfg.cookie(cfg.accessName(), "/", "", time.Time{}),
		cfg.cookie(cfg.refreshName(), cfg.refreshPath(), "", time.Time{}),
	} {
		c.MaxAge = -1
		http.SetCookie(w, c)
	}
}

func (cfg CookieConfig) cookie(name, path, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{
		Name: name, Value: value, Path: path, Domain: cfg.Domain,
		HttpOnly: true, Secure: !cfg.Insecure, SameSite: http.SameSiteLaxMode,
	}
	if !expires.IsZero() {
		c.Expires = expires.UTC()
		c.MaxAge = max(int(time.Until(expires)/time.Second), 1)
	}
	return c
}

// RefreshTokenFromCookie returns the refresh cookie's value, or "" when there is none.
func RefreshTokenFromCookie(r *http.Request, cfg CookieConfig) string {
	c, err := r.Cookie(cfg.refreshName())
	if err != nil {
		return ""
	}
	return c.Value
}

// BearerToken extracts the token of an "Authorization: Bearer <token>" header value. The
// scheme is case-insensitive (RFC 9110); the token must be non-empty token68 characters
// (RFC 7235). It returns false for anything else.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || len(token) > 8192 {
		return "", false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		case c == '=' && strings.Trim(token[i:], "=") == "":
			return token, true // trailing padding only
		default:
			return "", false
		}
	}
	return token, true
}

type contextKey struct{ name string }

var claimsKey = &contextKey{"auth-claims"}

// NewContext returns a copy of ctx carrying claims, as RequireUser does.
func NewContext(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey, c)
}

// UserFrom returns the access-token claims RequireUser put into ctx, and whether there
// were any.
func UserFrom(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey).(Claims)
	return c, ok
}

// RequireUser returns middleware that admits a request with a valid access token, taken
// from "Authorization: Bearer <token>" or, when there is no Authorization header, from
// the access cookie. The claims are put into the request context (read them with
// UserFrom). Any other request is answered 401 with a JSON error
// {"error":{"code":"unauthorized",...}} and a WWW-Authenticate header. Access tokens are
// checked statelessly: a logged-out session's access token works until it expires
// (15 minutes by default).
func RequireUser(is *Issuer, cfg CookieConfig) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := "", false
			if h := r.Header.Get("Authorization"); h != "" {
				token, ok = BearerToken(h)
			} else if c, err := r.Cookie(cfg.accessName()); err == nil && c.Value != "" {
				token, ok = c.Value, true
			}
			if !ok {
				unauthorized(w, "missing or malformed access token")
				return
			}
			claims, err := is.Verify(token, AccessToken)
			if err != nil {
				unauthorized(w, "invalid or expired access token")
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), claims)))
		})
	}
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="nexus"`)
	httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", msg)
}

// ClientFromRequest describes the caller of r: the remote IP (without port; proxies'
// forwarding headers are not trusted here: put TrustProxies in front for that) and the User-Agent as valid UTF-8 without NUL
// (bytes a header may carry but a Postgres text column refuses), cut to 512 bytes.
func ClientFromRequest(r *http.Request) Client {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	ua := strings.ReplaceAll(strings.ToValidUTF8(r.UserAgent(), "\uFFFD"), "\x00", "")
	if len(ua) > 512 {
		ua = strings.ToValidUTF8(ua[:512], "")
	}
	return Client{IP: ip, UserAgent: ua}
}
