package sso

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
)

// Remote verifier defaults used when RemoteConfig leaves them zero.
const (
	DefaultKeysTTL            = time.Hour
	DefaultMinRefreshInterval = 10 * time.Second
	maxDocumentBytes          = 1 << 20
)

// ErrDiscovery is wrapped by NewRemoteVerifier and key refreshes when the discovery
// document or the JWKS cannot be fetched or does not fit (wrong issuer, no EdDSA key).
var ErrDiscovery = errors.New("sso: discovery")

// RemoteConfig configures NewRemoteVerifier. Issuer and Audience are required.
type RemoteConfig struct {
	// Issuer is the Nexus issuer URL the project trusts; the discovery document is read
	// from Issuer + "/.well-known/openid-configuration" and must name the same issuer.
	Issuer string
	// Audience is the project's ID: only tokens minted for this project verify.
	Audience string
	// HTTPClient fetches discovery and keys; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// KeysTTL is how long fetched keys are trusted before a refetch; default 1 hour.
	KeysTTL time.Duration
	// MinRefreshInterval bounds refetches on an unknown kid, so a flood of forged kids
	// cannot turn into a flood of requests to Nexus; default 10 s.
	MinRefreshInterval time.Duration
	// Leeway for exp, nbf and iat; 0 means DefaultLeeway, negative none.
	Leeway time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// RemoteVerifier verifies project access tokens in a project service, trusting Nexus
// only through OIDC discovery and its JWKS: keys are cached, refetched when they are
// older than KeysTTL, and refetched at once (at most every MinRefreshInterval) when a
// token names an unknown kid, so a key rotation at Nexus needs no restart here. Issuer
// and audience are pinned. It is safe for concurrent use.
type RemoteVerifier struct {
	cfg     RemoteConfig
	jwksURI string
	tokens  *TokenVerifier

	mu        sync.Mutex
	keys      map[string]ed25519.PublicKey
	fetchedAt time.Time
}

// NewRemoteVerifier reads the discovery document and the JWKS once, so a misconfigured
// issuer fails at start-up rather than on the first request. It returns an error
// wrapping ErrDiscovery when either cannot be fetched, the discovery names another
// issuer, or the set holds no Ed25519 key.
func NewRemoteVerifier(ctx context.Context, cfg RemoteConfig) (*RemoteVerifier, error) {
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("sso: remote verifier needs Issuer and Audience")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.KeysTTL <= 0 {
		cfg.KeysTTL = DefaultKeysTTL
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &RemoteVerifier{cfg: cfg}
	var d Discovery
	if err := v.getJSON(ctx, cfg.Issuer+discoveryPath, &d); err != nil {
		return nil, err
	}
	if d.Issuer != cfg.Issuer {
		return nil, fmt.Errorf("%w: the document names issuer %q, not %q", ErrDiscovery, d.Issuer, cfg.Issuer)
	}
	if d.JWKSURI == "" {
		return nil, fmt.Errorf("%w: the document has no jwks_uri", ErrDiscovery)
	}
	v.jwksURI = d.JWKSURI
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	v.tokens = NewTokenVerifier(v.key, cfg.Issuer, cfg.Audience, cfg.Leeway, cfg.Now)
	return v, nil
}

// Verify checks a project access token: EdDSA signature by a published key, typ
// at+jwt, iss and aud pinned, exp required. Errors wrap ErrInvalidToken.
func (v *RemoteVerifier) Verify(ctx context.Context, token string) (ProjectClaims, error) {
	return v.tokens.Verify(ctx, token)
}

// key is the verifier's KeyFunc: a cached key, or a refetch when the kid is unknown or
// the cache is old, rate limited by MinRefreshInterval.
func (v *RemoteVerifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	v.mu.Lock()
	k, ok := v.keys[kid]
	fresh := v.cfg.Now().Sub(v.fetchedAt) < v.cfg.KeysTTL
	mayFetch := v.cfg.Now().Sub(v.fetchedAt) >= v.cfg.MinRefreshInterval
	v.mu.Unlock()
	if ok && fresh {
		return k, nil
	}
	if mayFetch {
		if err := v.refresh(ctx); err != nil && !ok {
			return nil, err
		}
		v.mu.Lock()
		k, ok = v.keys[kid]
		v.mu.Unlock()
	}
	if !ok {
		return nil, errors.New("no published key has this kid")
	}
	return k, nil
}

// refresh fetches the JWKS and replaces the cached keys. Keys of other types are skipped.
func (v *RemoteVerifier) refresh(ctx context.Context) error {
	v.mu.Lock()
	v.fetchedAt = v.cfg.Now() // also on failure: MinRefreshInterval holds between tries
	v.mu.Unlock()
	var set auth.JWKSet
	if err := v.getJSON(ctx, v.jwksURI, &set); err != nil {
		return err
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.KeyType != "OKP" || k.Curve != "Ed25519" || k.KeyID == "" || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != "EdDSA") {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		keys[k.KeyID] = ed25519.PublicKey(x)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: the JWKS at %s holds no Ed25519 signing key", ErrDiscovery, v.jwksURI)
	}
	v.mu.Lock()
	v.keys = keys
	v.mu.Unlock()
	return nil
}

func (v *RemoteVerifier) getJSON(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrDiscovery, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s", ErrDiscovery, url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentBytes)).Decode(into); err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrDiscovery, url, err)
	}
	return nil
}

type projectClaimsKey struct{}

// ProjectClaimsFrom returns the claims Require put into ctx, and whether there were any.
func ProjectClaimsFrom(ctx context.Context) (ProjectClaims, bool) {
	c, ok := ctx.Value(projectClaimsKey{}).(ProjectClaims)
	return c, ok
}

// Require returns middleware that admits a request carrying "Authorization: Bearer
// <project token>" that v verifies and whose role satisfies need, putting the claims in
// the context (ProjectClaimsFrom). Others get 401 (no or bad token) or 403 (role too
// low) with a JSON error {"error":{"code","message"}} and a WWW-Authenticate header.
func (v *RemoteVerifier) Require(need auth.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := auth.BearerToken(r.Header.Get("Authorization"))
			if !ok {
				denyProject(w, http.StatusUnauthorized, "unauthorized", "a Bearer project token is required")
				return
			}
			c, err := v.Verify(r.Context(), tok)
			if err != nil {
				denyProject(w, http.StatusUnauthorized, "invalid_token", "invalid or expired project token")
				return
			}
			if !c.Role.Satisfies(need) {
				denyProject(w, http.StatusForbidden, "insufficient_role", "this route needs the role "+string(need))
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), projectClaimsKey{}, c)))
		})
	}
}

func denyProject(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="project", error="`+code+`"`)
	writeJSON(w, status, map[string]map[string]string{"error": {"code": code, "message": msg}})
}
