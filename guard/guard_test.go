package guard_test

import (
	"context"
	"encoding/json"
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

// countingLimiter counts the decisions it is asked for, so a test can see that a refused
// request took no rate-limit slot.
type countingLimiter struct {
	apikey.Limiter
	calls atomic.Int64
	err   error
}

func (l *countingLimiter) Allow(ctx context.Context, key string, limit apikey.Limit) (apikey.Decision, error) {
	l.calls.Add(1)
	if l.err != nil {
		return apikey.Decision{}, l.err
	}
	return l.Limiter.Allow(ctx, key, limit)
}

// fixture is a guarded handler over in-memory stores with a quota of quota calls.
type fixture struct {
	t       *testing.T
	keys    *apikey.Service
	counter *memory.UsageStore
	limiter *countingLimiter
	tracker *usage.Tracker
	owner   ecoid.ID
	h       http.Handler
}

func newFixture(t *testing.T, quota int64, hardCap bool, cfg guard.Config) *fixture {
	t.Helper()
	f := &fixture{t: t, keys: apikey.NewService(memory.NewKeyStore(), apikey.Config{}), counter: memory.NewUsageStore(),
		limiter: &countingLimiter{Limiter: memory.NewLimiter()}, owner: ecoid.New(ecoid.User)}
	f.tracker = usage.NewTracker(f.counter, usage.Config{})
	t.Cleanup(func() {
		_ = f.tracker.Close(context.Background())
		_ = f.keys.Close(context.Background())
	})
	plans := func(context.Context, ecoid.ID) (int64, bool, error) { return quota, hardCap, nil }
	cfg.Keys, cfg.Tracker = f.keys, f.tracker
	if cfg.Admission == nil {
		cfg.Admission = guard.NewLimits(f.limiter, f.counter, plans)
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"read"}
	}
	f.h = guard.New(cfg)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, ok := apikey.KeyFrom(r.Context())
		if !ok {
			t.Error("the handler sees no key")
		}
		w.Header().Set("X-Key", string(k.ID))
		w.WriteHeader(http.StatusOK)
	}))
	return f
}

// key creates a key of the fixture's owner.
func (f *fixture) key(perMinute int, scopes ...string) string {
	f.t.Helper()
	_, plain, err := f.keys.Create(context.Background(), apikey.CreateParams{Owner: f.owner, Name: "t", Scopes: scopes, RateLimitPerMinute: perMinute})
	if err != nil {
		f.t.Fatal(err)
	}
	return plain
}

