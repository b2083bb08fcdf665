package guard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/guard"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

// discard is a usage store that keeps nothing, so the benchmark measures the request path.
type discard struct{}

func (discard) WriteBatch(context.Context, []usage.Record) error { return nil }

var okBody = []byte(`{"ok":true}` + "\n")

func okHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(okBody)
}

// benchServe runs h on one request per iteration with a reused recorder, cycling through
// the keys, and fails when an answer is not 200.
func benchServe(b *testing.B, h http.Handler, plains []string) {
	reqs := make([]*http.Request, len(plains))
	for i, p := range plains {
		reqs[i] = httptest.NewRequest("GET", "/api/v1/ping", nil)
		reqs[i].Header.Set("Authorization", "ApiKey "+p)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := httptest.NewRecorder()
		i := int(next.Add(7919))
		for pb.Next() {
			w.Body.Reset()
			clear(w.Header())
			w.Code = 200
			i++
			h.ServeHTTP(w, reqs[i%len(reqs)])
			if w.Code != 200 {
				b.Errorf("answer %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}

// BenchmarkChain is the whole guard over memory stores for a Pro user (a soft quota: no
// peek), beside BenchmarkBare. The user has 256 keys at the highest rate limit, so that
// the limiter admits every request (one key allows one request per 60 µs).
func BenchmarkChain(b *testing.B) {
	ctx := context.Background()
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{MaxKeysPerOwner: 256})
	defer keys.Close(ctx)
	calls := memory.NewUsageStore()
	plans := billing.NewService(memory.NewBillingStore(), billing.Config{})
	owner := ecoid.New(ecoid.User)
	if _, err := plans.SetEnterprise(ctx, owner, "pro@example.com", billing.ProTerms); err != nil {
		b.Fatal(err)
	}
	tracker := usage.NewTracker(discard{}, usage.Config{})
	defer tracker.Close(ctx)
	h := guard.New(guard.Config{Keys: keys, Scopes: []string{"read"}, Tracker: tracker,
		Admission: guard.NewLimits(memory.NewLimiter(), calls, plans.QuotaFor)})(http.HandlerFunc(okHandler))
	benchServe(b, h, benchKeys(b, keys, owner))
}

// benchKeys creates 256 keys of owner with the largest rate limit, so that no run is
// rate limited, and returns their plain text.
func benchKeys(b *testing.B, keys *apikey.Service, owner ecoid.ID) []string {
	plains := make([]string, 256)
	for i := range plains {
		_, p, err := keys.Create(context.Background(), apikey.CreateParams{Owner: owner, Name: "b", Scopes: []string{"read"}, RateLimitPerMinute: apikey.MaxRateLimitPerMinute})
		if err != nil {
			b.Fatal(err)
		}
		plains[i] = p
	}
	return plains
}

func BenchmarkBare(b *testing.B) { benchServe(b, http.HandlerFunc(okHandler), []string{"x"}) }

// BenchmarkLeased is BenchmarkChain with the many-instance admission of the Postgres
// mode (quota leases, rate-limit token leases, a plan-terms cache, budgets on store
// calls), over memory stores: what the leasing itself costs on the request path.
func BenchmarkLeased(b *testing.B) {
	ctx := context.Background()
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{MaxKeysPerOwner: 256})
	defer keys.Close(ctx)
	plans := billing.NewService(memory.NewBillingStore(), billing.Config{})
	owner := ecoid.New(ecoid.User)
	if _, err := plans.SetEnterprise(ctx, owner, "pro@example.com", billing.ProTerms); err != nil {
		b.Fatal(err)
	}
	terms := billing.NewTermsCache(plans.PlanTerms, billing.TermsCacheConfig{})
	counter := usage.NewLeasedCounter(memory.NewUsageStore(), usage.LeaseConfig{Budget: guard.DefaultBudget})
	defer counter.Close(ctx)
	tracker := usage.NewTracker(discard{}, usage.Config{})
	defer tracker.Close(ctx)
	limiter := apikey.NewLeasedLimiter(memory.NewTokenStore(), apikey.WithBudget(guard.DefaultBudget))
	adm := guard.NewLeased(limiter, counter, terms.QuotaFor)
	h := guard.New(guard.Config{Keys: keys, Scopes: []string{"read"}, Tracker: tracker,
		Admission: adm})(http.HandlerFunc(okHandler))
	benchServe(b, h, benchKeys(b, keys, owner))
}
