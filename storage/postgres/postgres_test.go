package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"

	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// TestConformance runs the store conformance suite on pools from postgres.Open
// (binary_parameters on: one round trip per statement).
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Stores { return stores(t, pgtest.New(t)) })
}

// TestConformanceTextParameters runs it again on pools that send parameters as text, as
// a *sql.DB from the caller's own sql.Open does.
func TestConformanceTextParameters(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Stores { return stores(t, pgtest.NewTextParameters(t)) })
}

func stores(t *testing.T, db *sql.DB) storagetest.Stores {
	return storagetest.Stores{
		Auth:    postgres.NewAuthStore(db),
		APIKeys: postgres.NewKeyStore(db),
		Limiter: func(now func() time.Time) apikey.Limiter {
			// The concurrency tests fire hundreds of decisions at once; a bounded
			// pool queues them instead of exhausting the server's connections.
			db.SetMaxOpenConns(16)
			return postgres.NewLimiter(db, postgres.WithClock(now))
		},
		Usage:   postgres.NewUsageStore(db),
		Billing: postgres.NewBillingStore(db),
		SSO:     postgres.NewSSOStore(db),

		// A second pool on the same schema stands for another instance.
		Throttle:     postgres.NewThrottleStore(db),
		ThrottlePeer: postgres.NewThrottleStore(pgtest.Peer(t, db)),
	}
}

func TestOpenReportsUnreachableServer(t *testing.T) {
	_, err := postgres.Open(context.Background(), "host=127.0.0.1 port=1 user=nobody sslmode=disable connect_timeout=2")
	if err == nil || !strings.HasPrefix(err.Error(), "postgres: connect:") {
		t.Fatalf("Open of an unreachable server: %v", err)
	}
}

func TestWithSearchPath(t *testing.T) {
	if got := pgtest.WithSearchPath("postgres://u@h/db?sslmode=disable", "s1"); !strings.Contains(got, "search_path=s1") || !strings.Contains(got, "sslmode=disable") {
		t.Fatalf("URL DSN: %s", got)
	}
	if got := pgtest.WithSearchPath("host=h sslmode=disable", "s1"); got != "host=h sslmode=disable search_path=s1" {
		t.Fatalf("key=value DSN: %s", got)
	}
}

func TestUsageWriteBatchErrorsAreClassified(t *testing.T) {
	s := postgres.NewUsageStore(pgtest.New(t))
	rec := storagetest.UsageRecord(ecoid.New(ecoid.User), time.Now(), "GET", "/a", 200, time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := s.WriteBatch(ctx, []usage.Record{rec}); !usage.IsRetriable(err) || !errors.Is(err, usage.ErrRetriable) {
		t.Fatalf("a write past its deadline: %v, want a retriable error", err)
	}
	if err := s.WriteBatch(context.Background(), []usage.Record{rec, rec}); err != nil {
		t.Fatalf("a batch holding one ID twice: %v", err) // COPY meets the duplicate; the fallback skips it
	}
	if n, _ := s.TotalCalls(context.Background(), time.Time{}, time.Now().Add(time.Hour)); n != 1 {
		t.Fatalf("rows: %d, want 1", n)
	}
}
