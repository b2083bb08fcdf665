package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/guard"
	"github.com/nexus-ecosystem/nexus/sso"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	nexusredis "github.com/nexus-ecosystem/nexus/storage/redis"
	"github.com/nexus-ecosystem/nexus/usage"
)

// services is the composition root: the stores and SDK services the configuration
// selects, built once at start. The HTTP handlers do not see it; each area's handler type
// (authHandlers, keyHandlers, …) is given the few services it uses (see routes.go).
type services struct {
	cfg config
	log *slog.Logger
	db  *sql.DB // nil with in-memory stores

	auth      *auth.Service
	authStore auth.Store // for the session check of requireUser (sessions.go)
	issuer    *auth.Issuer
	cookies   auth.CookieConfig
	admins    map[string]bool // normalised emails from NEXUS_ADMINS
	// onRegister runs, in order, after each successful registration and before its
	// tokens are issued (billing creates the free subscription here). An error undoes the
	// registration and answers 500.
	onRegister []func(ctx context.Context, u auth.User) error

	keys        *apikey.Service
	limiter     apikey.Limiter
	limiterName string // "memory", "postgres" or "redis", for the start-up log
	// throttleName is where the login throttle counts: "memory", "postgres" or "redis".
	throttleName string
	pgThrottle   *postgres.ThrottleStore // swept with the limiter's rows; nil unless postgres
	redis        *goredis.Client         // nil unless -redis
	stopSweep    chan struct{}           // stops the Postgres limiter's sweeper; nil otherwise
	sweepDone    chan struct{}

	usageStore usage.Store
	tracker    *usage.Tracker
	stopMaint  func()       // stops the usage store's upkeep (usage_maintenance.go)
	quota      *usage.Quota // the quota's view for /api/usage; guard counts through the same store

	billing      *billing.Service // the one source of plans and their terms
	billingStore billing.Store    // for erasure: the billing row's email is scrubbed

	projects *sso.Projects // ecosystem projects registered as OIDC clients
	provider *sso.Provider // the OIDC provider; nil with HS256

	scaleState // the event bus and the Postgres hot path: scale.go

	// protect is the API-key chain of every /api/v1 route: guard.New over the key
	// service, the tracker, and billing's quotas with the key's rate limit.
	protect func(scopes ...string) func(http.Handler) http.Handler

	// requestLog writes the request log; nil (as newServices leaves it) logs no requests.
	// run sets it to the process's log output.
	requestLog *requestLog

	csrf func(http.Handler) http.Handler // crossOrigin over cfg.TrustedOrigins

	mailerName string // "none" until a mailer is configured; for the start-up log

	metrics *metrics // the Prometheus edge (metrics.go)
}

