package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// BenchmarkPingRoute is the API-key route through the whole server handler (request log,
// recovery, metrics, CSRF, router, guard chain) in memory mode, without the network:
// what the server adds per request beyond net/http, with one hot key at a time.
func BenchmarkPingRoute(b *testing.B) { benchmarkPing(b, 1, 16, 250_000) }

// BenchmarkPingRouteManyKeys is BenchmarkPingRoute with 1,000 keys of 100 users, each
// request with the next key (as bench/e2e's 1,000-key runs): the chain's caches, limiter
// and usage counters looked up among many entries.
func BenchmarkPingRouteManyKeys(b *testing.B) { benchmarkPing(b, 100, 10, 1) }

// benchmarkPing serves GET /api/v1/ping with keys of users users, perUser each, moving to
// the next key every `every` requests of a goroutine. A key allows at most a million calls
// a minute, so a run that stays on a key longer than that would be rate limited.
func benchmarkPing(b *testing.B, users, perUser, every int) {
	cfg, err := parseConfig(nil, func(k string) string { return authEnv()[k] })
	if err != nil {
		b.Fatal(err)
	}
	s, err := newServices(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	s.requestLog = newRequestLog(io.Discard) // as run sets it
	h := s.handler()
	call := func(method, path, body string, hdr http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	var reqs []*http.Request
	for u := range users {
		reg := call("POST", "/api/auth/register", fmt.Sprintf(`{"email":"bench%d@example.com","password":"Correct-Horse-9","full_name":"B"}`, u), jsonHeader())
		tok := between(reg.Body.String(), `"access_token":"`, `"`)
		uid := ecoid.ID(between(reg.Body.String(), `"id":"`, `"`))
		// A plan with a large soft quota, so the run measures served calls, as with Pro.
		if _, err := s.billing.SetEnterprise(context.Background(), uid, fmt.Sprintf("bench%d@example.com", u), billing.Terms{QuotaCalls: 1 << 40}); err != nil {
			b.Fatal(err)
		}
		for range perUser {
			gen := call("POST", "/api/keys/generate", `{"name":"b","scopes":["read"],"rate_limit_per_minute":1000000}`, bearer(tok))
			key := between(gen.Body.String(), `"key":"`, `"`)
			if key == "" {
				b.Fatalf("generate: %d %s", gen.Code, gen.Body)
			}
			req := httptest.NewRequest("GET", "/api/v1/ping", nil)
			req.Header = apiKey(key)
			reqs = append(reqs, req)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{header: http.Header{}}
		served := 0 // by this goroutine: a shared counter would be a shared write per request
		for pb.Next() {
			served++
			req := *reqs[served/every%len(reqs)] // what net/http hands a handler: a fresh request, headers parsed
			clear(w.header)
			w.status = 0
			h.ServeHTTP(w, &req)
			if w.status != http.StatusOK {
				b.Fatalf("ping: %d", w.status)
			}
		}
	})
}

// benchWriter is the least a ResponseWriter does: it keeps the status and drops the body,
// so the benchmark measures the server's handler rather than httptest's recorder.
type benchWriter struct {
	header http.Header
	status int
}

func (w *benchWriter) Header() http.Header { return w.header }
func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}
