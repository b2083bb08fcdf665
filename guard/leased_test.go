package guard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/guard"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

// leasedFixture is a guarded handler whose admission is guard.Leased over in-memory
// stores: the block counter and the token store stand for a shared database.
type leasedFixture struct {
	keys    *apikey.Service
	store   *memory.UsageStore
	counter *usage.LeasedCounter
	owner   ecoid.ID
	h       http.Handler
}

func newLeasedFixture(t *testing.T, quota int64, store *memory.UsageStore, tokens apikey.TokenStore, handler http.Handler) *leasedFixture {
	t.Helper()
	f := &leasedFixture{keys: apikey.NewService(memory.NewKeyStore(), apikey.Config{}), store: store, owner: ecoid.New(ecoid.User)}
	f.counter = usage.NewLeasedCounter(store, usage.LeaseConfig{})
	t.Cleanup(func() {
		_ = f.counter.Close(context.Background())
		_ = f.keys.Close(context.Background())
	})
	plans := func(context.Context, ecoid.ID) (int64, bool, error) { return quota, true, nil }
	adm := guard.Budget(guard.NewLeased(apikey.NewLeasedLimiter(tokens), f.counter, plans), 0)
	if handler == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	}
	f.h = guard.New(guard.Config{Keys: f.keys, Admission: adm, Scopes: []string{"read"}})(handler)
	return f
}

