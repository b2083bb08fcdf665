package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestThrottleSweepDropsClosedWindowsOnly(t *testing.T) {
	db := pgtest.New(t)
	s := postgres.NewThrottleStore(db)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := auth.AttemptLimit{Max: 1, Window: time.Minute}
	for _, k := range []string{"old", "new"} {
		if _, err := s.Reserve(ctx, k, l, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(40 * time.Second)
	}
	n, err := s.Sweep(ctx, now) // "old" closed at +60 s, "new" closes at +100 s
	if err != nil || n != 1 {
		t.Fatalf("Sweep: %d, %v; want 1 row", n, err)
	}
	if r, _ := s.Reserve(ctx, "new", l, now); r.OK {
		t.Fatalf("the open window was swept: %+v", r)
	}
	var plain int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM eco_throttle WHERE position('new' in encode(key_hash, 'escape')) > 0`).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("a plain key in the table: %d, %v", plain, err)
	}
}

func BenchmarkThrottleStore(b *testing.B) {
	storagetest.BenchmarkThrottle(b, postgres.NewThrottleStore(pgtest.New(b)))
}
