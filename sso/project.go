package sso

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/safetext"
)

// Registration limits.
const (
	MaxProjectName  = 100  // bytes
	MaxRedirectURIs = 10   // per project
	MaxRedirectURI  = 2000 // bytes per URI
	secretChars     = 43   // base62 characters of a client secret: 256 bits
)

var (
	// ErrInvalidProject is wrapped by Register for a bad name or redirect URI; the message
	// says which and why.
	ErrInvalidProject = errors.New("sso: invalid project")
	// ErrInvalidClient is returned by Authenticate for an unknown client or a wrong
	// secret, alike (RFC 6749 §5.2 invalid_client).
	ErrInvalidClient = errors.New("sso: invalid client")
)

// Projects registers ecosystem projects as OIDC clients and authenticates them. It is
// safe for concurrent use.
type Projects struct {
	store Store
	now   func() time.Time
}

// NewProjects returns a Projects over store; now nil means time.Now.
func NewProjects(store Store, now func() time.Time) *Projects {
	if now == nil {
		now = time.Now
	}
	return &Projects{store: store, now: now}
}

// Register stores a new project with the given name and exact redirect URIs and returns
// it with its client secret, the only time the secret is seen in plain text. It returns
// an error wrapping ErrInvalidProject for an empty or overlong name, no redirect URI, too
// many, or one that ValidateRedirectURI refuses.
func (p *Projects) Register(ctx context.Context, name string, redirectURIs []string) (Project, string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return Project{}, "", fmt.Errorf("%w: name is required", ErrInvalidProject)
	case len(name) > MaxProjectName || !safetext.Clean(name):
		return Project{}, "", fmt.Errorf("%w: name must be valid text of at most %d bytes without control or bidirectional-override characters", ErrInvalidProject, MaxProjectName)
	case len(redirectURIs) == 0:
		return Project{}, "", fmt.Errorf("%w: at least one redirect URI is required", ErrInvalidProject)
	case len(redirectURIs) > MaxRedirectURIs:
		return Project{}, "", fmt.Errorf("%w: at most %d redirect URIs", ErrInvalidProject, MaxRedirectURIs)
	}
	uris := make([]string, 0, len(redirectURIs))
	for _, u := range redirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			return Project{}, "", err
		}
		uris = append(uris, u)
	}
	secret := newSecret()
	proj := Project{ID: ecoid.New(ecoid.Project), Name: name, RedirectURIs: uris, CreatedAt: p.now().UTC().Truncate(time.Microsecond)}
	hash := sha256.Sum256([]byte(secret))
	if err := p.store.CreateProject(ctx, proj, hash[:]); err != nil {
		return Project{}, "", fmt.Errorf("sso: register project: %w", err)
	}
	return proj, secret, nil
}

// Project returns the project with this ID, or an error wrapping ErrNotFound.
func (p *Projects) Project(ctx context.Context, id ecoid.ID) (Project, error) {
	return p.store.Project(ctx, id)
}

// List returns every project, ordered by ID, without secrets.
func (p *Projects) List(ctx context.Context) ([]Project, error) { return p.store.Projects(ctx) }

// Authenticate returns the project whose client_id and secret these are, comparing the
// secret's hash in constant time. An unknown or malformed client_id and a wrong secret
// both return ErrInvalidClient; a store failure returns that error.
func (p *Projects) Authenticate(ctx context.Context, clientID, secret string) (Project, error) {
	id, err := ecoid.Parse(clientID)
	if err != nil || id.Type() != ecoid.Project || secret == "" {
		return Project{}, ErrInvalidClient
	}
	want, err := p.store.ProjectSecretHash(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Project{}, ErrInvalidClient
	}
	if err != nil {
		return Project{}, fmt.Errorf("sso: authenticate client: %w", err)
	}
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return Project{}, ErrInvalidClient
	}
	return p.store.Project(ctx, id)
}

// HasRedirectURI reports whether uri is one of the project's registered redirect URIs,
// compared exactly (RFC 6749 §3.1.2.3, OAuth 2.0 Security BCP §4.1.3: no prefix or
// pattern matching).
func (p Project) HasRedirectURI(uri string) bool {
	for _, r := range p.RedirectURIs {
		if r == uri {
			return true
		}
	}
	return false
}

// ValidateRedirectURI accepts an absolute https URI without user info or fragment, or an
// http URI on a loopback host (127.0.0.1, [::1], localhost) for native and development
// clients (RFC 8252 §7.3). Anything else returns an error wrapping ErrInvalidProject.
func ValidateRedirectURI(raw string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: redirect URI %q %s", ErrInvalidProject, truncate(raw, 80), why)
	}
	if len(raw) > MaxRedirectURI {
		return bad(fmt.Sprintf("is longer than %d bytes", MaxRedirectURI))
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return bad("is not an absolute URI")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not have a fragment")
	case u.User != nil:
		return bad("must not carry user info")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	default:
		return bad("must use https (http only on a loopback host)")
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newSecret returns secretChars base62 characters from crypto/rand (about 256 bits).
func newSecret() string {
	b := make([]byte, secretChars)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		n, _ := rand.Int(rand.Reader, max) // crypto/rand never fails (Go 1.24)
		b[i] = base62[n.Int64()]
	}
	return string(b)
}
