package storagetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

// NewBlockCounter returns a fresh, empty usage.BlockCounter for one test. Two calls in
// one test must not share rows; one store shared by two LeasedCounters stands for two
// instances on one database.
type NewBlockCounter func(t *testing.T) usage.BlockCounter

// RunLeases runs the usage.BlockCounter contract, and usage.LeasedCounter on top of it,
// against an adapter.
func RunLeases(t *testing.T, newStore NewBlockCounter) {
	t.Helper()
	t.Run("TakeCallsStopsAtAHardCap", func(t *testing.T) { testTakeCalls(t, newStore(t)) })
	t.Run("ReturnCallsNeverBelowZero", func(t *testing.T) { testReturnCalls(t, newStore(t)) })
	t.Run("TakeCallsConcurrentlyExact", func(t *testing.T) { testTakeConcurrent(t, newStore(t)) })
	t.Run("TakesAndSingleCallsTogetherExact", func(t *testing.T) { testTakeWithAddCall(t, newStore(t)) })
	t.Run("TwoInstancesServeAFreeCapExactly", func(t *testing.T) { testLeasesRace(t, newStore(t)) })
	t.Run("ReleasedCallsAndIdleLeasesGoBack", func(t *testing.T) { testLeasesGiveBack(t, newStore(t)) })
	t.Run("CrashCountsTheUnreturnedLeaseAsUsed", func(t *testing.T) { testLeasesCrash(t, newStore(t)) })
	t.Run("SoftCapCallsAreWrittenBehind", func(t *testing.T) { testLeasesSoft(t, newStore(t)) })
}

func testTakeCalls(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	period := usage.PeriodStart(usageBase)
	steps := []struct{ n, granted, count int64 }{{4, 4, 4}, {4, 4, 8}, {4, 2, 10}, {4, 0, 10}, {1, 0, 10}}
	for i, st := range steps {
		g, c, err := s.TakeCalls(ctx, user, usageBase, st.n, 10, true)
		if err != nil || g != st.granted || c != st.count {
			t.Fatalf("take %d of %d under a cap of 10: granted %d count %d err %v; want %d %d", i, st.n, g, c, err, st.granted, st.count)
		}
	}
	if g, c, err := s.TakeCalls(ctx, user, period, 5, 10, false); err != nil || g != 5 || c != 15 {
		t.Fatalf("soft take past the limit: %d %d %v; want 5 15", g, c, err)
	}
	if n, _ := s.PeriodCalls(ctx, user, period); n != 15 {
		t.Fatalf("PeriodCalls = %d, want 15", n)
	}
	if n, added, err := s.AddCall(ctx, user, period, 20, true); err != nil || !added || n != 16 {
		t.Fatalf("AddCall after takes: %d %v %v", n, added, err)
	}
	other := ecoid.New(ecoid.User)
	if g, c, err := s.TakeCalls(ctx, other, period, 3, 0, true); err != nil || g != 0 || c != 0 {
		t.Fatalf("take under a cap of 0: %d %d %v", g, c, err)
	}
	if g, c, err := s.TakeCalls(ctx, other, period.AddDate(0, 1, 0), 3, 2, true); err != nil || g != 2 || c != 2 {
		t.Fatalf("next period starts at zero: %d %d %v", g, c, err)
	}
}

func testReturnCalls(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	if _, _, err := s.TakeCalls(ctx, user, usageBase, 5, 100, true); err != nil {
		t.Fatal(err)
	}
	if err := s.ReturnCalls(ctx, user, usageBase, 3); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PeriodCalls(ctx, user, usageBase); n != 2 {
		t.Fatalf("after returning 3 of 5: %d", n)
	}
	if err := s.ReturnCalls(ctx, user, usageBase, 10); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PeriodCalls(ctx, user, usageBase); n != 0 {
		t.Fatalf("returning more than counted: %d, want 0", n)
	}
	if err := s.ReturnCalls(ctx, ecoid.New(ecoid.User), usageBase, 1); err != nil {
		t.Fatalf("returning to a period never counted: %v", err)
	}
}

func testTakeConcurrent(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	g := grantConcurrently(t, 40, 10, func(int) (int64, error) {
		g, _, err := s.TakeCalls(ctx, user, usageBase, 7, 1000, true)
		return g, err
	})
	if n := mustCalls(t, s, user); g != 1000 || n != 1000 {
		t.Fatalf("40×10 takes of 7 under a cap of 1,000: granted %d, count %d", g, n)
	}
}

// testTakeWithAddCall: blocks of calls (TakeCalls) and single calls (AddCall) on one
// user's counter at once, as when one instance leases and another counts call by call,
// share one cap exactly.
func testTakeWithAddCall(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	g := grantConcurrently(t, 8, 40, func(i int) (int64, error) {
		if i%2 == 0 {
			g, _, err := s.TakeCalls(ctx, user, usageBase, 3, 500, true)
			return g, err
		}
		_, added, err := s.AddCall(ctx, user, usageBase, 500, true)
		if added {
			return 1, err
		}
		return 0, err
	})
	// 4×40 takes of 3 and 4×40 single calls ask for 640 calls under a cap of 500.
	if n := mustCalls(t, s, user); g != 500 || n != 500 {
		t.Fatalf("takes and single calls under a cap of 500: granted %d, count %d", g, n)
	}
}

// grantConcurrently runs take `each` times in each of n goroutines (take gets the
// goroutine's number) and returns the sum of what it granted.
func grantConcurrently(t *testing.T, n, each int, take func(i int) (int64, error)) int64 {
	t.Helper()
	var granted atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				g, err := take(i)
				if err != nil {
					t.Error(err)
					return
				}
				granted.Add(g)
			}
		}()
	}
	wg.Wait()
	return granted.Load()
}

