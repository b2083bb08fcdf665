package postgres_test

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"testing/fstest"

	"database/sql"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
)

var testMigrations = fstest.MapFS{
	"0001_first.sql":  {Data: []byte(`CREATE TABLE eco_first (id text PRIMARY KEY);`)},
	"0002_second.sql": {Data: []byte(`CREATE TABLE eco_second (id text PRIMARY KEY); INSERT INTO eco_second VALUES ('a');`)},
	"README.md":       {Data: []byte("ignored")},
}

func versions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM eco_schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var v []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		v = append(v, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateIsIdempotent(t *testing.T) {
	db := pgtest.NewUnmigrated(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := postgres.MigrateFS(ctx, db, testMigrations); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	if got := versions(t, db); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("recorded versions %v, want [1 2]", got)
	}
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM eco_second`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("migration 2 ran %d times (%v), want once", rows, err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	db := pgtest.NewUnmigrated(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- postgres.MigrateFS(context.Background(), db, testMigrations)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM eco_second`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("migration 2 ran %d times (%v), want once", rows, err)
	}
}

func TestEmbeddedMigrationsApplyTwice(t *testing.T) {
	db := pgtest.NewUnmigrated(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := postgres.Migrate(ctx, db); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	files, err := fs.Glob(postgres.Migrations(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(t, db); len(got) != len(files) {
		t.Fatalf("recorded %d versions for %d files", len(got), len(files))
	}
}

func TestFailedMigrationLeavesNothing(t *testing.T) {
	db := pgtest.NewUnmigrated(t)
	bad := fstest.MapFS{
		"0001_first.sql":  testMigrations["0001_first.sql"],
		"0002_broken.sql": {Data: []byte(`CREATE TABLE eco_half (id text); SELECT no_such_function();`)},
	}
	if err := postgres.MigrateFS(context.Background(), db, bad); err == nil {
		t.Fatal("a broken migration reported success")
	}
	if got := versions(t, db); len(got) != 1 || got[0] != 1 {
		t.Fatalf("recorded versions %v, want [1]", got)
	}
	var exists bool
	if err := db.QueryRow(`SELECT to_regclass('eco_half') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("half-applied migration left its table behind (%v)", err)
	}
}

func TestBadMigrationSets(t *testing.T) {
	for name, set := range map[string]fstest.MapFS{
		"no number":    {"first.sql": {Data: []byte("SELECT 1")}},
		"short number": {"01_first.sql": {Data: []byte("SELECT 1")}},
		"no name":      {"0001_.sql": {Data: []byte("SELECT 1")}},
		"zero version": {"0000_zero.sql": {Data: []byte("SELECT 1")}},
		"duplicate":    {"0001_a.sql": {Data: []byte("SELECT 1")}, "0001_b.sql": {Data: []byte("SELECT 1")}},
	} {
		t.Run(name, func(t *testing.T) {
			// The set is checked before any connection is made, so no server is needed.
			err := postgres.MigrateFS(context.Background(), nil, set)
			if !errors.Is(err, postgres.ErrBadMigration) {
				t.Fatalf("error %v, want ErrBadMigration", err)
			}
		})
	}
}
