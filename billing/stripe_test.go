package billing_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/stripe/stripe-go/v76"
)

func TestCustomerIsCreatedOnceWithDerivedKey(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	u := e.user(t)
	id, err := e.svc.Customer(ctx, u, "")
	if err != nil || !strings.HasPrefix(id, "cus_") {
		t.Fatalf("Customer = %q, %v", id, err)
	}
	again, err := e.svc.Customer(ctx, u, "")
	if err != nil || again != id {
		t.Fatalf("second Customer = %q, %v", again, err)
	}
	reqs := e.rec.sent("POST", "/v1/customers")
	if len(reqs) != 1 {
		t.Fatalf("%d customer creates, want 1", len(reqs))
	}
	r := reqs[0]
	if r.IdempotencyKey != "nexus:customer:"+u.String() || r.Form.Get("metadata[eco_id]") != u.String() || r.Form.Get("email") != e.row(t, u).Email {
		t.Fatalf("customer create sent key %q and %v", r.IdempotencyKey, r.Form)
	}
	if got := e.row(t, u).StripeCustomerID; got != id {
		t.Fatalf("stored customer %q, want %q", got, id)
	}
}

func TestConcurrentCustomerCallsShareOneKey(t *testing.T) {
	e := newEnv(t, true)
	u := e.user(t)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := e.svc.Customer(context.Background(), u, "")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != e.row(t, u).StripeCustomerID {
			t.Fatalf("a caller got %q, the row holds %q", id, e.row(t, u).StripeCustomerID)
		}
	}
	for _, r := range e.rec.sent("POST", "/v1/customers") {
		if r.IdempotencyKey != "nexus:customer:"+u.String() {
			t.Fatalf("a racing create used key %q", r.IdempotencyKey)
		}
	}
}

func TestCheckoutSendsUserAndPlan(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	u := e.user(t)
	url, err := e.svc.Checkout(ctx, u, "", "pro")
	if err != nil || url == "" {
		t.Fatalf("Checkout = %q, %v", url, err)
	}
	reqs := e.rec.sent("POST", "/v1/checkout/sessions")
	if len(reqs) != 1 {
		t.Fatalf("%d checkout creates", len(reqs))
	}
	f := reqs[0].Form
	want := map[string]string{
		"mode": "subscription", "client_reference_id": u.String(), "customer": e.row(t, u).StripeCustomerID,
		"metadata[eco_id]": u.String(), "metadata[plan]": "pro",
		"subscription_data[metadata][eco_id]": u.String(), "subscription_data[metadata][plan]": "pro",
		"line_items[0][price]": proPrice, "line_items[0][quantity]": "1",
		"success_url": e.cfg.SuccessURL, "cancel_url": e.cfg.CancelURL,
	}
	for k, v := range want {
		if f.Get(k) != v {
			t.Errorf("checkout %s = %q, want %q", k, f.Get(k), v)
		}
	}
	key := reqs[0].IdempotencyKey
	if !strings.HasPrefix(key, "nexus:checkout:"+u.String()+":pro:") {
		t.Fatalf("checkout key %q", key)
	}
	// A second click in the same hour and state reuses the key (one session)...
	if _, err := e.svc.Checkout(ctx, u, "", "pro"); err != nil {
		t.Fatal(err)
	}
	reqs = e.rec.sent("POST", "/v1/checkout/sessions")
	if reqs[1].IdempotencyKey != key {
		t.Fatalf("same intent, different keys: %q %q", key, reqs[1].IdempotencyKey)
	}
	// ...a change of the subscription, or the next hour, does not.
	e.setRow(t, u, func(s *billing.Subscription) { s.UpdatedAt = s.UpdatedAt.Add(time.Second) })
	if _, err := e.svc.Checkout(ctx, u, "", "pro"); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(testNow.Add(time.Hour))
	if _, err := e.svc.Checkout(ctx, u, "", "pro"); err != nil {
		t.Fatal(err)
	}
	reqs = e.rec.sent("POST", "/v1/checkout/sessions")
	if reqs[2].IdempotencyKey == key || reqs[3].IdempotencyKey == key || reqs[2].IdempotencyKey == reqs[3].IdempotencyKey {
		t.Fatal("a new state or hour reused a checkout key")
	}
}

