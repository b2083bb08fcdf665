package billing_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
)

var lastPeriod = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC) // closed at testNow (March 10)

// payer makes a Pro user with a Stripe customer and the given calls last period.
func (e *env) payer(t testing.TB, calls int64) billing.Subscription {
	t.Helper()
	u := e.user(t)
	row := e.setRow(t, u, func(s *billing.Subscription) {
		s.Plan, s.StripeCustomerID, s.StripeSubscriptionID = billing.Pro, "cus_"+string(u[8:]), "sub_"+string(u[8:])
	})
	e.usage.set(u, lastPeriod, calls)
	return row
}

func TestOverageChargesOncePerPeriod(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	over := e.payer(t, 112_345)                 // 12,345 over: 1,235 cents
	under := e.payer(t, 100_000)                // exactly the quota: nothing
	e.usage.set(under.UserID, testNow, 500_000) // the open period is never charged
	free := e.user(t)
	e.usage.set(free, lastPeriod, 5_000) // Free is a hard cap: never charged
	noCustomer := e.payer(t, 200_000)
	e.setRow(t, noCustomer.UserID, func(s *billing.Subscription) { s.StripeCustomerID = "" })

	res, err := e.svc.ProcessOverage(ctx)
	if err != nil || res != (billing.OverageResult{Processed: 3, Charged: 1, Skipped: 2}) {
		t.Fatalf("first run = %+v, %v", res, err)
	}
	items := e.rec.sent("POST", "/v1/invoiceitems")
	if len(items) != 1 {
		t.Fatalf("%d invoice items, want 1", len(items))
	}
	f := items[0].Form
	if items[0].IdempotencyKey != "nexus:overage:"+over.ID.String()+":2026-02-01" || f.Get("amount") != "1235" ||
		f.Get("currency") != "usd" || f.Get("customer") != over.StripeCustomerID || f.Get("subscription") != over.StripeSubscriptionID ||
		f.Get("metadata[eco_id]") != over.UserID.String() || f.Get("metadata[period]") != "2026-02-01" {
		t.Fatalf("invoice item sent key %q %v", items[0].IdempotencyKey, f)
	}
	charge, err := e.store.OverageCharge(ctx, over.ID, lastPeriod)
	if err != nil || charge.InvoiceItemID == "" || charge.AmountCents != 1235 || charge.CallsOver != 12_345 || charge.Calls != 112_345 {
		t.Fatalf("ledger row = %+v, %v", charge, err)
	}

	res, err = e.svc.ProcessOverage(ctx)
	if err != nil || res != (billing.OverageResult{Processed: 3, Charged: 0, Skipped: 3}) {
		t.Fatalf("second run = %+v, %v", res, err)
	}
	if n := len(e.rec.sent("POST", "/v1/invoiceitems")); n != 1 {
		t.Fatalf("second run sent invoice items: %d in all", n)
	}
	ov, err := e.svc.Overview(ctx)
	if err != nil || ov.OverageRevenueCents != 1235 || ov.OverageRevenueTotalCents != 1235 {
		t.Fatalf("overview revenue = %+v, %v", ov, err)
	}
}

func TestOverageForEnterprise(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	u := e.user(t)
	if _, err := e.svc.SetEnterprise(ctx, u, "", billing.Terms{QuotaCalls: 1_000, OverageMilliCentsPerCall: 250}); err != nil {
		t.Fatal(err)
	}
	e.setRow(t, u, func(s *billing.Subscription) { s.StripeCustomerID = "cus_ent" })
	capped := e.user(t)
	if _, err := e.svc.SetEnterprise(ctx, capped, "", billing.Terms{QuotaCalls: 1_000, HardCap: true, OverageMilliCentsPerCall: 250}); err != nil {
		t.Fatal(err)
	}
	e.usage.set(u, lastPeriod, 1_003)      // 3 calls × 0.25 cents = 0.75 → 1 cent
	e.usage.set(capped, lastPeriod, 9_999) // hard cap: not processed
	res, err := e.svc.ProcessOverageFor(ctx, lastPeriod.Add(20*24*time.Hour))
	if err != nil || res != (billing.OverageResult{Processed: 1, Charged: 1}) {
		t.Fatalf("run = %+v, %v", res, err)
	}
	if items := e.rec.sent("POST", "/v1/invoiceitems"); len(items) != 1 || items[0].Form.Get("amount") != "1" || items[0].Form.Has("subscription") {
		t.Fatalf("invoice items %+v", items)
	}
}

