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
// the test ends. It is opened with postgres.Open, so with binary_parameters on.
func New(t testing.TB) *sql.DB {
	t.Helper()
	return migrated(t, NewUnmigrated(t))
}

// NewTextParameters is New for a pool that sends every parameter as text (lib/pq's
// default, binary_parameters=no): the pool a caller gets from sql.Open with a DSN of
// their own, which the adapters must serve alike.
func NewTextParameters(t testing.TB) *sql.DB {
	t.Helper()
	return migrated(t, newUnmigrated(t, " binary_parameters=no"))
}

func migrated(t testing.TB, db *sql.DB) *sql.DB {
	t.Helper()
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
	return newUnmigrated(t, "")
}

// newUnmigrated opens the pool on a new schema with the key=value settings extra added.
func newUnmigrated(t testing.TB, extra string) *sql.DB {
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
	db, err := postgres.Open(ctx, withSettings(WithSearchPath(dsn, schema), extra))
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
func WithSearchPath(dsn, schema string) string { return withSettings(dsn, "search_path="+schema) }

// withSettings adds key=value settings ("" for none) to a DSN of either form.
func withSettings(dsn, extra string) string {
	extra = strings.TrimSpace(extra)
	if extra == "" {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			for _, kv := range strings.Fields(extra) {
				k, v, _ := strings.Cut(kv, "=")
				q.Set(k, v)
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + extra
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
