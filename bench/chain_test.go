package bench

import (
	"context"
	"net/http"
	"testing"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

// nullWriter is the cheapest http.ResponseWriter, so the benchmark measures middleware
// rather than a recorder.
type nullWriter struct {
	h    http.Header
	code int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkAPIKeyChain measures the full API-key middleware chain: the same handler
// bare, behind authenticate + usage tracking + rate limit (the target: ≤ 1.5 µs more
// than bare), and with the monthly quota as well, as examples/server runs it. In-process
// stores; the rate limit is set high enough never to run out during the run.
func BenchmarkAPIKeyChain(b *testing.B) {
	ctx := context.Background()
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	defer keys.Close(ctx)
	owner := ecoid.New(ecoid.User)
	_, plain, err := keys.Create(ctx, apikey.CreateParams{Owner: owner, Name: "bench", Scopes: []string{"read"}})
	if err != nil {
		b.Fatal(err)
	}
	store := memory.NewUsageStore()
	// The tracker writes to a store that keeps nothing: what is measured is the request
	// path, not the background writer (whose own figures are in the usage benchmarks).
	tracker := usage.NewTracker(discardUsage{}, usage.Config{})
	defer tracker.Close(ctx)
	identify := func(r *http.Request) (ecoid.ID, ecoid.ID, bool) {
		k, ok := apikey.KeyFrom(r.Context())
		return k.ID, k.Owner, ok
	}
	quota := usage.NewQuota(store, func(context.Context, ecoid.ID) (int64, bool, error) {
		return -1, false, nil // unlimited, so the count never refuses during the run
	}, usage.QuotaConfig{})
	owned := func(r *http.Request) (ecoid.ID, bool) {
		k, ok := apikey.KeyFrom(r.Context())
		return k.Owner, ok
	}
	rate := apikey.RateLimit(memory.NewLimiter(), apikey.RateLimitOptions{Limit: func(apikey.Key) int { return 50_000_000 }})

	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	authn := apikey.Authenticate(keys, apikey.AuthOptions{})
	track := usage.Middleware(tracker, identify, usage.MiddlewareConfig{})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", handler},
		{"auth+track+rate", authn(track(rate(handler)))},
		{"auth+track+quota+rate", authn(track(quota.Middleware(owned)(rate(handler))))},
	} {
		b.Run(c.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, "/api/v1/ping", nil)
			req.Header.Set("Authorization", "ApiKey "+plain)
			b.ReportAllocs()
			for b.Loop() {
				w := &nullWriter{h: http.Header{}}
				c.h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// discardUsage is a usage.Writer that accepts every batch and keeps nothing.
type discardUsage struct{}

func (discardUsage) WriteBatch(context.Context, []usage.Record) error { return nil }
