package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
)

func TestLimiterUsesTheServerClock(t *testing.T) {
	db := pgtest.New(t)
	l := postgres.NewLimiter(db)
	ctx := context.Background()
	before := time.Now()
	d, err := l.Allow(ctx, "subject", apikey.PerMinute(2))
	if err != nil {
		t.Fatal(err)
	}
	// The reset is one interval (30 s) after the server's now, which is close to ours.
	if !d.Allowed || d.Remaining != 1 || d.ResetAt.Before(before.Add(29*time.Second)) || d.ResetAt.After(time.Now().Add(31*time.Second)) {
		t.Fatalf("first decision: %+v", d)
	}
	if d, _ = l.Allow(ctx, "subject", apikey.PerMinute(2)); !d.Allowed {
		t.Fatalf("second: %+v", d)
	}
	if d, _ = l.Allow(ctx, "subject", apikey.PerMinute(2)); d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 30*time.Second {
		t.Fatalf("third: %+v", d)
	}
}

// Rate-limit state writes no WAL (migration 0014): its commits wait for no flush.
func TestRateLimitTableIsUnlogged(t *testing.T) {
	db := pgtest.New(t)
	var persistence string
	if err := db.QueryRowContext(context.Background(),
		`SELECT relpersistence FROM pg_class WHERE oid = 'eco_rate_limits'::regclass`).Scan(&persistence); err != nil {
		t.Fatal(err)
	}
	if persistence != "u" {
		t.Fatalf("eco_rate_limits persistence %q, want u (unlogged)", persistence)
	}
}

// A rate-limit row's updates are heap-only (migration 0015): they add no index entries
// and leave no dead row for a vacuum, so the table does not grow with traffic.
func TestRateLimitUpdatesAreHeapOnly(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO eco_rate_limits (policy, subject, tat_us, seen_us, allowed) VALUES ('p', 's', 1, 1, true)`); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n { // what a token take and an Allow change
		if _, err := tx.ExecContext(ctx, `UPDATE eco_rate_limits SET tat_us = tat_us + 1000, seen_us = $1, allowed = NOT allowed
			WHERE policy = 'p' AND subject = 's'`, i); err != nil {
			t.Fatal(err)
		}
	}
	var upd, hot int64
	if err := tx.QueryRowContext(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables
		WHERE relid = 'eco_rate_limits'::regclass`).Scan(&upd, &hot); err != nil {
		t.Fatal(err)
	}
	if upd != n || hot != n {
		t.Fatalf("%d updates, %d of them heap-only: want all %d", upd, hot, n)
	}
	// The tables the route updates keep room on their pages for such updates.
	for table, want := range map[string]string{"eco_rate_limits": "fillfactor=50", "eco_api_keys": "fillfactor=70", "eco_usage_records": "fillfactor=50"} {
		var opts []byte
		if err := tx.QueryRowContext(ctx, `SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = $1::regclass`, table).Scan(&opts); err != nil {
			t.Fatal(err)
		}
		if string(opts) != want {
			t.Fatalf("%s options %q, want %q", table, opts, want)
		}
	}
}

func TestLimiterSweepDropsIdleRows(t *testing.T) {
	db := pgtest.New(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := postgres.NewLimiter(db, postgres.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	for _, s := range []string{"a", "b"} {
		if _, err := l.Allow(ctx, s, apikey.PerMinute(1)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep of busy rows: %d, %v", n, err)
	}
	now = now.Add(30 * time.Second)
	if _, err := l.Allow(ctx, "b", apikey.PerMinute(4)); err != nil { // b stays busy
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	if n, err := l.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want 1 (a)", n, err)
	}
	var left int
	if err := db.QueryRow(`SELECT count(*) FROM eco_rate_limits`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("rows left: %d, %v", left, err)
	}
	if _, err := postgres.NewLimiter(db).Sweep(ctx); err != nil {
		t.Fatalf("sweep with the server clock: %v", err)
	}
}

func TestLimiterReportsDatabaseErrors(t *testing.T) {
	db := pgtest.New(t)
	l := postgres.NewLimiter(db)
	_ = db.Close()
	if _, err := l.Allow(context.Background(), "s", apikey.PerMinute(1)); err == nil {
		t.Fatal("Allow on a closed pool succeeded")
	}
	if _, err := l.Sweep(context.Background()); err == nil {
		t.Fatal("Sweep on a closed pool succeeded")
	}
}
