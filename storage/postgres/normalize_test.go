package postgres_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
)

// TestMigrationBringsEmailsToNFC: accounts stored before emails were normalised (katé in
// NFD) are found by the NFC form auth.NormalizeEmail now gives, unless an NFC twin
// exists, which is left alone for the operator.
func TestMigrationBringsEmailsToNFC(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	insert := func(email string) ecoid.ID {
		id := ecoid.New(ecoid.User)
		if _, err := db.ExecContext(ctx, `INSERT INTO eco_identities (id, email, created_at) VALUES ($1, $2, $3)`, id, email, time.Now()); err != nil {
			t.Fatal(err)
		}
		return id
	}
	lone := insert("kate\u0301@example.com")
	insert("jose\u0301@example.com")
	insert("jos\u00e9@example.com") // its twin already in NFC
	sql, err := fs.ReadFile(postgres.Migrations(), "0005_login_protection.sql")
	if err != nil {
		t.Fatal(err)
	}
	do := string(sql[strings.Index(string(sql), "DO $$"):])
	if _, err := db.ExecContext(ctx, do); err != nil {
		t.Fatalf("the migration's email step: %v", err)
	}
	store := postgres.NewAuthStore(db)
	norm, _ := auth.NormalizeEmail("kate\u0301@example.com")
	if u, err := store.UserByEmail(ctx, norm); err != nil || u.ID != lone {
		t.Fatalf("NFD account by its NFC email: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM eco_identities WHERE email = $1`, "jose\u0301@example.com").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the NFD twin of an NFC account changed: %d, %v", n, err)
	}
}
