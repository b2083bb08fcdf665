package billing_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/nexus-ecosystem/nexus/billing"
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