// newServices opens the stores the configuration names and builds the services over them.
func newServices(ctx context.Context, cfg config, log *slog.Logger) (*services, error) {
	s := &services{cfg: cfg, log: log, mailerName: "none", metrics: newMetrics()}
	csrf, err := crossOrigin(cfg.TrustedOrigins)
	if err != nil {
		return nil, err
	}
	s.csrf = csrf
	if cfg.PostgresDSN != "" {
		openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		db, err := postgres.Open(openCtx, cfg.PostgresDSN)
		if err != nil {
			return nil, err
		}
		if err := postgres.Migrate(openCtx, db); err != nil {
			_ = db.Close()
			return nil, err
		}
		// Every API-key request may take a connection (the Postgres limiter and the quota
		// counter), so the pool is capped: requests queue for a connection instead of
		// exhausting the server's max_connections.
		db.SetMaxOpenConns(cfg.PostgresMaxConns)
		db.SetMaxIdleConns(cfg.PostgresMaxConns)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.db = db
	}
	// Keys first: initAuth shares their Redis client for the login throttle.
	if err := s.initKeys(ctx); err != nil {
		s.close()
		return nil, err
	}
	if err := s.initAuth(); err != nil {
		s.close()
		return nil, err
	}
	if err := s.initSSO(); err != nil {
		s.close()
		return nil, err
	}
	s.initUsage()
	s.metrics.watch(s.tracker, s.db)
	s.initBilling()
	s.initGuard()
	if err := s.initBus(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// initAuth builds the auth service over the chosen store.
func (s *services) initAuth() error {
	ic := s.cfg.issuerConfig()
	if ic.SigningKey == nil && len(ic.Secret) == 0 {
		ic.Secret = make([]byte, 32)
		_, _ = rand.Read(ic.Secret)
		s.log.Warn("NEXUS_JWT_SECRET is unset: using a random secret, so tokens do not survive a restart or work across instances")
	}
	issuer, err := auth.NewIssuer(ic)
	if err != nil {
		return err
	}
	var store auth.Store = memory.NewAuthStore()
	if s.db != nil {
		store = postgres.NewAuthStore(s.db)
	}
	account, err := s.accountConfig()
	if err != nil {
		return err
	}
	// The login throttle's counters live where every instance sees them: Redis with
	// -redis, else PostgreSQL with -postgres, else in process.
	var throttle auth.ThrottleStore
	s.throttleName = "memory"
	switch {
	case s.redis != nil:
		throttle, s.throttleName = nexusredis.NewThrottleStore(s.redis, ""), "redis"
	case s.db != nil:
		s.pgThrottle = postgres.NewThrottleStore(s.db)
		throttle, s.throttleName = s.pgThrottle, "postgres"
	}
	s.authStore = store
	svc, err := auth.NewService(auth.Config{
		Account:    account,
		Store:      store,
		Issuer:     issuer,
		BcryptCost: s.cfg.BcryptCost,
		Throttle:   throttle,
		MFA:        s.mfaConfig(),
		Logger:     s.log,
		OnRegister: func(ctx context.Context, u auth.User) error {
			for _, f := range s.onRegister {
				if err := f(ctx, u); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	s.auth, s.issuer = svc, issuer
	s.log.Info("login throttle ready", "login_throttle", s.throttleName)
	s.cookies = auth.CookieConfig{Insecure: s.cfg.InsecureCookies}
	s.admins = map[string]bool{}
	for _, e := range s.cfg.Admins {
		s.admins[e] = true
	}
	return nil
}

// initKeys builds the key service over the chosen store and picks the limiter: Redis
// with -redis, else PostgreSQL with -postgres, else in process.
func (s *services) initKeys(ctx context.Context) error {
	var store apikey.Store = memory.NewKeyStore()
	if s.db != nil {
		store = postgres.NewKeyStore(s.db)
	}
	switch {
	case s.cfg.RedisAddr != "":
		client := goredis.NewClient(&goredis.Options{Addr: s.cfg.RedisAddr})
		pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := client.Ping(pingCtx).Err(); err != nil {
			_ = client.Close()
			return fmt.Errorf("redis %s: %w", s.cfg.RedisAddr, err)
		}
		s.redis, s.limiter, s.limiterName = client, nexusredis.NewLimiter(client), "redis"
	case s.db != nil:
		pl := postgres.NewLimiter(s.db)
		s.limiter, s.limiterName = pl, "postgres"
		s.stopSweep, s.sweepDone = make(chan struct{}), make(chan struct{})
		go s.sweepLimits(pl, 10*time.Minute)
	default:
		s.limiter, s.limiterName = memory.NewLimiter(), "memory"
	}
	s.keys = apikey.NewService(store, apikey.Config{Logger: s.log, OnChange: s.keyChanged, LookupBudget: s.lookupBudget()})
	return nil
}

// sweepLimits deletes idle rate-limit rows now and then, until shutdown.
func (s *services) sweepLimits(l *postgres.Limiter, every time.Duration) {
	defer close(s.sweepDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := l.Sweep(ctx); err != nil {
				s.log.Warn("sweeping idle rate limits failed", "err", err)
			}
			if s.pgThrottle != nil {
				if _, err := s.pgThrottle.Sweep(ctx, time.Now()); err != nil {
					s.log.Warn("sweeping closed login-throttle windows failed", "err", err)
				}
			}
			cancel()
		case <-s.stopSweep:
			return
		}
	}
}

// initUsage builds the usage store, the tracker (flushed by shutdown) and the quota view
// of /api/usage. Quotas come from billing (initBilling sets it before any request).
func (s *services) initUsage() {
	var store usage.Store = memory.NewUsageStore()
	if s.db != nil {
		store = postgres.NewUsageStore(s.db)
	}
	s.usageStore = store
	s.tracker = usage.NewTracker(store, usage.Config{Logger: s.log})
	s.initHotPath()
	s.quota = usage.NewQuota(s.quotaCounter(), func(ctx context.Context, user ecoid.ID) (int64, bool, error) {
		return s.billing.QuotaFor(ctx, user)
	}, usage.QuotaConfig{Logger: s.log})
	s.startMaintenance()
}

// initBilling builds the billing service over the usage store's counts and registers
// the hook that gives every new user a Free subscription row.
func (s *services) initBilling() {
	var store billing.Store = memory.NewBillingStore()
	if s.db != nil {
		store = postgres.NewBillingStore(s.db)
	}
	bc := s.cfg.Billing
	cfg := billing.Config{
		Prices:     billing.PriceIDs{Pro: bc.PricePro, Free: bc.PriceFree, Plans: bc.Prices},
		Now:        bc.Now,
		SuccessURL: bc.AppURL + "/billing/success?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:  bc.AppURL + "/billing/cancel", PortalReturnURL: bc.AppURL + "/account",
		Usage: usageCounts{s.usageStore}, Logger: s.log, OnPlanChange: s.planChanged, OnWebhook: s.metrics.onWebhook,
		// Only accounts of this server may be upgraded by a webhook.
		UserExists: func(ctx context.Context, id ecoid.ID) (bool, error) {
			_, err := s.auth.UserByID(ctx, id)
			if errors.Is(err, auth.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
	}
	if bc.StripeKey != "" {
		cfg.Stripe = billing.NewStripeClient(bc.StripeKey, bc.StripeBase, &http.Client{Timeout: 30 * time.Second})
		if bc.WebhookSecret == "" {
			s.log.Warn("STRIPE_WEBHOOK_SECRET is unset: Stripe webhooks will be refused")
		}
	}
	s.billing, s.billingStore = billing.NewService(store, cfg), store
	// The hot path's plan lookup, kept fresh by planChanged and the bus. In memory too:
	// a hit costs about 70 ns, the store's lookup (which copies the whole subscription
	// row) 210-440 ns (go test ./billing -bench TermsCache).
	s.terms = billing.NewTermsCache(s.termsLoader, billing.TermsCacheConfig{Now: bc.Now})
	s.onRegister = append(s.onRegister, func(ctx context.Context, u auth.User) error {
		_, err := s.billing.EnsureFreeSubscription(ctx, u.ID, u.Email)
		return err
	})
}

// initGuard builds the API-key chain: authenticate → track → scopes → quota (billing's
// terms for the key's owner) and the key's rate limit, all or nothing.
func (s *services) initGuard() {
	admission := s.metrics.admission(s.admission())
	keys := s.metrics.verifier(s.keys)
	s.protect = func(scopes ...string) func(http.Handler) http.Handler {
		return guard.New(guard.Config{
			Keys: keys, Admission: admission, Scopes: scopes, Tracker: s.tracker, Logger: s.log,
		})
	}
}

// storeName says which backend serves the data, for the start-up log line.
func (s *services) storeName() string {
	if s.db != nil {
		return "postgres"
	}
	return "memory"
}

// summary is the configuration in force, for the start-up log: what runs, never a secret
// (whether a secret is set at most).
func (s *services) summary() []slog.Attr {
	alg := "HS256"
	if s.cfg.JWTKey != nil {
		alg = "EdDSA"
	}
	attrs := []slog.Attr{
		slog.String("store", s.storeName()),
		slog.String("limiter", s.limiterName),
		slog.String("events", cmp.Or(s.busName, "none")),
		slog.Bool("billing", s.billing.StripeEnabled()),
		slog.Bool("stripe_webhooks", s.cfg.Billing.StripeKey != "" && s.cfg.Billing.WebhookSecret != ""),
		slog.Bool("overage_cron", s.cfg.Billing.CronSecret != ""),
		slog.String("jwt_algorithm", alg),
		slog.Bool("jwt_key_from_env", s.cfg.JWTKey != nil || len(s.cfg.JWTSecret) > 0),
		slog.String("mailer", s.mailerName),
		slog.Int("admins", len(s.cfg.Admins)),
		slog.Int("trusted_origins", len(s.cfg.TrustedOrigins)),
		slog.Bool("insecure_cookies", s.cfg.InsecureCookies),
	}
	if s.db != nil {
		attrs = append(attrs, slog.Int("postgres_max_conns", s.cfg.PostgresMaxConns))
	}
	return attrs
}

// shutdown flushes what the services buffer; it runs after the HTTP server has stopped.
func (s *services) shutdown(ctx context.Context) error {
	var errs []error
	if err := s.auth.Close(ctx); err != nil { // mail still being sent
		errs = append(errs, err)
	}
	if err := s.shutdownKeys(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.closeScale(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	}
	if err := s.closeUsage(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	} else if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	}
	return errors.Join(errs...)
}

// shutdownKeys writes the buffered last_used_at times and stops the sweeper.
func (s *services) shutdownKeys(ctx context.Context) error {
	if s.stopSweep != nil {
		close(s.stopSweep)
		<-s.sweepDone
		s.stopSweep = nil
	}
	if s.keys == nil {
		return nil
	}
	return s.keys.Close(ctx)
}

// closeUsage writes every tracked request to the store, within ctx.
func (s *services) closeUsage(ctx context.Context) error {
	s.stopMaintenance()
	if s.tracker == nil {
		return nil
	}
	if err := s.tracker.Close(ctx); err != nil {
		return err
	}
	st := s.tracker.Stats()
	s.log.Info("usage tracker flushed", slog.Group("stats",
		"accepted", st.Accepted, "flushed", st.Flushed, "retried", st.Retried,
		"dropped", st.Dropped, "rejected", st.Rejected, "pending", st.Pending))
	return nil
}

// close releases the stores.
func (s *services) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.shutdownKeys(ctx)
	if s.redis != nil {
		_ = s.redis.Close()
	}
	_ = s.closeScale(ctx)
	s.stopMaintenance()
	if s.tracker != nil { // shutdown did not run: stop the goroutine, keep what it can
		_ = s.tracker.Close(ctx)
	}
	if s.db != nil {
		_ = s.db.Close()
	}
}

// usageCounts gives billing the call counts of the usage store.
type usageCounts struct{ store usage.Store }

func (u usageCounts) PeriodCalls(ctx context.Context, user ecoid.ID, period time.Time) (int64, error) {
	return u.store.PeriodCalls(ctx, user, period)
}

func (u usageCounts) TotalCalls(ctx context.Context, from, to time.Time) (int64, error) {
	return u.store.TotalCalls(ctx, from, to)
}

func (u usageCounts) TopUsers(ctx context.Context, from, to time.Time, n int) ([]billing.UserCalls, error) {
	top, err := u.store.TopUsers(ctx, from, to, n)
	out := make([]billing.UserCalls, len(top))
	for i, t := range top {
		out[i] = billing.UserCalls{UserID: t.UserID, Calls: t.Calls}
	}
	return out, err
}
