package usage_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

// flakyCounter fails RemoveCall while down is set.
type flakyCounter struct {
	usage.Counter
	mu       sync.Mutex
	down     bool
	failures int
}

func (c *flakyCounter) RemoveCall(ctx context.Context, user ecoid.ID, period time.Time) error {
	c.mu.Lock()
	down := c.down
	if down {
		c.failures++
	}
	c.mu.Unlock()
	if down {
		return errors.New("connection refused")
	}
	return c.Counter.RemoveCall(ctx, user, period)
}

func (c *flakyCounter) setDown(d bool) {
	c.mu.Lock()
	c.down = d
	c.mu.Unlock()
}

// A reservation released while the counter is down is given back once it recovers: the
// refused request costs no quota in the end.
func TestQuotaReleaseIsRetriedUntilTheCounterRecovers(t *testing.T) {
	ctx := context.Background()
	store := memory.NewUsageStore()
	counter := &flakyCounter{Counter: store}
	clock := &virtualClock{}
	var bothQueued atomic.Bool // set once both releases are in: the store must not recover between them
	retrier := usage.RetryReleases(counter, usage.ReleaseRetryConfig{After: func(d time.Duration) <-chan time.Time {
		if bothQueued.Load() && clock.elapsed() > time.Second {
			counter.setDown(false) // the store comes back after a second of retries
		}
		return clock.After(d)
	}})
	q := usage.NewQuota(retrier, fixedLimit(10, true), usage.QuotaConfig{})
	var held []usage.Reservation
	for range 3 {
		res, err := q.Reserve(ctx, testUser)
		if err != nil || !res.Allowed {
			t.Fatal(res, err)
		}
		held = append(held, res)
	}
	counter.setDown(true)
	for _, res := range held[:2] { // two requests refused later, say by the rate limit
		if err := q.Release(ctx, res); err != nil {
			t.Fatalf("Release while the counter is down: %v (it should be queued)", err)
		}
	}
	bothQueued.Store(true)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := retrier.Wait(wctx); err != nil {
		t.Fatalf("queued releases never applied: %v, stats %+v", err, retrier.Stats())
	}
	cur, err := q.Current(ctx, testUser)
	if err != nil || cur.Calls != 1 {
		t.Fatalf("calls after the counter recovered: %d %v; want 1 (two released)", cur.Calls, err)
	}
	st := retrier.Stats()
	if st.Queued != 2 || st.Done != 2 || st.Pending != 0 || st.Lost != 0 || counter.failures < 3 {
		t.Fatalf("stats %+v after %d failures", st, counter.failures)
	}
}

// NewQuota wraps its counter itself, so a caller gets the retry without asking.
func TestQuotaReleaseRetriesByDefault(t *testing.T) {
	ctx := context.Background()
	store := memory.NewUsageStore()
	counter := &flakyCounter{Counter: store}
	q := usage.NewQuota(counter, fixedLimit(10, true), usage.QuotaConfig{})
	res, _ := q.Reserve(ctx, testUser)
	counter.setDown(true)
	if err := q.Release(ctx, res); err != nil {
		t.Fatal(err)
	}
	counter.setDown(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n, _ := store.PeriodCalls(ctx, testUser, res.Period); n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the release was never retried")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
