package billing_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

func TestParsePlan(t *testing.T) {
	for _, s := range []string{"free", "pro", "enterprise"} {
		if p, err := billing.ParsePlan(s); err != nil || string(p) != s {
			t.Errorf("ParsePlan(%q) = %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "Pro", "gold", "pro "} {
		if _, err := billing.ParsePlan(s); !errors.Is(err, billing.ErrUnknownPlan) {
			t.Errorf("ParsePlan(%q) error = %v, want ErrUnknownPlan", s, err)
		}
	}
}

func TestTermsFor(t *testing.T) {
	if tm, ok := billing.TermsFor(billing.Free); !ok || tm.QuotaCalls != 1000 || !tm.HardCap || tm.PriceCents != 0 {
		t.Errorf("free = %+v %v", tm, ok)
	}
	if tm, ok := billing.TermsFor(billing.Pro); !ok || tm.QuotaCalls != 100_000 || tm.HardCap || tm.PriceCents != 2900 || tm.OverageMilliCentsPerCall != 100 {
		t.Errorf("pro = %+v %v", tm, ok)
	}
	if tm, ok := billing.TermsFor(billing.Enterprise); ok || tm != billing.FreeTerms {
		t.Errorf("enterprise has no standard terms: %+v %v", tm, ok)
	}
}

func TestOverageCentsRoundsUp(t *testing.T) {
	pro := billing.ProTerms
	for _, c := range []struct{ over, cents int64 }{
		{-5, 0}, {0, 0}, {1, 1}, {9, 1}, {10, 1}, {11, 2}, {20, 2}, {12_345, 1_235}, {1_000_000, 100_000},
		{math.MaxInt64, math.MaxInt64},
	} {
		if got := pro.OverageCents(c.over); got != c.cents {
			t.Errorf("Pro OverageCents(%d) = %d, want %d", c.over, got, c.cents)
		}
	}
	if got := billing.FreeTerms.OverageCents(500); got != 0 {
		t.Errorf("a hard-capped plan charges %d", got)
	}
	custom := billing.Terms{QuotaCalls: 10, OverageMilliCentsPerCall: 2500} // 2.5 cents a call
	if got := custom.OverageCents(3); got != 8 {
		t.Errorf("3 calls at 2.5 cents = %d, want 8 (7.5 rounded up)", got)
	}
	if got := pro.CallsOver(100_001); got != 1 {
		t.Errorf("CallsOver(100001) = %d", got)
	}
	if got := pro.CallsOver(50); got != 0 {
		t.Errorf("CallsOver(50) = %d", got)
	}
}

func TestPeriods(t *testing.T) {
	loc := time.FixedZone("UTC-5", -5*3600)
	// 2026-01-31 22:00 at UTC-5 is 2026-02-01 03:00 UTC: February.
	at := time.Date(2026, 1, 31, 22, 0, 0, 0, loc)
	start := billing.PeriodStart(at)
	if want := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); !start.Equal(want) || start.Location() != time.UTC {
		t.Fatalf("PeriodStart = %v, want %v", start, want)
	}
	if end := billing.PeriodEnd(start); !end.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("PeriodEnd = %v", end)
	}
	if end := billing.PeriodEnd(time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC)); !end.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("December's end = %v", end)
	}
}

func TestSubscriptionTerms(t *testing.T) {
	custom := billing.Terms{QuotaCalls: 5_000_000, PriceCents: 100_000, OverageMilliCentsPerCall: 50}
	for _, c := range []struct {
		plan   billing.PlanID
		status billing.Status
		want   billing.Terms
		eff    billing.PlanID
	}{
		{billing.Free, billing.StatusActive, billing.FreeTerms, billing.Free},
		{billing.Pro, billing.StatusActive, billing.ProTerms, billing.Pro},
		{billing.Pro, billing.StatusTrialing, billing.ProTerms, billing.Pro},
		{billing.Pro, billing.StatusPastDue, billing.ProTerms, billing.Pro},
		{billing.Pro, billing.StatusCanceled, billing.FreeTerms, billing.Free},
		{billing.Pro, billing.StatusUnpaid, billing.FreeTerms, billing.Free},
		{billing.Enterprise, billing.StatusActive, custom, billing.Enterprise},
		{billing.Enterprise, billing.StatusIncompleteExpired, billing.FreeTerms, billing.Free},
	} {
		s := billing.Subscription{Plan: c.plan, Status: c.status, Custom: custom}
		if got := s.Terms(); got != c.want {
			t.Errorf("%s/%s terms = %+v, want %+v", c.plan, c.status, got, c.want)
		}
		if got := s.EffectivePlan(); got != c.eff {
			t.Errorf("%s/%s effective plan = %s, want %s", c.plan, c.status, got, c.eff)
		}
	}
}

