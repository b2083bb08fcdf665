// Package postgres stores Nexus data in PostgreSQL. Constructors take a *sql.DB (lib/pq or
// pgx's stdlib driver both work); sqlx is used inside only.
//
// Open connects, Migrate brings the schema up to date (idempotent and safe to run from
// many processes at once), and the New… constructors return the adapters for each domain
// package's store interfaces. All adapters are safe for concurrent use.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq" // also registers the "postgres" driver
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations returns the embedded SQL migrations, named NNNN_name.sql, for callers who
// drive their own migration tool. Migrate applies the same files.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil { // cannot happen: the directory is embedded
		panic(err)
	}
	return sub
}

// Open connects to PostgreSQL with the lib/pq DSN (a URL or key=value pairs) and checks
// that the server answers. It does not migrate; call Migrate for that.
//
// Unless the DSN says otherwise, it turns on lib/pq's binary_parameters: a statement
// with parameters then costs one round trip (Parse, Bind, Execute in one message)
// instead of two (lib/pq otherwise prepares the unnamed statement and waits, then
// executes), which halves the round trips of every hot-path statement; []byte
// parameters, which the adapters send only to bytea columns, go in binary. A *sql.DB
// opened elsewhere works too; add binary_parameters=yes to its DSN for the same effect.
func Open(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if !strings.Contains(dsn, "binary_parameters") {
		cfg.BinaryParameters = true
	}
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return db, nil
}

// wrap gives a *sql.DB the sqlx helpers the adapters use inside; callers only ever see
// database/sql types, so a pool from lib/pq or from pgx's stdlib works alike.
func wrap(db *sql.DB) *sqlx.DB { return sqlx.NewDb(db, "postgres") }

// uniqueViolation reports whether err is PostgreSQL's unique_violation (23505), of the
// named constraint when constraint is not empty.
func uniqueViolation(err error, constraint string) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23505" && (constraint == "" || pqErr.Constraint == constraint)
}
