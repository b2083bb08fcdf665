package usage_test

import (
	"context"
	"errors"
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

// flakyBlockCounter is a BlockCounter whose RemoveCall is flakyCounter's: it fails
// while the counter is set down.
type flakyBlockCounter struct {
	usage.BlockCounter
	flaky *flakyCounter
}

func (c flakyBlockCounter) RemoveCall(ctx context.Context, user ecoid.ID, period time.Time) error {
	return c.flaky.RemoveCall(ctx, user, period)
}

func newFlakyBlockCounter() (*memory.UsageStore, *flakyCounter, flakyBlockCounter) {
	store := memory.NewUsageStore()
	flaky := &flakyCounter{Counter: store}
	return store, flaky, flakyBlockCounter{store, flaky}
}

// A release that reaches the store while it is down is retried until it is applied, and
// Close waits for it: a refused or undelivered request is never left charged.
func TestLeasedCounterRetriesAReleaseTheStoreRefused(t *testing.T) {
	ctx := context.Background()
	store, flaky, counter := newFlakyBlockCounter()
	c := usage.NewLeasedCounter(counter, usage.LeaseConfig{})
	user := ecoid.New(ecoid.User)
	now := time.Now()
	if _, _, err := store.AddCall(ctx, user, now, 0, false); err != nil { // counted, no lease here
		t.Fatal(err)
	}
	flaky.setDown(true)
	if err := c.RemoveCall(ctx, user, now); err != nil {
		t.Fatalf("RemoveCall with the store down = %v, want nil (queued for retry)", err)
	}
	if n, _ := store.PeriodCalls(ctx, user, now); n != 1 {
		t.Fatalf("count while down: %d, want 1", n)
	}
	flaky.setDown(false)
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, _ := store.PeriodCalls(ctx, user, now); n != 0 {
		t.Fatalf("count after recovery: %d, want 0: the release was lost", n)
	}
}

// Close reports releases it could not apply before its context ended.
func TestLeasedCounterCloseReportsReleasesNotApplied(t *testing.T) {
	ctx := context.Background()
	store, flaky, counter := newFlakyBlockCounter()
	c := usage.NewLeasedCounter(counter, usage.LeaseConfig{})
	user := ecoid.New(ecoid.User)
	_, _, _ = store.AddCall(ctx, user, time.Now(), 0, false)
	flaky.setDown(true)
	_ = c.RemoveCall(ctx, user, time.Now())
	closeCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := c.Close(closeCtx); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a release still queued = %v, want it reported", err)
	}
}