func mustCalls(t *testing.T, s usage.Counter, user ecoid.ID) int64 {
	t.Helper()
	n, err := s.PeriodCalls(context.Background(), user, usageBase)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// leaseClock is a settable clock for leases.
type leaseClock struct{ ns atomic.Int64 }

func newLeaseClock() *leaseClock {
	c := &leaseClock{}
	c.ns.Store(usageBase.UnixNano())
	return c
}
func (c *leaseClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *leaseClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func closeCounter(t *testing.T, c *usage.LeasedCounter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// Two instances (two LeasedCounters on one store), each with many goroutines, race a Free
// user's 1,000 calls: exactly 1,000 are served, and the store ends at 1,000.
func testLeasesRace(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	clock := newLeaseClock() // frozen: no lease expires during the race
	cfg := usage.LeaseConfig{Now: clock.now, MaxBlock: 64}
	a, b := usage.NewLeasedCounter(s, cfg), usage.NewLeasedCounter(s, cfg)
	var served, over atomic.Int64
	var wg sync.WaitGroup
	for _, inst := range []*usage.LeasedCounter{a, b} {
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n, ok, err := inst.AddCall(ctx, user, usageBase, 1000, true)
					if err != nil {
						t.Error(err)
						return
					}
					if !ok {
						return
					}
					if served.Add(1) > 1000 || n > 1000 {
						over.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	if served.Load() != 1000 || over.Load() != 0 {
		t.Fatalf("two instances served %d calls of a cap of 1,000 (%d over)", served.Load(), over.Load())
	}
	for _, inst := range []*usage.LeasedCounter{a, b} {
		if _, ok, _ := inst.AddCall(ctx, user, usageBase, 1000, true); ok {
			t.Fatal("the 1,001st call was served")
		}
	}
	closeCounter(t, a)
	closeCounter(t, b)
	if n := mustCalls(t, s, user); n != 1000 {
		t.Fatalf("store count after both closed: %d, want 1,000", n)
	}
}

// A released call goes back to the lease it came from; a lease left idle goes back to
// the store, where the other instance can take it.
func testLeasesGiveBack(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	clock := newLeaseClock()
	cfg := usage.LeaseConfig{Now: clock.now, MaxBlock: 8, LeaseTTL: time.Second}
	a, b := usage.NewLeasedCounter(s, cfg), usage.NewLeasedCounter(s, cfg)
	defer closeCounter(t, b)
	for i := range 10 {
		if _, ok, err := a.AddCall(ctx, user, usageBase, 10, true); !ok || err != nil {
			t.Fatalf("call %d on A: %v %v", i, ok, err)
		}
	}
	if _, ok, _ := b.AddCall(ctx, user, usageBase, 10, true); ok {
		t.Fatal("B served an 11th call")
	}
	if err := a.RemoveCall(ctx, user, usageBase); err != nil { // e.g. refused by the rate limit
		t.Fatal(err)
	}
	if n, _ := a.PeriodCalls(ctx, user, usageBase); n != 9 {
		t.Fatalf("A's PeriodCalls after a release: %d, want 9", n)
	}
	clock.add(2 * time.Second) // A's lease is idle past its TTL; B's refusal is stale
	closeCounter(t, a)         // as A's background sweep would: the released call goes back
	if _, ok, err := b.AddCall(ctx, user, usageBase, 10, true); !ok || err != nil {
		t.Fatalf("B could not take the call A gave back: %v %v", ok, err)
	}
	if _, ok, _ := b.AddCall(ctx, user, usageBase, 10, true); ok {
		t.Fatal("B served an 11th call after the give-back")
	}
	if _, _, err := a.AddCall(ctx, user, usageBase, 10, true); err == nil {
		t.Fatal("AddCall after Close succeeded")
	}
}

// An instance that dies without Close leaves its unused leased calls counted as used: the
// user is refused early by at most that many, never let through.
func testLeasesCrash(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	clock := newLeaseClock()
	cfg := usage.LeaseConfig{Now: clock.now, MaxBlock: 16}
	crashed := usage.NewLeasedCounter(s, cfg) // never closed: a kill -9
	served := 0
	for range 40 {
		if _, ok, _ := crashed.AddCall(ctx, user, usageBase, 1000, true); ok {
			served++
		}
	}
	lost := mustCalls(t, s, user) - int64(served)
	if lost < 0 || lost > 16 {
		t.Fatalf("after a crash the store counts %d calls beyond the %d served; want 0..16 (one block)", lost, served)
	}
	next := usage.NewLeasedCounter(s, cfg)
	defer closeCounter(t, next)
	for {
		if _, ok, err := next.AddCall(ctx, user, usageBase, 1000, true); err != nil || !ok {
			break
		}
		served++
	}
	if int64(served) != 1000-lost {
		t.Fatalf("served %d in all; want 1,000 less the %d the crash kept", served, lost)
	}
}

// Without a hard cap calls are counted in memory and written in one step: the store
// catches up at Close, and PeriodCalls includes what is not written yet.
func testLeasesSoft(t *testing.T, s usage.BlockCounter) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	c := usage.NewLeasedCounter(s, usage.LeaseConfig{FlushInterval: time.Hour})
	for range 50 {
		if _, ok, err := c.AddCall(ctx, user, usageBase, 10, false); !ok || err != nil {
			t.Fatalf("a soft call was refused: %v", err)
		}
	}
	if err := c.RemoveCall(ctx, user, usageBase); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.PeriodCalls(ctx, user, usageBase); n != 49 {
		t.Fatalf("PeriodCalls before the flush: %d, want 49", n)
	}
	closeCounter(t, c)
	if n := mustCalls(t, s, user); n != 49 {
		t.Fatalf("store after Close: %d, want 49", n)
	}
}
