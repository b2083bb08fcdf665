package apikey_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

func benchService(b *testing.B) (*apikey.Service, string) {
	b.Helper()
	s := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	_, plain, err := s.Create(context.Background(), apikey.CreateParams{Owner: alice, Name: "bench", Scopes: []string{"read"}, RateLimitPerMinute: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Verify(context.Background(), plain); err != nil {
		b.Fatal(err)
	}
	return s, plain
}

// BenchmarkVerifyCached is a verification answered by the cache: parse, SHA-256,
// lookup, constant-time compare, status and expiry.
func BenchmarkVerifyCached(b *testing.B) {
	s, plain := benchService(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Verify(ctx, plain); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Verify(ctx, plain); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func TestVerifyCachedDoesNotAllocate(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	_, plain := create(t, s, apikey.CreateParams{})
	ctx := context.Background()
	s.Verify(ctx, plain)
	if n := testing.AllocsPerRun(200, func() { _, _ = s.Verify(ctx, plain) }); n != 0 {
		t.Fatalf("a cached Verify allocates %v times", n)
	}
}

// TestAuthenticateAllocatesOnlyTheRequestCopy: on a cached key, Authenticate costs the
// copy of the request that carries the new context and the context itself, nothing else.
func TestAuthenticateAllocatesOnlyTheRequestCopy(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	k, plain := create(t, s, apikey.CreateParams{Scopes: []string{"read"}})
	var seen apikey.Key
	h := apikey.Authenticate(s, apikey.AuthOptions{})(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen, _ = apikey.KeyFrom(r.Context())
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "ApiKey "+plain)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if seen.ID != k.ID || !seen.HasScope("read") {
		t.Fatalf("the handler saw key %+v, want %s", seen, k.ID)
	}
	if n := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, req) }); n > 2 {
		t.Fatalf("Authenticate allocates %v times per request, want at most 2 (the request copy and its context)", n)
	}
}

// BenchmarkMiddlewareChain compares a bare handler with the same handler behind
// Authenticate, RequireScopes and RateLimit (in-process limiter); the difference is the
// cost of the chain.
func BenchmarkMiddlewareChain(b *testing.B) {
	s, plain := benchService(b)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	full := func() http.Handler { // a limit of 50M/min: the burst never runs out
		return chain(handler, apikey.Authenticate(s, apikey.AuthOptions{}), apikey.RequireScopes("read"),
			apikey.RateLimit(memory.NewLimiter(), apikey.RateLimitOptions{Limit: func(apikey.Key) int { return 50_000_000 }}))
	}
	for _, c := range []struct {
		name string
		h    func() http.Handler
	}{{"bare", func() http.Handler { return handler }}, {"chain", full}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			h := c.h()
			req := httptest.NewRequest("GET", "/api/v1/ping", nil)
			req.Header.Set("Authorization", "ApiKey "+plain)
			for b.Loop() {
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// discardWriter is the cheapest http.ResponseWriter, so the benchmark measures the
// middleware rather than a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