func TestCheckoutRejectsPlans(t *testing.T) {
	e := newEnv(t, true)
	u := e.user(t)
	for plan, want := range map[string]error{"free": billing.ErrPlanNotForSale, "enterprise": billing.ErrPlanNotForSale, "": billing.ErrUnknownPlan, "platinum": billing.ErrUnknownPlan} {
		if _, err := e.svc.Checkout(context.Background(), u, "", plan); !errors.Is(err, want) {
			t.Errorf("Checkout(%q) = %v, want %v", plan, err, want)
		}
	}
	if n := len(e.rec.sent("POST", "/v1/")); n != 0 {
		t.Fatalf("rejected plans sent %d requests", n)
	}
	e.setRow(t, u, func(r *billing.Subscription) { r.Plan, r.Status = billing.Pro, billing.StatusActive })
	if _, err := e.svc.Checkout(context.Background(), u, "", "pro"); !errors.Is(err, billing.ErrAlreadySubscribed) {
		t.Errorf("Checkout(pro) for a Pro user = %v, want ErrAlreadySubscribed", err)
	}
	if n := len(e.rec.sent("POST", "/v1/")); n != 0 {
		t.Fatalf("rejected checkouts sent %d requests", n)
	}
	noPrice := newEnv(t, true, func(c *billing.Config) { c.Prices.Pro = "" })
	if _, err := noPrice.svc.Checkout(context.Background(), noPrice.user(t), "", "pro"); err == nil {
		t.Fatal("checkout without a Pro price ID succeeded")
	}
}

func TestPortal(t *testing.T) {
	e := newEnv(t, true)
	u := e.user(t)
	url, err := e.svc.Portal(context.Background(), u, "")
	if err != nil || url == "" {
		t.Fatalf("Portal = %q, %v", url, err)
	}
	reqs := e.rec.sent("POST", "/v1/billing_portal/sessions")
	if len(reqs) != 1 || reqs[0].Form.Get("customer") != e.row(t, u).StripeCustomerID ||
		reqs[0].Form.Get("return_url") != e.cfg.PortalReturnURL || !strings.HasPrefix(reqs[0].IdempotencyKey, "nexus:portal:"+u.String()+":") {
		t.Fatalf("portal request %+v", reqs)
	}
}

func TestSubscribeFree(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	u := e.user(t)
	row, err := e.svc.SubscribeFree(ctx, u, "")
	if err != nil || row.StripeSubscriptionID == "" || row.Plan != billing.Free {
		t.Fatalf("SubscribeFree = %+v, %v", row, err)
	}
	if _, err := e.svc.SubscribeFree(ctx, u, ""); err != nil {
		t.Fatal(err)
	}
	reqs := e.rec.sent("POST", "/v1/subscriptions")
	if len(reqs) != 1 {
		t.Fatalf("%d subscription creates, want 1", len(reqs))
	}
	f := reqs[0].Form
	if reqs[0].IdempotencyKey != "nexus:free:"+u.String() || f.Get("items[0][price]") != freePrice ||
		f.Get("metadata[eco_id]") != u.String() || f.Get("metadata[plan]") != "free" || f.Get("customer") != row.StripeCustomerID {
		t.Fatalf("free subscription request %q %v", reqs[0].IdempotencyKey, f)
	}
	// Without a Free price it is only the local row.
	local := newEnv(t, true, func(c *billing.Config) { c.Prices.Free = "" })
	v := ecoid.New(ecoid.User)
	if row, err := local.svc.SubscribeFree(ctx, v, "v@example.com"); err != nil || row.StripeSubscriptionID != "" || row.Plan != billing.Free {
		t.Fatalf("local SubscribeFree = %+v, %v", row, err)
	}
	if n := len(local.rec.sent("POST", "/v1/")); n != 0 {
		t.Fatalf("local SubscribeFree sent %d requests", n)
	}
}

