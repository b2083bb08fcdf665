package main

import (
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"net/netip"

	"github.com/nexus-ecosystem/nexus/auth"
)

// config is everything the server reads from its flags and environment.
type config struct {
	Addr        string // -addr; default 127.0.0.1:8080
	PostgresDSN string // -postgres or DATABASE_URL; empty: in-memory stores
	RedisAddr   string // -redis; empty: the limiter of the chosen store

	PostgresMaxConns int // -postgres-max-conns; default 20

	// Auth settings (see auth.go).
	JWTSecret       []byte                       // NEXUS_JWT_SECRET; empty: a random secret per process (logged warning)
	JWTKey          ed25519.PrivateKey           // NEXUS_JWT_ED25519_KEY: EdDSA instead of HS256
	JWTKeyID        string                       // NEXUS_JWT_KID: the kid of JWTKey
	JWTOldKeys      map[string]ed25519.PublicKey // NEXUS_JWT_OLD_KEYS: kid=public key, still verified
	Admins          []string                     // NEXUS_ADMINS: comma-separated emails, normalised
	InsecureCookies bool                         // NEXUS_INSECURE_COOKIES=1: cookies without Secure, for local HTTP
	BcryptCost      int                          // NEXUS_BCRYPT_COST; 0: auth's default (10)
	MFAKey          []byte                       // NEXUS_MFA_KEY: encrypts TOTP secrets (see mfa.go)

	Billing billingConfig // Stripe and cron settings (see billing.go)

	// TrustedOrigins (NEXUS_TRUSTED_ORIGINS, comma-separated) may send cookie-authenticated
	// state-changing requests from another origin (see crossOrigin).
	TrustedOrigins []string

	// TrustedProxies (NEXUS_TRUSTED_PROXIES: comma-separated IPs and CIDR prefixes) are the
	// reverse proxies whose X-Forwarded-For names the client (see auth.TrustProxies).
	TrustedProxies []netip.Prefix

	PublicURL string // NEXUS_PUBLIC_URL: public base URL, the OIDC issuer; default http://127.0.0.1:8080

	// EventsChannel (NEXUS_EVENTS_CHANNEL) is the LISTEN/NOTIFY or pub/sub channel that
	// tells every instance what one changed; empty: the adapter's default.
	EventsChannel string
}

// parseConfig reads flags, falling back to environment variables (DATABASE_URL for
// -postgres; the rest are variables only). A flag wins over its variable.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&cfg.PostgresDSN, "postgres", getenv("DATABASE_URL"), "PostgreSQL DSN (default $DATABASE_URL); empty: in-memory stores")
	fs.StringVar(&cfg.RedisAddr, "redis", "", "Redis address host:port for the rate limiter")
	fs.IntVar(&cfg.PostgresMaxConns, "postgres-max-conns", 20, "most open PostgreSQL connections")
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("flags: %w", err)
	}
	if cfg.PostgresMaxConns < 1 {
		return config{}, fmt.Errorf("flags: -postgres-max-conns must be at least 1, got %d", cfg.PostgresMaxConns)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("flags: unexpected argument %q", fs.Arg(0))
	}
	if err := parseAuthConfig(&cfg, getenv); err != nil {
		return config{}, err
	}
	if err := parseMFAConfig(&cfg, getenv); err != nil {
		return config{}, err
	}
	if err := parseBillingConfig(&cfg, getenv); err != nil {
		return config{}, err
	}
	cfg.TrustedOrigins = parseOrigins(getenv("NEXUS_TRUSTED_ORIGINS"))
	cfg.EventsChannel = getenv("NEXUS_EVENTS_CHANNEL")
	if _, err := crossOrigin(cfg.TrustedOrigins); err != nil {
		return config{}, err
	}
	proxies, err := auth.ParseTrustedProxies(getenv("NEXUS_TRUSTED_PROXIES"))
	if err != nil {
		return config{}, fmt.Errorf("NEXUS_TRUSTED_PROXIES: %w", err)
	}
	cfg.TrustedProxies = proxies
	if err := parsePublicURL(&cfg, getenv); err != nil {
		return config{}, err
	}
	return cfg, nil
}
