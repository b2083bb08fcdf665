package usage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

// A lower limit (a downgrade) gives the lease back and takes under the new limit at once,
// so calls leased under the old plan are not served past the new cap.
func TestLeasedCounterFollowsALimitChange(t *testing.T) {
	ctx := context.Background()
	store := memory.NewUsageStore()
	c := usage.NewLeasedCounter(store, usage.LeaseConfig{MaxBlock: 50})
	defer c.Close(ctx)
	user := ecoid.New(ecoid.User)
	now := time.Now()
	for range 20 { // blocks grow: the lease holds unused calls now
		if _, ok, err := c.AddCall(ctx, user, now, 1000, true); !ok || err != nil {
			t.Fatalf("call under 1,000: %v %v", ok, err)
		}
	}
	served := 0
	for range 30 {
		if _, ok, _ := c.AddCall(ctx, user, now, 25, true); ok {
			served++
		}
	}
	if served != 5 {
		t.Fatalf("after the limit fell to 25, %d more calls were served; want 5", served)
	}
}

// Drop gives back what a user's lease holds, e.g. on a plan-change event.
func TestLeasedCounterDrop(t *testing.T) {
	ctx := context.Background()
	store := memory.NewUsageStore()
	c := usage.NewLeasedCounter(store, usage.LeaseConfig{MaxBlock: 50})
	defer c.Close(ctx)
	user := ecoid.New(ecoid.User)
	now := time.Now()
	for range 10 {
		_, _, _ = c.AddCall(ctx, user, now, 1000, true)
	}
	c.Drop(user)
	if n, _ := store.PeriodCalls(ctx, user, now); n != 10 {
		t.Fatalf("store count after Drop: %d, want the 10 served", n)
	}
}

// A LeasedCounter is a Counter: Quota enforces a hard cap through it.
func ExampleNewLeasedCounter() {
	ctx := context.Background()
	store := memory.NewUsageStore() // storage/postgres.NewUsageStore(db) in production
	counter := usage.NewLeasedCounter(store, usage.LeaseConfig{})
	defer counter.Close(ctx)
	free := func(context.Context, ecoid.ID) (int64, bool, error) { return 3, true, nil }
	q := usage.NewQuota(counter, free, usage.QuotaConfig{})
	user := ecoid.New(ecoid.User)
	for range 4 {
		res, _ := q.Reserve(ctx, user)
		fmt.Println(res.Allowed, res.Remaining())
	}
	// Output:
	// true 2
	// true 1
	// true 0
	// false 0
}