func TestOverageRefusesOpenPeriodAndMissingUsage(t *testing.T) {
	e := newEnv(t, true)
	if _, err := e.svc.ProcessOverageFor(context.Background(), testNow); !errors.Is(err, billing.ErrPeriodOpen) {
		t.Fatalf("open period: %v", err)
	}
	noUsage := newEnv(t, true, func(c *billing.Config) { c.Usage = nil })
	if _, err := noUsage.svc.ProcessOverage(context.Background()); !errors.Is(err, billing.ErrNoUsage) {
		t.Fatalf("no usage: %v", err)
	}
	e.payer(t, 200_000)
	e.usage.err = errors.New("usage store down")
	res, err := e.svc.ProcessOverage(context.Background())
	if err == nil || res.Processed != 1 || res.Skipped != 1 {
		t.Fatalf("usage error: %+v, %v", res, err)
	}
}

// crashStore fails CompleteOverage while crash is set: the process "dies" after Stripe
// created the invoice item and before the ledger recorded it.
type crashStore struct {
	billing.Store
	crash atomic.Bool
}

func (c *crashStore) CompleteOverage(ctx context.Context, sub ecoid.ID, period time.Time, item string, at time.Time) (bool, error) {
	if c.crash.Load() {
		return false, errors.New("crashed")
	}
	return c.Store.CompleteOverage(ctx, sub, period, item, at)
}

func TestOverageRecoversFromCrashBetweenStripeAndStore(t *testing.T) {
	cs := &crashStore{Store: memory.NewBillingStore()}
	e := newEnvWith(t, cs, true)
	ctx := context.Background()
	sub := e.payer(t, 100_020)
	cs.crash.Store(true)
	res, err := e.svc.ProcessOverage(ctx)
	if err == nil || res.Charged != 0 {
		t.Fatalf("crashed run = %+v, %v", res, err)
	}
	cs.crash.Store(false)
	// Right after, the claim is still fresh: another run leaves it alone.
	if res, err = e.svc.ProcessOverage(ctx); err != nil || res.Charged != 0 || res.Skipped != 1 {
		t.Fatalf("run during the lease = %+v, %v", res, err)
	}
	// Usage changed meanwhile (a late flush); after the lease the retry sends Stripe the
	// original request again, with the same key, so Stripe returns the first item.
	e.usage.set(sub.UserID, lastPeriod, 100_500)
	e.clock.Set(testNow.Add(16 * time.Minute))
	if res, err = e.svc.ProcessOverage(ctx); err != nil || res.Charged != 1 {
		t.Fatalf("recovery run = %+v, %v", res, err)
	}
	items := e.rec.sent("POST", "/v1/invoiceitems")
	if len(items) != 2 || items[0].IdempotencyKey != items[1].IdempotencyKey || items[0].Form.Encode() != items[1].Form.Encode() ||
		items[0].Form.Get("amount") != "2" {
		t.Fatalf("the retry is not the same request: %+v", items)
	}
	if c, _ := e.store.OverageCharge(ctx, sub.ID, lastPeriod); c.InvoiceItemID == "" || c.AmountCents != 2 {
		t.Fatalf("ledger after recovery = %+v", c)
	}
	if res, _ = e.svc.ProcessOverage(ctx); res.Charged != 0 {
		t.Fatal("charged again after recovery")
	}
}

func testConcurrentOverage(t *testing.T, store billing.Store) {
	e := newEnvWith(t, store, true)
	ctx := context.Background()
	var subs []billing.Subscription
	for i := 0; i < 6; i++ {
		subs = append(subs, e.payer(t, 100_000+int64(i)*1_000)) // the first has no overage
	}
	const runs = 8
	var charged atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.svc.ProcessOverage(ctx)
			if err != nil {
				t.Error(err)
			}
			if res.Processed != len(subs) || res.Charged+res.Skipped != res.Processed {
				t.Errorf("run = %+v", res)
			}
			charged.Add(int64(res.Charged))
		}()
	}
	wg.Wait()
	if charged.Load() != 5 {
		t.Fatalf("%d runs at once charged %d times, want 5", runs, charged.Load())
	}
	perKey := map[string]int{}
	for _, r := range e.rec.sent("POST", "/v1/invoiceitems") {
		perKey[r.IdempotencyKey]++
	}
	if len(perKey) != 5 {
		t.Fatalf("invoice items for %d subscriptions, want 5", len(perKey))
	}
	for k, n := range perKey {
		if n != 1 {
			t.Fatalf("%s was sent %d times", k, n)
		}
	}
	for i, s := range subs[1:] {
		c, err := e.store.OverageCharge(ctx, s.ID, lastPeriod)
		if want := int64(i+1) * 100; err != nil || c.AmountCents != want || c.InvoiceItemID == "" {
			t.Fatalf("ledger %d = %+v, %v; want %d cents", i, c, err, want)
		}
	}
	if ov, _ := e.svc.Overview(ctx); ov.OverageRevenueCents != 1500 {
		t.Fatalf("revenue %d, want 1500", ov.OverageRevenueCents)
	}
}

func TestConcurrentOverageMemory(t *testing.T) { testConcurrentOverage(t, memory.NewBillingStore()) }

func TestConcurrentOveragePostgres(t *testing.T) {
	testConcurrentOverage(t, postgres.NewBillingStore(pgtest.New(t)))
}
