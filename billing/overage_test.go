package billing_test

import (
	"context"
	"errors"
	"fmt"
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

// payer makes a user who has been Pro since the second day of last period, with a Stripe
// customer and subscription, and the given calls last period.
func (e *env) payer(t testing.TB, calls int64) billing.Subscription {
	t.Helper()
	now := e.clock.Now()
	e.clock.Set(lastPeriod.Add(24 * time.Hour))
	defer e.clock.Set(now)
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
	e.clock.Set(lastPeriod.Add(24 * time.Hour))
	noCustomer := e.user(t) // Pro all along, but Stripe never had a customer for it
	e.setRow(t, noCustomer, func(s *billing.Subscription) { s.Plan = billing.Pro })
	e.usage.set(noCustomer, lastPeriod, 200_000)
	e.clock.Set(testNow)

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
	e.clock.Set(lastPeriod) // Enterprise from the first instant of last period
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
	e.clock.Set(testNow)
	res, err := e.svc.ProcessOverageFor(ctx, lastPeriod.Add(20*24*time.Hour))
	if err != nil || res != (billing.OverageResult{Processed: 1, Charged: 1}) {
		t.Fatalf("run = %+v, %v", res, err)
	}
	// No Stripe subscription to ride on: the item goes on an invoice of its own.
	invoices := e.rec.sent("POST", "/v1/invoices")
	items := e.rec.sent("POST", "/v1/invoiceitems")
	if len(items) != 1 || items[0].Form.Get("amount") != "1" || items[0].Form.Has("subscription") || !items[0].Form.Has("invoice") {
		t.Fatalf("invoice items %+v", items)
	}
	if len(invoices) != 1 || invoices[0].Form.Get("customer") != "cus_ent" || invoices[0].Form.Get("auto_advance") != "true" ||
		invoices[0].Form.Get("pending_invoice_items_behavior") != "exclude" || invoices[0].IdempotencyKey == "" {
		t.Fatalf("invoices %+v", invoices)
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

// testOverageByTermsOfThePeriod is issue 10.6: the cron charges a closed period by the
// terms in force during it, even when the subscription ended or changed before it ran.
func testOverageByTermsOfThePeriod(t *testing.T, store billing.Store) {
	e := newEnvWith(t, store, true)
	ctx := context.Background()
	feb := func(day int) time.Time { return lastPeriod.AddDate(0, 0, day-1).Add(9 * time.Hour) }
	at := func(when time.Time, typ string, obj map[string]any) {
		t.Helper()
		e.clock.Set(when)
		if status, body := e.deliver(t, stripeEvent(evtID(), typ, when, obj)); status != 200 {
			t.Fatalf("%s: %d %v", typ, status, body)
		}
	}
	// 5,000,000 calls on Pro, then the subscription is deleted before the month ends.
	e.clock.Set(feb(1))
	gone := e.user(t)
	at(feb(3), "customer.subscription.updated", subscriptionObj(gone, "sub_gone", "cus_gone", "active", proPrice, false, lastPeriod))
	e.usage.set(gone, lastPeriod, 5_000_000)
	at(feb(20), "customer.subscription.deleted", subscriptionObj(gone, "sub_gone", "cus_gone", "canceled", proPrice, false, lastPeriod))
	if l, hard, _ := e.svc.QuotaFor(ctx, gone); l != 1000 || !hard {
		t.Fatal("not back on Free after the deletion")
	}
	// Upgraded from Free on the 20th: Pro's quota for the whole month (PeriodTerms).
	e.clock.Set(feb(1))
	upgraded := e.user(t)
	at(feb(20), "customer.subscription.updated", subscriptionObj(upgraded, "sub_up", "cus_up", "active", proPrice, false, lastPeriod))
	e.usage.set(upgraded, lastPeriod, 150_000) // 50,000 over: 5,000 cents
	// Moved from Pro to Enterprise mid-month: the higher quota, at its rate.
	e.clock.Set(feb(1))
	moved := e.user(t)
	at(feb(2), "customer.subscription.updated", subscriptionObj(moved, "sub_mv", "cus_mv", "active", proPrice, false, lastPeriod))
	e.clock.Set(feb(15))
	if _, err := e.svc.SetEnterprise(ctx, moved, "", billing.Terms{QuotaCalls: 1_000_000, OverageMilliCentsPerCall: 50}); err != nil {
		t.Fatal(err)
	}
	e.usage.set(moved, lastPeriod, 3_000_000) // 2,000,000 over × 0.05 cents: 100,000 cents
	// Pro only since this month: last month was Free, whatever its counter says.
	e.clock.Set(feb(1))
	lateComer := e.user(t)
	at(testNow.Add(-time.Hour), "customer.subscription.updated", subscriptionObj(lateComer, "sub_late", "cus_late", "active", proPrice, false, testNow))
	e.usage.set(lateComer, lastPeriod, 900_000)

	e.clock.Set(testNow)
	res, err := e.svc.ProcessOverage(ctx)
	if err != nil || res != (billing.OverageResult{Processed: 3, Charged: 3}) {
		t.Fatalf("cron = %+v, %v", res, err)
	}
	want := map[ecoid.ID]int64{gone: 490_000, upgraded: 5_000, moved: 100_000}
	items := e.rec.sent("POST", "/v1/invoiceitems")
	if len(items) != 3 {
		t.Fatalf("%d invoice items, want 3", len(items))
	}
	for _, it := range items {
		u := ecoid.ID(it.Form.Get("metadata[eco_id]"))
		if it.Form.Get("amount") != fmt.Sprint(want[u]) || it.Form.Get("metadata[period]") != "2026-02-01" {
			t.Errorf("item for %s: %v, want %d cents", u, it.Form, want[u])
		}
		switch u {
		case gone: // its subscription is gone: an invoice of its own, collected by Stripe
			if it.Form.Has("subscription") || !it.Form.Has("invoice") || it.Form.Get("customer") != "cus_gone" {
				t.Errorf("item of the deleted subscription: %v", it.Form)
			}
		case upgraded: // still live: on its next invoice
			if it.Form.Get("subscription") != "sub_up" || it.Form.Has("invoice") {
				t.Errorf("item of the live subscription: %v", it.Form)
			}
		}
	}
	if inv := e.rec.sent("POST", "/v1/invoices"); len(inv) != 1 || inv[0].Form.Get("customer") != "cus_gone" {
		t.Fatalf("one-off invoices: %+v", inv)
	}
	sub := e.row(t, gone)
	if c, err := e.store.OverageCharge(ctx, sub.ID, lastPeriod); err != nil || c.AmountCents != 490_000 || c.CallsOver != 4_900_000 || c.InvoiceItemID == "" {
		t.Fatalf("ledger of the deleted subscription = %+v, %v", c, err)
	}
	// Exactly once.
	if res, err = e.svc.ProcessOverage(ctx); err != nil || res != (billing.OverageResult{Processed: 3, Skipped: 3}) {
		t.Fatalf("second cron = %+v, %v", res, err)
	}
	if n, m := len(e.rec.sent("POST", "/v1/invoiceitems")), len(e.rec.sent("POST", "/v1/invoices")); n != 3 || m != 1 {
		t.Fatalf("the second run sent Stripe more: %d items, %d invoices", n, m)
	}
}

func TestOverageByTermsOfThePeriodMemory(t *testing.T) {
	testOverageByTermsOfThePeriod(t, memory.NewBillingStore())
}

func TestOverageByTermsOfThePeriodPostgres(t *testing.T) {
	testOverageByTermsOfThePeriod(t, postgres.NewBillingStore(pgtest.New(t)))
}

func TestPeriodTerms(t *testing.T) {
	rec := func(plan billing.PlanID, terms billing.Terms) billing.TermsRecord {
		return billing.TermsRecord{Plan: plan, Terms: terms}
	}
	free, pro := rec(billing.Free, billing.FreeTerms), rec(billing.Pro, billing.ProTerms)
	cheap := rec(billing.Enterprise, billing.Terms{QuotaCalls: 100_000, OverageMilliCentsPerCall: 10})
	capped := rec(billing.Enterprise, billing.Terms{QuotaCalls: 100_000, HardCap: true})
	for _, c := range []struct {
		in   []billing.TermsRecord
		want billing.TermsRecord
	}{
		{[]billing.TermsRecord{pro, free}, pro},            // deleted mid-period
		{[]billing.TermsRecord{free, pro}, pro},            // upgraded mid-period
		{[]billing.TermsRecord{pro, cheap}, cheap},         // same quota: the lower rate
		{[]billing.TermsRecord{cheap, pro}, cheap},         // in either order
		{[]billing.TermsRecord{pro, capped, free}, capped}, // same quota: a hard cap charges nothing
	} {
		if got, ok := billing.PeriodTerms(c.in); !ok || got != c.want {
			t.Errorf("PeriodTerms(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if _, ok := billing.PeriodTerms(nil); ok {
		t.Error("PeriodTerms(nil) reported terms")
	}
}
