package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"

	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
	"github.com/nexus-ecosystem/nexus/usage"
)

func TestLeaseConformance(t *testing.T) {
	storagetest.RunLeases(t, func(t *testing.T) usage.BlockCounter {
		db := pgtest.New(t)
		db.SetMaxOpenConns(16)
		return postgres.NewUsageStore(db)
	})
}

// Calls without a hard cap of many users are written in one statement per flush, and
// the counts come out exact.
func TestLeasedCounterBatchesSoftCalls(t *testing.T) {
	store := postgres.NewUsageStore(pgtest.New(t))
	ctx := context.Background()
	if err := store.AddCalls(ctx, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	users := []ecoid.ID{ecoid.New(ecoid.User), ecoid.New(ecoid.User), ecoid.New(ecoid.User)}
	if err := store.AddCalls(ctx, []usage.PendingCalls{{User: users[0], Period: now, Calls: 2}, {User: users[0], Period: now, Calls: 3}}); err != nil {
		t.Fatalf("a batch naming a user twice: %v", err)
	}
	c := usage.NewLeasedCounter(store, usage.LeaseConfig{FlushInterval: 10 * time.Millisecond})
	defer c.Close(ctx)
	for i, u := range users {
		for range 10 * (i + 1) {
			if _, ok, err := c.AddCall(ctx, u, now, 5, false); !ok || err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []int64{15, 20, 30}
	deadline := time.Now().Add(15 * time.Second)
	for i, u := range users {
		for {
			n, err := store.PeriodCalls(ctx, u, now)
			if err != nil {
				t.Fatal(err)
			}
			if n == want[i] {
				break
			}
			if n > want[i] || time.Now().After(deadline) {
				t.Fatalf("user %d: store count %d, want %d", i, n, want[i])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
