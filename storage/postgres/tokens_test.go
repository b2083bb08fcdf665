package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestTokenConformance(t *testing.T) {
	storagetest.RunTokens(t, func(t *testing.T, now func() time.Time) apikey.TokenStore {
		db := pgtest.New(t)
		db.SetMaxOpenConns(16)
		return postgres.NewLimiter(db, postgres.WithClock(now))
	})
}

// TakeTokens and Allow share one row per (policy, subject): a burst used by one is used
// for the other.
func TestTakeTokensSharesAllowsState(t *testing.T) {
	db := pgtest.New(t)
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	l := postgres.NewLimiter(db, postgres.WithClock(func() time.Time { return at }))
	ctx := context.Background()
	limit := apikey.PerMinute(5)
	for range 5 {
		if d, err := l.Allow(ctx, "k", limit); err != nil || !d.Allowed {
			t.Fatalf("Allow: %+v %v", d, err)
		}
	}
	if g, err := l.TakeTokens(ctx, "k", limit, 3, 0); err != nil || g.Granted != 0 {
		t.Fatalf("TakeTokens after Allow used the burst: %+v %v", g, err)
	}
	if g, err := l.TakeTokens(ctx, "other", limit, 3, 0); err != nil || g.Granted != 3 {
		t.Fatalf("TakeTokens of a fresh subject: %+v %v", g, err)
	}
	if d, err := l.Allow(ctx, "other", limit); err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("Allow after 3 tokens taken: %+v %v", d, err)
	}
}