// call sends one request with key and returns the answer and its error code.
func (f *fixture) call(key string) (*httptest.ResponseRecorder, string) {
	r := httptest.NewRequest("GET", "/api/v1/ping", nil)
	if key != "" {
		r.Header.Set("Authorization", "ApiKey "+key)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return w, e.Error.Code
}

func (f *fixture) used() int64 {
	f.t.Helper()
	n, err := f.counter.PeriodCalls(context.Background(), f.owner, usage.PeriodStart(time.Now()))
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func TestMissingOrBadKeyIs401AndUntracked(t *testing.T) {
	f := newFixture(t, 10, true, guard.Config{})
	for _, key := range []string{"", "eco_api_nope.secret", "not a key"} {
		if w, code := f.call(key); w.Code != 401 || code == "" || w.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("key %q: %d %s", key, w.Code, code)
		}
	}
	if f.limiter.calls.Load() != 0 || f.used() != 0 || f.tracker.Stats().Accepted != 0 {
		t.Fatalf("a 401 touched a limit or was tracked: %d rate, %d quota, %+v", f.limiter.calls.Load(), f.used(), f.tracker.Stats())
	}
}

func TestScopeRefusalCostsNeitherQuotaNorRate(t *testing.T) {
	f := newFixture(t, 10, true, guard.Config{})
	key := f.key(5, "write")
	for range 3 {
		if w, code := f.call(key); w.Code != 403 || code != "insufficient_scope" {
			t.Fatalf("key without the scope: %d %s", w.Code, code)
		}
	}
	if f.limiter.calls.Load() != 0 || f.used() != 0 {
		t.Fatalf("a 403 took %d rate-limit decisions and %d calls of the month", f.limiter.calls.Load(), f.used())
	}
	if st := f.tracker.Stats(); st.Accepted != 3 {
		t.Fatalf("403s must be tracked: %+v", st)
	}
}

func TestRateRefusalCostsNoQuota(t *testing.T) {
	f := newFixture(t, 100, true, guard.Config{})
	key := f.key(2, "read")
	var ok, limited int
	for range 5 {
		w, code := f.call(key)
		switch {
		case w.Code == 200:
			ok++
		case w.Code == 429 && code == "rate_limited" && w.Header().Get("Retry-After") != "" && w.Header().Get("X-RateLimit-Remaining") == "0":
			limited++
		default:
			t.Fatalf("unexpected answer %d %s %v", w.Code, code, w.Header())
		}
	}
	if ok != 2 || limited != 3 || f.used() != 2 {
		t.Fatalf("%d served, %d rate-limited, %d calls counted; want 2, 3, 2", ok, limited, f.used())
	}
}

func TestQuotaRefusalCostsNoRateSlot(t *testing.T) {
	f := newFixture(t, 2, true, guard.Config{})
	key := f.key(3, "read")
	for i := range 2 {
		if w, _ := f.call(key); w.Code != 200 || w.Header().Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("call %d: %d %v", i+1, w.Code, w.Header())
		}
	}
	for range 4 {
		w, code := f.call(key)
		if w.Code != 429 || code != "quota_exceeded" || w.Header().Get("Retry-After") == "" ||
			w.Header().Get("X-Quota-Limit") != "2" || w.Header().Get("X-RateLimit-Limit") != "" {
			t.Fatalf("over the hard cap: %d %s %v", w.Code, code, w.Header())
		}
	}
	if n := f.limiter.calls.Load(); n != 2 || f.used() != 2 {
		t.Fatalf("quota refusals took rate-limit slots: %d decisions, %d calls counted; want 2 and 2", n, f.used())
	}
}

func TestSoftQuotaServesCallsOverIt(t *testing.T) {
	f := newFixture(t, 1, false, guard.Config{})
	key := f.key(10, "read")
	for i := range 4 {
		if w, _ := f.call(key); w.Code != 200 {
			t.Fatalf("call %d over a soft quota: %d", i+1, w.Code)
		}
	}
	if f.used() != 4 {
		t.Fatalf("counted %d calls, want 4 (the overage is billed)", f.used())
	}
}

func TestHardCapIsExactUnderConcurrency(t *testing.T) {
	f := newFixture(t, 50, true, guard.Config{})
	key := f.key(apikey.MaxRateLimitPerMinute, "read")
	var served, refused atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch w, code := f.call(key); {
			case w.Code == 200:
				served.Add(1)
			case code == "quota_exceeded":
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if served.Load() != 50 || refused.Load() != 150 || f.used() != 50 {
		t.Fatalf("%d served, %d refused, %d counted; want 50, 150, 50", served.Load(), refused.Load(), f.used())
	}
}

func TestEveryAuthenticatedRequestIsTracked(t *testing.T) {
	f := newFixture(t, 1, true, guard.Config{})
	good, noScope := f.key(10, "read"), f.key(10)
	f.call("")      // 401: not tracked
	f.call(good)    // 200
	f.call(good)    // 429 quota_exceeded
	f.call(noScope) // 403
	if err := f.tracker.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	eps, err := f.counter.Endpoints(context.Background(), f.owner, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].Calls != 3 || eps[0].ErrorRate < 0.66 || eps[0].ErrorRate > 0.67 {
		t.Fatalf("tracked %+v, want 3 calls of which 2 errors", eps)
	}
}

func TestAdmissionFailures(t *testing.T) {
	t.Run("limiter down fails closed", func(t *testing.T) {
		f := newFixture(t, 10, false, guard.Config{})
		f.limiter.err = errors.New("connection refused")
		if w, code := f.call(f.key(5, "read")); w.Code != 503 || code != "rate_limiter_unavailable" || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("%d %s", w.Code, code)
		}
		if f.used() != 0 {
			t.Fatal("a request the limiter could not decide was counted")
		}
	})
	t.Run("quota down fails closed", func(t *testing.T) {
		f := newFixture(t, 10, false, guard.Config{Admission: guard.NewLimits(memory.NewLimiter(), memory.NewUsageStore(),
			func(context.Context, ecoid.ID) (int64, bool, error) { return 0, false, errors.New("db down") })})
		if w, code := f.call(f.key(5, "read")); w.Code != 503 || code != "quota_unavailable" {
			t.Fatalf("%d %s", w.Code, code)
		}
	})
	t.Run("fail open serves", func(t *testing.T) {
		f := newFixture(t, 10, false, guard.Config{FailOpen: true})
		f.limiter.err = errors.New("connection refused")
		if w, _ := f.call(f.key(5, "read")); w.Code != 200 {
			t.Fatalf("FailOpen: %d", w.Code)
		}
	})
}

