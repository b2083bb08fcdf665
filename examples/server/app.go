package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"database/sql"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
)

// app holds the configured services and stores; its methods are the HTTP handlers.
type app struct {
	cfg config
	log *slog.Logger
	db  *sql.DB // nil with in-memory stores

	authState    // accounts and sessions: auth.go
	keyState     // API keys and rate limits: keys.go
	usageState   // request tracking, quotas, /api/usage: usage.go
	billingState // subscriptions, webhooks, overage, admin analytics: billing.go
}

// newApp opens the stores the configuration names and builds the services over them.
func newApp(ctx context.Context, cfg config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log}
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
		a.db = db
	}
	if err := a.initAuth(); err != nil {
		a.close()
		return nil, err
	}
	if err := a.initKeys(ctx); err != nil {
		a.close()
		return nil, err
	}
	a.initUsage()
	a.initBilling() // after initUsage: billing reads its counts and answers planFor
	return a, nil
}

// storeName says which backend serves the data, for the start-up log line.
func (a *app) storeName() string {
	if a.db != nil {
		return "postgres"
	}
	return "memory"
}

// ping reports whether the backing store answers.
func (a *app) ping(ctx context.Context) error {
	if a.db == nil {
		return nil
	}
	return a.db.PingContext(ctx)
}

// shutdown flushes what the services buffer; it runs after the HTTP server has stopped.
func (a *app) shutdown(ctx context.Context) error {
	var errs []error
	if err := a.shutdownKeys(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := a.closeUsage(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	} else if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	}
	return errors.Join(errs...)
}

// close releases the stores.
func (a *app) close() {
	a.closeKeys()
	if a.tracker != nil { // shutdown did not run: stop the goroutine, keep what it can
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.tracker.Close(ctx)
		cancel()
	}
	if a.db != nil {
		_ = a.db.Close()
	}
}
