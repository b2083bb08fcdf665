package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
)

// config is everything the server reads from its flags and environment.
type config struct {
	Addr        string // -addr; default 127.0.0.1:8080
	PostgresDSN string // -postgres or DATABASE_URL; empty: in-memory stores
	RedisAddr   string // -redis; empty: the limiter of the chosen store

	PostgresMaxConns int // -postgres-max-conns; default 20

	// UsageRetention (NEXUS_USAGE_RETENTION: 90d or 2160h) is how long detailed usage log
	// rows are kept; 0 keeps them. Rollups and quota counters are always kept.
	UsageRetention time.Duration

	// MetricsAddr (-metrics-addr) serves GET /metrics on its own listener instead of the
	// API's; empty: on the API's listener.
	MetricsAddr string

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

	// Mail (see account.go): at most one of MailDir and SMTPURL; neither means no mail.
	MailDir  string // -mail-dir or NEXUS_MAIL_DIR: one .eml file per message
	SMTPURL  string // NEXUS_SMTP_URL: smtp://user:pass@host:port
	MailFrom string // NEXUS_MAIL_FROM: sender; default mail.DefaultFrom

	// EventsChannel (NEXUS_EVENTS_CHANNEL) is the LISTEN/NOTIFY or pub/sub channel that
	// tells every instance what one changed; empty: the adapter's default.
	EventsChannel string
}

// envVar documents one environment variable for -h.
type envVar struct{ name, def, usage string }

// envVars is every environment variable the server reads, printed by -h (a test checks
// that every getenv of the package is listed). Add a row with each new variable.
var envVars = []envVar{
	{"DATABASE_URL", "in-memory stores", "PostgreSQL DSN, when -postgres is not given"},
	{"NEXUS_JWT_SECRET", "random per process (tokens die at restart)", "HS256 signing secret, at least 32 bytes"},
	{"NEXUS_JWT_ED25519_KEY", "HS256", "EdDSA instead: base64 of a 32-byte Ed25519 seed or 64-byte private key"},
	{"NEXUS_JWT_KID", "", "the kid of NEXUS_JWT_ED25519_KEY (required with it)"},
	{"NEXUS_JWT_OLD_KEYS", "none", "rotated-out keys still accepted: kid=base64 public key, comma-separated"},
	{"NEXUS_ADMINS", "nobody", "comma-separated emails allowed on /api/admin/*"},
	{"NEXUS_INSECURE_COOKIES", "0 (Secure cookies)", "1: token cookies without Secure, for local plain HTTP only"},
	{"NEXUS_BCRYPT_COST", "10", "bcrypt cost of new password hashes, 4..31"},
	{"NEXUS_PUBLIC_URL", "http://127.0.0.1:8080", "the server's public base URL: OIDC issuer and base of links in mail"},
	{"NEXUS_MFA_KEY", "random per process in memory; TOTP off with Postgres", "base64 of 32 random bytes (openssl rand -base64 32): AES-256-GCM key for TOTP secrets"},
	{"NEXUS_USAGE_RETENTION", "0 (keep the log)", "how long detailed usage rows are kept (90d or 2160h); PostgreSQL drops whole months past it, daily rollups stay"},
	{"NEXUS_EVENTS_CHANNEL", "the adapter's default", "LISTEN/NOTIFY or pub/sub channel that tells every instance what one changed"},
	{"NEXUS_TRUSTED_ORIGINS", "none", "comma-separated origins (https://app.example.com) allowed cross-origin cookie requests"},
	{"NEXUS_TRUSTED_PROXIES", "none (the TCP peer is the client)", "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For names the client"},
	{"STRIPE_SECRET_KEY", "billing off", "Stripe secret key; turns billing on"},
	{"STRIPE_WEBHOOK_SECRET", "webhooks refused", "signing secret of the webhook endpoint (whsec_...)"},
	{"STRIPE_API_BASE", "https://api.stripe.com", "Stripe API base URL, e.g. stripe-mock's http://127.0.0.1:12111"},
	{"STRIPE_PRICE_PRO", "Pro checkout refused", "Stripe price ID of the Pro plan ($29/month)"},
	{"STRIPE_PRICE_FREE", "Free stays local", "Stripe price ID of the Free plan ($0)"},
	{"STRIPE_PRICES", "none", "more price IDs and the plan each bills: price_a=pro,price_b=free (a webhook's plan follows its price)"},
	{"NEXUS_APP_URL", "http://127.0.0.1:8080", "base of the checkout and portal return URLs"},
	{"NEXUS_CRON_SECRET", "cron route refuses everyone", "Bearer token of POST /api/cron/process-overage"},
	{"NEXUS_MAIL_DIR", "no mail", "directory for mail as .eml files (development), when -mail-dir is not given"},
	{"NEXUS_SMTP_URL", "no mail", "send mail over SMTP: smtp://user:pass@host:port (STARTTLS when offered) or smtps://"},
	{"NEXUS_MAIL_FROM", "Nexus <no-reply@localhost>", "sender of verification and reset mail"},
}

// errHelp is returned by parseConfig after -h or -help printed the usage.
var errHelp = flag.ErrHelp

// flags defines the server's flags over cfg. Their defaults must not come from the
// environment, so that -h never prints a DSN's password.
func flags(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&cfg.PostgresDSN, "postgres", "", "PostgreSQL DSN; migrates on start (default $DATABASE_URL, else in-memory stores)")
	fs.StringVar(&cfg.RedisAddr, "redis", "", "Redis address host:port for the rate limiter (default: the PostgreSQL limiter with -postgres, else in process)")
	fs.IntVar(&cfg.PostgresMaxConns, "postgres-max-conns", 20, "most open PostgreSQL connections")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve GET /metrics on this address only, e.g. 127.0.0.1:9090 (default: on -addr)")
	fs.StringVar(&cfg.MailDir, "mail-dir", "", "write mail as .eml files into this directory (default $NEXUS_MAIL_DIR, else no mail unless NEXUS_SMTP_URL)")
	return fs
}

// parseConfig reads flags, falling back to environment variables (DATABASE_URL for
// -postgres; the rest are variables only). A flag wins over its variable. -h or -help
// returns errHelp (run prints the usage).
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := flags(&cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, errHelp
		}
		return config{}, fmt.Errorf("flags: %w", err)
	}
	if cfg.PostgresDSN == "" {
		cfg.PostgresDSN = getenv("DATABASE_URL")
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
	var err error
	if cfg.UsageRetention, err = parseRetention(getenv("NEXUS_USAGE_RETENTION")); err != nil {
		return config{}, err
	}
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
	if err := parseMailConfig(&cfg, getenv); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// printUsage writes -h's text: what the server is, every flag and every environment
// variable with its default.
func printUsage(w io.Writer) {
	fs := flags(&config{})
	fmt.Fprint(w, `Usage: server [flags]

The Nexus HTTP API: accounts, API keys, usage analytics and billing (README.md lists
every route). In-memory stores unless -postgres or DATABASE_URL is given.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "\nEnvironment (default in brackets):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range envVars {
		def := ""
		if v.def != "" {
			def = " [" + v.def + "]"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", v.name, v.usage, def)
	}
	_ = tw.Flush()
}