// admitAll is an Admission of another kind, as a combined or leased decision would be.
type admitAll struct{ seen atomic.Int64 }

func (a *admitAll) Admit(_ context.Context, k apikey.Key) (guard.Decision, error) {
	a.seen.Add(1)
	return guard.Decision{Allowed: true}, nil
}

func TestAdmissionIsReplaceable(t *testing.T) {
	adm := &admitAll{}
	f := newFixture(t, 0, true, guard.Config{Admission: adm})
	if w, _ := f.call(f.key(1, "read")); w.Code != 200 || adm.seen.Load() != 1 || w.Header().Get("X-RateLimit-Limit") != "" {
		t.Fatalf("custom admission: %d, %d decisions, headers %v", w.Code, adm.seen.Load(), w.Header())
	}
}

func TestNewPanicsWithoutKeysOrAdmission(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a Config without Keys and Admission")
		}
	}()
	guard.New(guard.Config{})
}

// Both admissions count each call in the quota period of the moment it is made: a hard
// cap used up in March is full again on 1 April, with Retry-After counting to the end of
// the period in force, and a clock set back to March finds March's count.
func TestAdmissionsFollowTheQuotaPeriod(t *testing.T) {
	march := time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)
	for _, leased := range []bool{false, true} {
		store := memory.NewUsageStore()
		now := march
		clock := func() time.Time { return now }
		plans := func(context.Context, ecoid.ID) (int64, bool, error) { return 2, true, nil }
		var a guard.Admission = guard.NewLimits(memory.NewLimiter(), store, plans, guard.WithClock(clock))
		if leased {
			counter := usage.NewLeasedCounter(store, usage.LeaseConfig{Now: clock})
			t.Cleanup(func() { _ = counter.Close(context.Background()) })
			a = guard.NewLeased(memory.NewLimiter(), counter, plans, guard.WithClock(clock))
		}
		key := apikey.Key{ID: ecoid.New(ecoid.APIKey), Owner: ecoid.New(ecoid.User), RateLimitPerMinute: 1000}
		admit := func(want bool, retryAfter time.Duration) {
			t.Helper()
			d, err := a.Admit(context.Background(), key)
			if err != nil || d.Allowed != want || d.Quota.RetryAfter != retryAfter {
				t.Fatalf("leased %v at %v: allowed %v, retry after %v (err %v); want %v, %v",
					leased, now, d.Allowed, d.Quota.RetryAfter, err, want, retryAfter)
			}
		}
		admit(true, time.Minute)
		admit(true, time.Minute)
		admit(false, time.Minute)
		now = now.Add(2 * time.Minute) // 1 April, 00:01
		admit(true, 30*24*time.Hour-time.Minute)
		now = march
		admit(false, time.Minute)
	}
}
