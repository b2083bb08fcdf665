package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// ErrBadMigration is wrapped by the errors Migrate returns for a migration set that is
// not well-formed (a misnamed file or two files with one version).
var ErrBadMigration = errors.New("postgres: bad migration")

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// Migrate applies every embedded migration that the database has not recorded yet, in
// version order, each in its own transaction together with its row in
// eco_schema_migrations. It is idempotent, and safe when several processes run it at
// once: they serialize on a PostgreSQL advisory lock scoped to the current schema.
//
// It also creates the usage log's partitions of this month and the next two (see
// UsageStore.Maintain, which keeps creating them).
func Migrate(ctx context.Context, db *sql.DB) error {
	if err := migrate(ctx, db, Migrations()); err != nil {
		return err
	}
	return ensureUsagePartitions(ctx, wrap(db), time.Now())
}

func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	migrations, err := loadMigrations(fsys)
	if err != nil {
		return err
	}
	conn, err := wrap(db).Connx(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Close()

	const lockKey = `hashtextextended('nexus.migrate.' || current_schema(), 0)`
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`); err != nil {
		return fmt.Errorf("postgres: migrate: take lock: %w", err)
	}
	defer func() {
		// A lock outlives a cancelled ctx, so release it without one; closing the
		// connection would release it as well.
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(`+lockKey+`)`)
	}()

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS eco_schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: migrate: create version table: %w", err)
	}
	applied := map[int]bool{}
	var versions []int
	if err := conn.SelectContext(ctx, &versions, `SELECT version FROM eco_schema_migrations`); err != nil {
		return fmt.Errorf("postgres: migrate: read versions: %w", err)
	}
	for _, v := range versions {
		applied[v] = true
	}
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		if err := apply(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

func apply(ctx context.Context, conn *sqlx.Conn, m migration) error {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: migrate %04d_%s: %w", m.version, m.name, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("postgres: migrate %04d_%s: %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO eco_schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
		return fmt.Errorf("postgres: migrate %04d_%s: record version: %w", m.version, m.name, err)
	}
	if err := tx.Commit(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("postgres: migrate %04d_%s: commit: %w", m.version, m.name, err)
	}
	return nil
}

// loadMigrations reads NNNN_name.sql files from the root of fsys in version order.
// Files with other extensions are ignored.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMigration, err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		version, convErr := strconv.Atoi(num)
		if !ok || convErr != nil || len(num) != 4 || version <= 0 || name == "" {
			return nil, fmt.Errorf("%w: %q is not named NNNN_name.sql", ErrBadMigration, e.Name())
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("%w: %q and %q share version %d", ErrBadMigration, other, e.Name(), version)
		}
		seen[version] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMigration, err)
		}
		out = append(out, migration{version: version, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}
