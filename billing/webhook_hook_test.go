package billing_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nexus-ecosystem/nexus/billing"
)

// OnWebhook sees every delivery once, and WebhookOutcome names what happened.
func TestOnWebhookReportsEveryOutcome(t *testing.T) {
	var got []string
	e := newEnv(t, false, func(c *billing.Config) {
		c.OnWebhook = func(_ context.Context, res billing.WebhookResult, err error) {
			got = append(got, res.Type+"/"+billing.WebhookOutcome(res, err))
		}
	})
	u := e.user(t)
	paid := stripeEvent("evt_hook", "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_1", "sub_1"))
	e.deliver(t, paid)
	e.deliver(t, paid)
	e.deliver(t, stripeEvent("evt_other", "customer.created", testNow, map[string]any{"id": "cus_1", "object": "customer"}))
	e.post(t, paid, "t=1,v1=00")
	want := []string{
		"checkout.session.completed/handled", "checkout.session.completed/duplicate",
		"customer.created/ignored", "/invalid_signature",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("OnWebhook saw %q, want %q", got, want)
	}
}