func (f *leasedFixture) key(t *testing.T, perMinute int) string {
	t.Helper()
	_, plain, err := f.keys.Create(context.Background(), apikey.CreateParams{Owner: f.owner, Name: "t", Scopes: []string{"read"}, RateLimitPerMinute: perMinute})
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func (f *leasedFixture) status(key string) int {
	r := httptest.NewRequest("GET", "/api/v1/ping", nil)
	r.Header.Set("Authorization", "ApiKey "+key)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w.Code
}

func (f *leasedFixture) used(t *testing.T) int64 {
	t.Helper()
	n, err := f.counter.PeriodCalls(context.Background(), f.owner, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLeasedRateRefusalCostsNoQuota(t *testing.T) {
	f := newLeasedFixture(t, 100, memory.NewUsageStore(), memory.NewTokenStore(), nil)
	key := f.key(t, 2)
	var codes []int
	for range 5 {
		codes = append(codes, f.status(key))
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 || codes[4] != 429 {
		t.Fatalf("statuses %v, want two 200s then 429s", codes)
	}
	if n := f.used(t); n != 2 {
		t.Fatalf("3 rate-limited requests cost quota: %d used, want 2", n)
	}
}

// Two instances (two fixtures) over one store race a hard cap of 50 with many
// goroutines: exactly 50 requests are served.
func TestLeasedHardCapAcrossInstances(t *testing.T) {
	store, tokens := memory.NewUsageStore(), memory.NewTokenStore()
	a := newLeasedFixture(t, 50, store, tokens, nil)
	b := newLeasedFixture(t, 50, store, tokens, nil)
	b.owner = a.owner
	keyA, keyB := a.key(t, 100_000), b.key(t, 100_000)
	var served atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, key := a, keyA
			if i%2 == 1 {
				f, key = b, keyB
			}
			for range 20 {
				if f.status(key) == 200 {
					served.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if served.Load() != 50 {
		t.Fatalf("two instances served %d calls under a hard cap of 50", served.Load())
	}
}

// A request whose client went away before the handler answered costs no quota.
func TestLeasedUndeliveredAnswerCostsNoQuota(t *testing.T) {
	entered := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // the client is gone
		w.WriteHeader(http.StatusOK)
	})
	f := newLeasedFixture(t, 10, memory.NewUsageStore(), memory.NewTokenStore(), handler)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/ping", nil)
	req.Header.Set("Authorization", "ApiKey "+f.key(t, 100))
	go func() { <-entered; cancel() }()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request was answered")
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.used(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("an answer the client never received still costs %d calls", f.used(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stallingCounter is a block counter whose store never answers: every call waits for its
// context, as on a locked table.
type stallingCounter struct{ *memory.UsageStore }

func (stallingCounter) TakeCalls(ctx context.Context, _ ecoid.ID, _ time.Time, _, _ int64, _ bool) (int64, int64, error) {
	<-ctx.Done()
	return 0, 0, ctx.Err()
}

// stallingKeys is a key store whose lookups never answer.
type stallingKeys struct{ apikey.Store }

func (stallingKeys) Get(ctx context.Context, _ ecoid.ID) (apikey.Record, error) {
	<-ctx.Done()
	return apikey.Record{}, ctx.Err()
}

// A store that stalls is answered 503 within the budget, for the quota and for a key
// that is not cached; nothing waits on the stalled call.
func TestStalledStoreIs503(t *testing.T) {
	counter := usage.NewLeasedCounter(stallingCounter{memory.NewUsageStore()}, usage.LeaseConfig{})
	defer counter.Close(context.Background())
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	defer keys.Close(context.Background())
	owner := ecoid.New(ecoid.User)
	_, plain, _ := keys.Create(context.Background(), apikey.CreateParams{Owner: owner, Name: "t", Scopes: []string{"read"}})
	plans := func(context.Context, ecoid.ID) (int64, bool, error) { return 100, true, nil }
	adm := guard.Budget(guard.NewLeased(memory.NewLimiter(), counter, plans), 50*time.Millisecond)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := guard.New(guard.Config{Keys: keys, Admission: adm})(ok)
	r := httptest.NewRequest("GET", "/api/v1/ping", nil)
	r.Header.Set("Authorization", "ApiKey "+plain)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 503 {
		t.Fatalf("a stalled quota store: %d, want 503", w.Code)
	}

	slowKeys := apikey.NewService(stallingKeys{memory.NewKeyStore()}, apikey.Config{})
	defer slowKeys.Close(context.Background())
	h = guard.New(guard.Config{Keys: guard.VerifyBudget(slowKeys, 50*time.Millisecond), Admission: adm})(ok)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 503 {
		t.Fatalf("a stalled key store: %d, want 503", w.Code)
	}
	if _, err := guard.VerifyBudget(slowKeys, 10*time.Millisecond).Verify(context.Background(), plain); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify past its budget: %v", err)
	}
}

// The default admission refunds an undelivered answer too.
func TestLimitsUndeliveredAnswerCostsNoQuota(t *testing.T) {
	entered := make(chan struct{})
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	defer keys.Close(context.Background())
	store := memory.NewUsageStore()
	owner := ecoid.New(ecoid.User)
	_, plain, _ := keys.Create(context.Background(), apikey.CreateParams{Owner: owner, Name: "t", Scopes: []string{"read"}})
	plans := func(context.Context, ecoid.ID) (int64, bool, error) { return 10, true, nil }
	h := guard.New(guard.Config{Keys: keys, Admission: guard.NewLimits(memory.NewLimiter(), store, plans)})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
			w.WriteHeader(http.StatusOK)
		}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	req.Header.Set("Authorization", "ApiKey "+plain)
	go func() { <-entered; cancel() }()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request was answered")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := store.PeriodCalls(context.Background(), owner, time.Now())
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an answer the client never received still costs %d calls", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The same with the budgets the leased parts apply themselves (what examples/server
// uses: no timer on the hot path): a stalled store is 503, quota, rate limit and key.
func TestStalledStoreIs503WithBuiltInBudgets(t *testing.T) {
	counter := usage.NewLeasedCounter(stallingCounter{memory.NewUsageStore()}, usage.LeaseConfig{Budget: 50 * time.Millisecond})
	defer counter.Close(context.Background())
	keys := apikey.NewService(stallingKeys{memory.NewKeyStore()}, apikey.Config{LookupBudget: 50 * time.Millisecond})
	defer keys.Close(context.Background())
	fast := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	defer fast.Close(context.Background())
	owner := ecoid.New(ecoid.User)
	_, plain, _ := fast.Create(context.Background(), apikey.CreateParams{Owner: owner, Name: "t", Scopes: []string{"read"}})
	plans := func(context.Context, ecoid.ID) (int64, bool, error) { return 100, true, nil }
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	limiter := apikey.NewLeasedLimiter(stallingTokens{}, apikey.WithBudget(50*time.Millisecond))
	for name, h := range map[string]http.Handler{
		"quota": guard.New(guard.Config{Keys: fast, Admission: guard.NewLeased(limiter, counter, plans)})(ok),
		"key":   guard.New(guard.Config{Keys: keys, Admission: guard.NewLeased(limiter, counter, plans)})(ok),
		"rate": guard.New(guard.Config{Keys: fast, Admission: guard.NewLeased(limiter,
			usage.NewLeasedCounter(memory.NewUsageStore(), usage.LeaseConfig{}), plans)})(ok),
	} {
		r := httptest.NewRequest("GET", "/api/v1/ping", nil)
		r.Header.Set("Authorization", "ApiKey "+plain)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 503 {
			t.Errorf("a stalled %s store: %d, want 503", name, w.Code)
		}
	}
}

// stallingTokens is a token store that never answers.
type stallingTokens struct{}

func (stallingTokens) TakeTokens(ctx context.Context, _ string, _ apikey.Limit, _ int, _ time.Duration) (apikey.TokenGrant, error) {
	<-ctx.Done()
	return apikey.TokenGrant{}, ctx.Err()
}