func TestCancelAndResume(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	u := e.user(t)
	if _, err := e.svc.Cancel(ctx, u); !errors.Is(err, billing.ErrNoStripeSubscription) {
		t.Fatalf("Cancel on Free = %v", err)
	}
	if _, err := e.svc.Cancel(ctx, ecoid.New(ecoid.User)); !errors.Is(err, billing.ErrNoStripeSubscription) {
		t.Fatalf("Cancel without a row = %v", err)
	}
	e.setRow(t, u, func(s *billing.Subscription) {
		s.Plan, s.StripeCustomerID, s.StripeSubscriptionID = billing.Pro, "cus_test1", "sub_test1"
	})
	row, err := e.svc.Cancel(ctx, u)
	if err != nil || !row.CancelAtPeriodEnd || row.Plan != billing.Pro {
		t.Fatalf("Cancel = %+v, %v", row, err)
	}
	e.clock.Set(testNow.Add(time.Minute))
	row, err = e.svc.Resume(ctx, u)
	if err != nil || row.CancelAtPeriodEnd {
		t.Fatalf("Resume = %+v, %v", row, err)
	}
	reqs := e.rec.sent("POST", "/v1/subscriptions/sub_test1")
	if len(reqs) != 2 || reqs[0].Form.Get("cancel_at_period_end") != "true" || reqs[1].Form.Get("cancel_at_period_end") != "false" {
		t.Fatalf("updates sent: %+v", reqs)
	}
	if !strings.HasPrefix(reqs[0].IdempotencyKey, "nexus:cancel:sub_test1:") || !strings.HasPrefix(reqs[1].IdempotencyKey, "nexus:resume:sub_test1:") {
		t.Fatalf("update keys %q %q", reqs[0].IdempotencyKey, reqs[1].IdempotencyKey)
	}
}

func TestStripeErrorsAreReported(t *testing.T) {
	// stripe-mock refuses a malformed secret key with 401: every operation fails with a
	// billing error and leaves local state as it was.
	e := newEnv(t, true)
	e.cfg.Stripe = billing.NewStripeClient("not_a_key", testenv.Stripe(t), &http.Client{Transport: e.rec})
	e.svc = billing.NewService(e.store, e.cfg)
	ctx := context.Background()
	u := e.user(t)
	_, err := e.svc.Customer(ctx, u, "")
	var se *stripe.Error
	if !errors.Is(err, billing.ErrStripe) || !errors.As(err, &se) || se.HTTPStatusCode != 401 || !strings.HasPrefix(err.Error(), "billing: create customer") {
		t.Fatalf("Customer = %v", err)
	}
	if _, err := e.svc.Checkout(ctx, u, "", "pro"); err == nil {
		t.Fatal("Checkout succeeded")
	}
	if _, err := e.svc.Portal(ctx, u, ""); err == nil {
		t.Fatal("Portal succeeded")
	}
	if _, err := e.svc.SubscribeFree(ctx, u, ""); err == nil {
		t.Fatal("SubscribeFree succeeded")
	}
	e.setRow(t, u, func(s *billing.Subscription) {
		s.Plan, s.StripeCustomerID, s.StripeSubscriptionID = billing.Pro, "cus_x", "sub_x"
	})
	if _, err := e.svc.Cancel(ctx, u); !errors.Is(err, billing.ErrStripe) {
		t.Fatalf("Cancel = %v", err)
	}
	if _, err := e.svc.Portal(ctx, u, ""); err == nil {
		t.Fatal("Portal succeeded")
	}
	if _, err := e.svc.Checkout(ctx, u, "", "pro"); err == nil {
		t.Fatal("Checkout succeeded")
	}
	if e.row(t, u).CancelAtPeriodEnd {
		t.Fatal("a failed cancel changed the row")
	}
}
