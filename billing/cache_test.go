package billing_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// countingLoader is a TermsLoader over a map that counts its reads.
type countingLoader struct {
	mu    sync.Mutex
	plans map[ecoid.ID]billing.PlanID
	reads atomic.Int64
	err   error
	// inFlight, when set, is called during a read, after the value was taken.
	inFlight func()
}

func (l *countingLoader) load(_ context.Context, u ecoid.ID) (billing.PlanID, billing.Terms, error) {
	l.reads.Add(1)
	l.mu.Lock()
	p, err := l.plans[u], l.err
	l.mu.Unlock()
	if l.inFlight != nil {
		l.inFlight()
	}
	if err != nil {
		return "", billing.Terms{}, err
	}
	if p == "" {
		p = billing.Free
	}
	t, _ := billing.TermsFor(p)
	return p, t, nil
}

func (l *countingLoader) set(u ecoid.ID, p billing.PlanID) {
	l.mu.Lock()
	l.plans[u] = p
	l.mu.Unlock()
}

func newLoader() *countingLoader { return &countingLoader{plans: map[ecoid.ID]billing.PlanID{}} }

func TestTermsCacheHitsInvalidatesAndPurges(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{})
	a, b := ecoid.New(ecoid.User), ecoid.New(ecoid.User)
	l.set(a, billing.Pro)
	for range 3 {
		if p, terms, err := c.Get(ctx, a); err != nil || p != billing.Pro || terms != billing.ProTerms {
			t.Fatalf("Get = %s %+v %v", p, terms, err)
		}
	}
	if limit, hard, err := c.QuotaFor(ctx, b); err != nil || limit != 1000 || !hard {
		t.Fatalf("QuotaFor(free) = %d %v %v", limit, hard, err)
	}
	if n := l.reads.Load(); n != 2 {
		t.Fatalf("%d store reads for 4 lookups of 2 users, want 2", n)
	}
	l.set(a, billing.Free)
	if p, _, _ := c.Get(ctx, a); p != billing.Pro {
		t.Fatal("the cache read the store without an invalidation") // documents the contract
	}
	c.Invalidate(a)
	if p, _, _ := c.Get(ctx, a); p != billing.Free {
		t.Fatalf("after Invalidate: %s, want free", p)
	}
	l.set(a, billing.Pro)
	l.set(b, billing.Pro)
	c.Purge()
	if c.Len() != 0 {
		t.Fatalf("Len after Purge = %d", c.Len())
	}
	for _, u := range []ecoid.ID{a, b} {
		if p, _, _ := c.Get(ctx, u); p != billing.Pro {
			t.Fatalf("after Purge: %s, want pro", p)
		}
	}
}

func TestTermsCacheDoesNotCacheErrors(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	l.err = errors.New("store down")
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{})
	u := ecoid.New(ecoid.User)
	if _, _, err := c.QuotaFor(ctx, u); err == nil {
		t.Fatal("no error from a failing loader")
	}
	l.mu.Lock()
	l.err = nil
	l.mu.Unlock()
	if _, _, err := c.Get(ctx, u); err != nil {
		t.Fatalf("an error was cached: %v", err)
	}
}

func TestTermsCacheTTL(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	clk := storagetest.NewClock(testNow)
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{TTL: 10 * time.Second, Now: clk.Now})
	u := ecoid.New(ecoid.User)
	c.Get(ctx, u)
	l.set(u, billing.Pro)
	clk.Set(testNow.Add(9 * time.Second))
	if p, _, _ := c.Get(ctx, u); p != billing.Free {
		t.Fatal("expired early")
	}
	clk.Set(testNow.Add(10 * time.Second))
	if p, _, _ := c.Get(ctx, u); p != billing.Pro {
		t.Fatal("an entry outlived its TTL")
	}
	never := billing.NewTermsCache(l.load, billing.TermsCacheConfig{TTL: -1, Now: clk.Now})
	never.Get(ctx, u)
	l.set(u, billing.Free)
	clk.Set(testNow.AddDate(1, 0, 0))
	if p, _, _ := never.Get(ctx, u); p != billing.Pro {
		t.Fatal("a negative TTL expired")
	}
}

func TestTermsCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{Size: 320})
	for range 5_000 {
		c.Get(ctx, ecoid.New(ecoid.User))
	}
	if n := c.Len(); n > 320 || n < 100 {
		t.Fatalf("Len = %d after 5,000 users with Size 320", n)
	}
}

// TestTermsCacheInvalidateDuringLoad: a read that started before a plan change and
// finished after its invalidation must not put the old plan back in the cache.
func TestTermsCacheInvalidateDuringLoad(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{})
	u := ecoid.New(ecoid.User)
	l.inFlight = func() {
		// The webhook commits Pro and invalidates while this read holds the old Free.
		l.inFlight = nil
		l.set(u, billing.Pro)
		c.Invalidate(u)
	}
	if p, _, _ := c.Get(ctx, u); p != billing.Free {
		t.Fatalf("the in-flight read returned %s", p)
	}
	if p, _, _ := c.Get(ctx, u); p != billing.Pro {
		t.Fatal("a read older than an invalidation was cached")
	}
	// The same for Purge.
	l.inFlight = func() {
		l.inFlight = nil
		l.set(u, billing.Free)
		c.Purge()
	}
	c.Invalidate(u)
	c.Get(ctx, u)
	if p, _, _ := c.Get(ctx, u); p != billing.Free {
		t.Fatal("a read older than a purge was cached")
	}
}

// Requests that miss one user while a read of it is in flight wait for that read: one
// store read, whatever their number (a late one finds the entry cached).
func TestTermsCacheMissesShareOneRead(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{})
	u := ecoid.New(ecoid.User)
	l.set(u, billing.Pro)
	reading, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	l.inFlight = func() { first.Do(func() { close(reading) }); <-release }
	results := make(chan billing.PlanID, 50)
	go func() { p, _, _ := c.Get(ctx, u); results <- p }()
	<-reading
	var wg sync.WaitGroup
	for range 49 {
		wg.Add(1)
		go func() { defer wg.Done(); p, _, _ := c.Get(ctx, u); results <- p }()
	}
	time.Sleep(20 * time.Millisecond) // let them miss: late ones hit the cache, which is as good
	close(release)
	wg.Wait()
	for range 50 {
		if p := <-results; p != billing.Pro {
			t.Fatalf("a request got %q", p)
		}
	}
	if n := l.reads.Load(); n != 1 {
		t.Fatalf("50 concurrent misses made %d reads, want 1", n)
	}
}

// A read that began before an invalidation is not joined: a request after the
// invalidation reads again, gets the new plan, and the old read is not cached.
func TestTermsCacheMissAfterInvalidateDoesNotJoinOlderRead(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{})
	u := ecoid.New(ecoid.User)
	reading, release := make(chan struct{}), make(chan struct{})
	l.inFlight = func() { l.inFlight = nil; close(reading); <-release }
	old := make(chan billing.PlanID)
	go func() { p, _, _ := c.Get(ctx, u); old <- p }() // reads Free, then waits
	<-reading
	l.set(u, billing.Pro)
	c.Invalidate(u)
	if p, _, err := c.Get(ctx, u); err != nil || p != billing.Pro {
		t.Fatalf("after the invalidation: %q, %v, want pro", p, err)
	}
	close(release)
	if p := <-old; p != billing.Free {
		t.Fatalf("the older read returned %q", p)
	}
	if p, _, _ := c.Get(ctx, u); p != billing.Pro || l.reads.Load() != 2 {
		t.Fatalf("then %q after %d reads, want pro cached after 2", p, l.reads.Load())
	}
}