func TestListQueryValidate(t *testing.T) {
	ok := []billing.ListQuery{{Page: 1, Limit: 1}, {Page: 7, Limit: 100, Plan: billing.Pro, Sort: "-email"}}
	for _, k := range billing.SortKeys() {
		ok = append(ok, billing.ListQuery{Page: 1, Limit: 20, Sort: k})
	}
	for _, q := range ok {
		if err := q.Validate(); err != nil {
			t.Errorf("%+v: %v", q, err)
		}
	}
	for _, q := range []billing.ListQuery{
		{Page: 0, Limit: 10}, {Page: -1, Limit: 10}, {Page: 1, Limit: 0}, {Page: 1, Limit: 101},
		{Page: 1, Limit: 10, Plan: "gold"}, {Page: 1, Limit: 10, Sort: "password"}, {Page: 1, Limit: 10, Sort: "email; DROP TABLE x"},
		{Page: 1, Limit: 10, Sort: "--email"},
	} {
		if err := q.Validate(); !errors.Is(err, billing.ErrInvalidQuery) {
			t.Errorf("%+v: %v, want ErrInvalidQuery", q, err)
		}
	}
}

func TestEnsureFreeSubscription(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	u := ecoid.New(ecoid.User)
	first, err := e.svc.EnsureFreeSubscription(ctx, u, "a@example.com")
	if err != nil || first.Plan != billing.Free || first.Status != billing.StatusActive || first.ID.Type() != ecoid.Subscription || first.Email != "a@example.com" {
		t.Fatalf("first = %+v, %v", first, err)
	}
	again, err := e.svc.EnsureFreeSubscription(ctx, u, "b@example.com")
	if err != nil || again != first {
		t.Fatalf("second = %+v, %v; want the first row", again, err)
	}
	for _, bad := range []ecoid.ID{"", "nope", ecoid.New(ecoid.Project)} {
		if _, err := e.svc.EnsureFreeSubscription(ctx, bad, "x@example.com"); err == nil {
			t.Errorf("EnsureFreeSubscription(%q) succeeded", bad)
		}
	}
}

func TestQuotaFor(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	check := func(u ecoid.ID, limit int64, hard bool) {
		t.Helper()
		l, h, err := e.svc.QuotaFor(ctx, u)
		if err != nil || l != limit || h != hard {
			t.Fatalf("QuotaFor = %d, %v, %v; want %d, %v", l, h, err, limit, hard)
		}
	}
	check(ecoid.New(ecoid.User), 1000, true) // no row: Free
	u := e.user(t)
	check(u, 1000, true)
	e.setRow(t, u, func(s *billing.Subscription) { s.Plan = billing.Pro })
	check(u, 100_000, false)
	e.setRow(t, u, func(s *billing.Subscription) { s.Status = billing.StatusCanceled })
	check(u, 1000, true)
	if _, err := e.svc.SetEnterprise(ctx, u, "", billing.Terms{QuotaCalls: 2_500_000, HardCap: true, PriceCents: 50_000}); err != nil {
		t.Fatal(err)
	}
	check(u, 2_500_000, true)
	v := ecoid.New(ecoid.User)
	if _, err := e.svc.SetEnterprise(ctx, v, "v@example.com", billing.Terms{QuotaCalls: 7}); err != nil {
		t.Fatal(err)
	}
	check(v, 7, false)
	if _, err := e.svc.SetEnterprise(ctx, v, "", billing.Terms{QuotaCalls: -1}); err == nil {
		t.Fatal("negative terms accepted")
	}
	if _, err := e.svc.SetEnterprise(ctx, "bad", "", billing.Terms{}); err == nil {
		t.Fatal("invalid user accepted")
	}
}

func TestCurrentWithoutRow(t *testing.T) {
	e := newEnv(t, false)
	u := ecoid.New(ecoid.User)
	cur, err := e.svc.Current(context.Background(), u)
	if err != nil || cur.Plan != billing.Free || cur.UserID != u || cur.ID != "" {
		t.Fatalf("Current = %+v, %v", cur, err)
	}
}

func TestStripeOperationsDisabledWithoutClient(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	u := e.user(t)
	if e.svc.StripeEnabled() {
		t.Fatal("StripeEnabled without a client")
	}
	if _, err := e.svc.Customer(ctx, u, ""); !errors.Is(err, billing.ErrDisabled) {
		t.Errorf("Customer: %v", err)
	}
	if _, err := e.svc.SubscribeFree(ctx, u, ""); !errors.Is(err, billing.ErrDisabled) {
		t.Errorf("SubscribeFree: %v", err)
	}
	if _, err := e.svc.Checkout(ctx, u, "", "pro"); !errors.Is(err, billing.ErrDisabled) {
		t.Errorf("Checkout: %v", err)
	}
	if _, err := e.svc.Portal(ctx, u, ""); !errors.Is(err, billing.ErrDisabled) {
		t.Errorf("Portal: %v", err)
	}
	if _, err := e.svc.Cancel(ctx, u); !errors.Is(err, billing.ErrDisabled) {
		t.Errorf("Cancel: %v", err)
	}
	if _, err := e.svc.Resume(ctx, u); !errors.Is(err, billing.ErrDisabled) {
		t.Errorf("Resume: %v", err)
	}
	if _, err := e.svc.ProcessOverage(ctx); !errors.Is(err, billing.ErrDisabled) {
		t.Errorf("ProcessOverage: %v", err)
	}
	// Plans are validated before Stripe is needed.
	if _, err := e.svc.Checkout(ctx, u, "", "gold"); !errors.Is(err, billing.ErrUnknownPlan) {
		t.Errorf("Checkout(gold): %v", err)
	}
}
