// Package pgtest gives each test its own freshly migrated PostgreSQL schema, so tests never
// see one another's rows. It reads the server from NEXUS_TEST_POSTGRES and skips (or, with
// NEXUS_TEST_REQUIRE=1, fails) when that is unset.
package pgtest

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
)

// New returns a connection pool whose search_path is a new, migrated schema, dropped when
// the test ends.
func New(t testing.TB) *sql.DB {
	t.Helper()
	db := NewUnmigrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postgres.Migrate(ctx, db); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return db
}

// NewUnmigrated is New without the migrations.
func NewUnmigrated(t testing.TB) *sql.DB {
	t.Helper()
	dsn := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// An EcoID's random part is base62, so fold it to lower case and keep it as the name.
	schema := "nexus_test_" + strings.ToLower(string(ecoid.New(ecoid.Event))[8:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("pgtest: create schema: %v", err)
	}
	db, err := postgres.Open(ctx, WithSearchPath(dsn, schema))
	if err != nil {
		_ = admin.Close()
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("pgtest: drop schema: %v", err)
		}
		_ = admin.Close()
	})
	return db
}

// WithSearchPath returns dsn with search_path set to schema, for both URL and key=value
// DSNs. lib/pq sends unknown settings to the server as run-time parameters.
func WithSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

// Peer returns a second connection pool on db's schema, as another instance of a
// service would hold; it is closed when the test ends.
func Peer(t testing.TB, db *sql.DB) *sql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("pgtest: current schema: %v", err)
	}
	peer, err := postgres.Open(ctx, WithSearchPath(testenv.Postgres(t), schema))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	return peer
}