// When the request that leads a read is canceled and its read fails for it, the requests
// waiting for that read read again instead of failing with the leader's error; a waiter
// whose own context ends stops waiting with its error.
func TestTermsCacheWaitersOutliveTheLeader(t *testing.T) {
	u := ecoid.New(ecoid.User)
	reading := make(chan struct{})
	var reads atomic.Int64
	load := func(ctx context.Context, _ ecoid.ID) (billing.PlanID, billing.Terms, error) {
		if reads.Add(1) == 1 { // the leader's read: ends with its request
			close(reading)
			<-ctx.Done()
			return "", billing.Terms{}, ctx.Err()
		}
		return billing.Pro, billing.ProTerms, nil
	}
	c := billing.NewTermsCache(load, billing.TermsCacheConfig{})
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leader := make(chan error)
	go func() { _, _, err := c.Get(leaderCtx, u); leader <- err }()
	<-reading
	waiter := make(chan billing.PlanID)
	go func() {
		p, _, err := c.Get(context.Background(), u)
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
		waiter <- p
	}()
	gone, giveUp := context.WithCancel(context.Background())
	giveUp()
	if _, _, err := c.Get(gone, u); !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose context ended: %v, want context.Canceled", err)
	}
	time.Sleep(20 * time.Millisecond) // let the waiter join the leader's read
	cancelLeader()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v, want context.Canceled", err)
	}
	if p := <-waiter; p != billing.Pro {
		t.Fatalf("waiter got %q, want pro from a read of its own", p)
	}
}

func TestTermsCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	l := newLoader()
	c := billing.NewTermsCache(l.load, billing.TermsCacheConfig{Size: 64})
	users := make([]ecoid.ID, 200)
	for i := range users {
		users[i] = ecoid.New(ecoid.User)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2_000 {
				u := users[(i*7+g)%len(users)]
				switch i % 50 {
				case 0:
					c.Invalidate(u)
				case 1:
					if g == 0 {
						c.Purge()
					}
				default:
					if _, _, err := c.Get(ctx, u); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 64 {
		t.Fatalf("Len %d over Size 64", c.Len())
	}
}

// TestOnPlanChange: the hook hears of each committed change from a webhook once, and of
// nothing else.
func TestOnPlanChange(t *testing.T) {
	var mu sync.Mutex
	var heard []ecoid.ID
	fs := &failingStore{BillingStore: memory.NewBillingStore()}
	e := newEnvWith(t, fs, false, func(c *billing.Config) {
		c.OnPlanChange = func(_ context.Context, u ecoid.ID) { mu.Lock(); heard = append(heard, u); mu.Unlock() }
	})
	calls := func() []ecoid.ID { mu.Lock(); defer mu.Unlock(); return append([]ecoid.ID(nil), heard...) }
	u := e.user(t)
	cache := billing.NewTermsCache(e.svc.PlanTerms, billing.TermsCacheConfig{})
	if p, _, _ := cache.Get(context.Background(), u); p != billing.Free {
		t.Fatal(p)
	}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	active := stripeEvent(evtID(), "customer.subscription.updated", testNow, subscriptionObj(u, "sub_h", "cus_h", "active", proPrice, false, start))
	fs.fail.Store(true)
	if status, _ := e.deliver(t, active); status != 500 || len(calls()) != 0 {
		t.Fatalf("a rolled back change was announced: %d %v", status, calls())
	}
	fs.fail.Store(false)
	if status, _ := e.deliver(t, active); status != 200 {
		t.Fatal(status)
	}
	if got := calls(); len(got) != 1 || got[0] != u {
		t.Fatalf("heard %v after the change, want [%s]", got, u)
	}
	e.deliver(t, active) // duplicate
	// A newer event that changes nothing the plan depends on.
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(time.Second), subscriptionObj(u, "sub_h", "cus_h", "active", proPrice, false, start)))
	// An older event, ignored by the ordering rule.
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(-time.Hour), subscriptionObj(u, "sub_h", "cus_h", "past_due", proPrice, false, start)))
	if got := calls(); len(got) != 1 {
		t.Fatalf("heard %v; duplicates, no-ops and stale events must be silent", got)
	}
	// The server wires the hook to the cache (and its fan-out): here by hand.
	cache.Invalidate(u)
	if p, terms, _ := cache.Get(context.Background(), u); p != billing.Pro || terms != billing.ProTerms {
		t.Fatalf("cache after the change: %s %+v", p, terms)
	}
	if _, err := e.svc.SetEnterprise(context.Background(), u, "", billing.Terms{QuotaCalls: 1}); err != nil {
		t.Fatal(err)
	}
	if got := calls(); len(got) != 2 || got[1] != u {
		t.Fatalf("SetEnterprise was not announced: %v", got)
	}
}
