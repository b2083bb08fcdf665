package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/guard"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

// scrape returns the Prometheus text of url.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, l) {
			t.Errorf("metrics lack %q", l)
		}
	}
}

func TestMetricsCountRoutesKeysAndDecisions(t *testing.T) {
	s := startServer(t, billingEnv(t))
	ann := s.register("ann@example.com")
	key := s.generate(ann.AccessToken, `{"name":"m","scopes":["read"],"rate_limit_per_minute":1}`).Key
	s.do("GET", "/api/v1/ping", "", apiKey(key), nil) // allowed
	s.do("GET", "/api/v1/ping", "", apiKey(key), nil) // rate limited
	s.do("GET", "/api/v1/ping", "", apiKey("nx_live_nonsense"), nil)
	s.do("GET", "/no/such/path/"+strings.Repeat("x", 20), "", nil, nil)
	s.stripeEvent("customer.created", time.Now(), `{"id":"cus_1","object":"customer"}`)
	s.do("POST", "/api/webhooks/stripe", `{}`, http.Header{"Stripe-Signature": {"t=1,v1=00"}}, nil)

	text := scrape(t, s.base+"/metrics")
	wantLines(t, text,
		`nexus_http_requests_total{code="201",route="POST /api/auth/register"} 1`,
		`nexus_http_requests_total{code="200",route="GET /api/v1/ping"} 1`,
		`nexus_http_requests_total{code="429",route="GET /api/v1/ping"} 1`,
		`nexus_http_requests_total{code="404",route="unmatched"} 1`,
		`nexus_http_request_duration_seconds_bucket{route="GET /api/v1/ping",le="+Inf"} 3`,
		`nexus_apikey_verifications_total{result="valid"} 2`,
		`nexus_guard_admissions_total{result="allowed"} 1`,
		`nexus_guard_admissions_total{result="rate_limited"} 1`,
		`nexus_ratelimit_decisions_total{result="refused"} 1`,
		`nexus_quota_decisions_total{result="allowed"} 2`,
		`nexus_stripe_webhook_events_total{result="ignored",type="customer.created"} 1`,
		`nexus_stripe_webhook_events_total{result="invalid_signature",type="unknown"} 1`,
		`nexus_usage_tracker_accepted_total `,
		`nexus_usage_tracker_pending `,
		`nexus_usage_tracker_dropped_total 0`,
		`go_goroutines `,
	)
	if strings.Contains(text, "/no/such/path") {
		t.Error("a raw path became a label")
	}
	if !strings.Contains(text, `nexus_apikey_verifications_total{result="malformed"} 1`) &&
		!strings.Contains(text, `nexus_apikey_verifications_total{result="invalid"} 1`) {
		t.Error("the bad key's verification is not counted")
	}
}

func TestMetricsOnTheirOwnListener(t *testing.T) {
	s := startServer(t, authEnv(), "-metrics-addr", "127.0.0.1:0")
	if resp := s.do("GET", "/metrics", "", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("/metrics on the API listener with -metrics-addr: %d", resp.StatusCode)
	}
	m := regexp.MustCompile(`"metrics_addr":"([^"]+)"`).FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no metrics_addr logged: %s", s.logs)
	}
	s.do("GET", "/healthz", "", nil, nil)
	wantLines(t, scrape(t, "http://"+m[1]+"/metrics"), `nexus_http_requests_total{code="200",route="GET /healthz"} 1`)
}

func TestMetricsPoolStatsWithPostgres(t *testing.T) {
	s := startServer(t, authEnv("DATABASE_URL", testenv.Postgres(t)))
	wantLines(t, scrape(t, s.base+"/metrics"), `go_sql_open_connections{db_name="nexus"}`, `go_sql_max_open_connections{db_name="nexus"} 20`)
}

// discardUsage is a usage writer that keeps nothing, so the benchmark measures the request path.
type discardUsage struct{}

func (discardUsage) WriteBatch(context.Context, []usage.Record) error { return nil }

// BenchmarkGuardChainMetrics is guard's BenchmarkChain (the whole API-key chain over memory
// stores, a Pro user with 256 keys) behind the router, without and with the metrics: the
// request counter and histogram, the counting verifier and the counting admission.
func BenchmarkGuardChainMetrics(b *testing.B) {
	ctx := context.Background()
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{MaxKeysPerOwner: 256})
	defer keys.Close(ctx)
	plans := billing.NewService(memory.NewBillingStore(), billing.Config{})
	owner := ecoid.New(ecoid.User)
	if _, err := plans.SetEnterprise(ctx, owner, "pro@example.com", billing.ProTerms); err != nil {
		b.Fatal(err)
	}
	tracker := usage.NewTracker(discardUsage{}, usage.Config{})
	defer tracker.Close(ctx)
	plains := make([]string, 256)
	for i := range plains {
		_, p, err := keys.Create(ctx, apikey.CreateParams{Owner: owner, Name: "b", Scopes: []string{"read"}, RateLimitPerMinute: apikey.MaxRateLimitPerMinute})
		if err != nil {
			b.Fatal(err)
		}
		plains[i] = "ApiKey " + p
	}
	build := func(m *metrics) http.Handler {
		var v apikey.Verifier = keys
		var a guard.Admission = guard.NewLimits(memory.NewLimiter(), memory.NewUsageStore(), plans.QuotaFor)
		if m != nil {
			v, a = m.verifier(v), m.admission(a)
		}
		rt := newRouter()
		apiHandlers{protect: func(scopes ...string) func(http.Handler) http.Handler {
			return guard.New(guard.Config{Keys: v, Admission: a, Scopes: scopes, Tracker: tracker})
		}}.register(rt)
		if m != nil {
			return observeRequests(nil, m)(rt)
		}
		return rt
	}
	for _, bc := range []struct {
		name string
		m    *metrics
	}{{"plain", nil}, {"metrics", newMetrics()}} {
		h := build(bc.m)
		b.Run(bc.name, func(b *testing.B) {
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(7919))
				for pb.Next() {
					i++
					req := httptest.NewRequest("GET", "/api/v1/ping", nil)
					req.Header.Set("Authorization", plains[i%len(plains)])
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Errorf("answer %d: %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}

// Requests of many routes and statuses observed at once, each pair new, are all counted:
// publishing a new pair must not lose another goroutine's.
func TestMetricsObserveConcurrentNewRoutes(t *testing.T) {
	m := newMetrics()
	const goroutines, pairs = 8, 40
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pairs {
				m.observe("GET /r"+strconv.Itoa((i+g)%pairs), 200+i%3, time.Millisecond)
			}
		}()
	}
	wg.Wait()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() == "nexus_http_requests_total" {
			for _, c := range f.GetMetric() {
				total += c.GetCounter().GetValue()
			}
		}
	}
	if total != goroutines*pairs {
		t.Fatalf("counted %v requests, want %d", total, goroutines*pairs)
	}
	if n := len(*m.byRoute.Load()); n > pairs*3 {
		t.Fatalf("byRoute holds %d pairs, at most %d exist", n, pairs*3)
	}
}
