package billing_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
)

// BenchmarkQuotaFor is the per-request cost the usage quota middleware pays (memory store).
func BenchmarkQuotaFor(b *testing.B) {
	e := newEnv(b, false)
	u := e.user(b)
	e.setRow(b, u, func(s *billing.Subscription) { s.Plan = billing.Pro })
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := e.svc.QuotaFor(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhookDuplicate verifies and decodes a signed event that was already
// processed: the floor of every webhook request.
func BenchmarkWebhookDuplicate(b *testing.B) {
	e := newEnv(b, false)
	u := e.user(b)
	payload := stripeEvent("evt_bench", "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_1", "sub_1"))
	sig := signed(payload, whSecret, testNow)
	if _, err := e.svc.HandleWebhook(context.Background(), payload, sig, whSecret); err != nil {
		b.Fatal(err)
	}
	h := e.svc.WebhookHandler(whSecret)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", sig)
		w := newResponse()
		h.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatal(w.status)
		}
	}
}

// BenchmarkTermsCachePostgres is QuotaFor on a Postgres store, uncached (one round trip
// per call) and through a warm TermsCache, for 100 users.
func BenchmarkTermsCachePostgres(b *testing.B) {
	if os.Getenv("NEXUS_TEST_POSTGRES") == "" {
		b.Skip("NEXUS_TEST_POSTGRES is not set")
	}
	e := newEnvWith(b, postgres.NewBillingStore(pgtest.New(b)), false)
	users := make([]ecoid.ID, 100)
	for i := range users {
		users[i] = e.user(b)
	}
	c := billing.NewTermsCache(e.svc.PlanTerms, billing.TermsCacheConfig{})
	ctx := context.Background()
	for name, quota := range map[string]func(context.Context, ecoid.ID) (int64, bool, error){
		"cached": c.QuotaFor, "store": e.svc.QuotaFor,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := quota(ctx, users[i%len(users)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTermsCache is the hot path's plan lookup among 10,000 users from every core
// at once: through a warm TermsCache, and straight from the (memory) store as QuotaFor
// does. With Postgres the uncached lookup is a network round trip instead.
func BenchmarkTermsCache(b *testing.B) {
	e := newEnv(b, false)
	users := make([]ecoid.ID, 10_000)
	for i := range users {
		users[i] = e.user(b)
	}
	c := billing.NewTermsCache(e.svc.PlanTerms, billing.TermsCacheConfig{Size: 20_000})
	ctx := context.Background()
	for _, u := range users {
		c.Get(ctx, u)
	}
	for name, quota := range map[string]func(context.Context, ecoid.ID) (int64, bool, error){
		"cached": c.QuotaFor, "store": e.svc.QuotaFor,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, _, err := quota(ctx, users[i%len(users)]); err != nil {
						b.Fatal(err)
					}
					i += 7
				}
			})
		})
	}
}

// BenchmarkTermsCacheHotUser is the plan lookup of one busy user from every core at once,
// as on the API route when one customer's keys carry the traffic: a hit that wrote to
// shared memory (a read lock's counter) would move that cache line between the cores.
func BenchmarkTermsCacheHotUser(b *testing.B) {
	e := newEnv(b, false)
	u := e.user(b)
	c := billing.NewTermsCache(e.svc.PlanTerms, billing.TermsCacheConfig{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := c.QuotaFor(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
	})
}
