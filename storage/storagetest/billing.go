package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// testBilling checks every billing.Store behaviour.
func testBilling(t *testing.T, newStores NewStores) {
	store := func(t *testing.T) billing.Store {
		t.Helper()
		return provided(t, newStores(t).Billing, "Billing")
	}
	ctx := context.Background()
	base := time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)

	newSub := func(i int) billing.Subscription {
		at := base.Add(time.Duration(i) * time.Minute)
		return billing.Subscription{
			ID: ecoid.NewAt(ecoid.Subscription, at), UserID: ecoid.NewAt(ecoid.User, at),
			Email: fmt.Sprintf("user%02d@example.com", i), Plan: billing.Free, Status: billing.StatusActive,
			CreatedAt: at, UpdatedAt: at,
		}
	}
	ensure := func(t *testing.T, s billing.Store, sub billing.Subscription) billing.Subscription {
		t.Helper()
		got, err := s.EnsureSubscription(ctx, sub)
		if err != nil {
			t.Fatalf("EnsureSubscription: %v", err)
		}
		return got
	}

	t.Run("EnsureThenGet", func(t *testing.T) {
		s := store(t)
		sub := newSub(1)
		if _, err := s.Subscription(ctx, sub.UserID); !errors.Is(err, billing.ErrNotFound) {
			t.Fatalf("Subscription before insert: %v, want ErrNotFound", err)
		}
		got := ensure(t, s, sub)
		if got.ID != sub.ID || got.UserID != sub.UserID || got.Plan != billing.Free || !got.CreatedAt.Equal(sub.CreatedAt) {
			t.Fatalf("Ensure returned %+v", got)
		}
		read, err := s.Subscription(ctx, sub.UserID)
		if err != nil || read != got {
			t.Fatalf("Subscription = %+v, %v; want %+v", read, err, got)
		}
	})

	t.Run("EnsureKeepsExistingRow", func(t *testing.T) {
		s := store(t)
		first := ensure(t, s, newSub(1))
		again := first
		again.ID, again.Plan, again.Email = ecoid.New(ecoid.Subscription), billing.Pro, "other@example.com"
		got := ensure(t, s, again)
		if got != first {
			t.Fatalf("second Ensure returned %+v, want the first row %+v", got, first)
		}
	})

	t.Run("EnsureRejectsInvalidIDs", func(t *testing.T) {
		s := store(t)
		sub := newSub(1)
		sub.ID = ""
		if _, err := s.EnsureSubscription(ctx, sub); err == nil {
			t.Fatal("Ensure accepted an empty subscription ID")
		}
	})

	t.Run("RoundTripsEveryField", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		want := sub
		got, err := s.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error {
			r.Plan, r.Status = billing.Enterprise, billing.StatusPastDue
			r.StripeCustomerID, r.StripeSubscriptionID, r.CancelAtPeriodEnd = "cus_1", "sub_1", true
			r.CurrentPeriodStart, r.CurrentPeriodEnd = base, base.AddDate(0, 1, 0)
			r.Custom = billing.Terms{QuotaCalls: 5_000_000, HardCap: true, PriceCents: 99_900, OverageMilliCentsPerCall: 50}
			r.StateAt, r.UpdatedAt = base.Add(time.Hour), base.Add(2*time.Hour)
			r.ID, r.UserID = "", "" // ignored: the row keeps its identity
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateSubscription: %v", err)
		}
		want.Plan, want.Status = billing.Enterprise, billing.StatusPastDue
		want.StripeCustomerID, want.StripeSubscriptionID, want.CancelAtPeriodEnd = "cus_1", "sub_1", true
		want.CurrentPeriodStart, want.CurrentPeriodEnd = base.Round(time.Microsecond), base.AddDate(0, 1, 0).Round(time.Microsecond)
		want.Custom = billing.Terms{QuotaCalls: 5_000_000, HardCap: true, PriceCents: 99_900, OverageMilliCentsPerCall: 50}
		want.StateAt, want.UpdatedAt = base.Add(time.Hour).Round(time.Microsecond), base.Add(2*time.Hour).Round(time.Microsecond)
		read, rerr := s.Subscription(ctx, sub.UserID)
		for _, g := range []billing.Subscription{got, read} {
			if rerr != nil || !billingSameSub(g, want) {
				t.Fatalf("stored %+v (%v), want %+v", g, rerr, want)
			}
		}
		byCust, err := s.SubscriptionByCustomer(ctx, "cus_1")
		if err != nil || !billingSameSub(byCust, want) {
			t.Fatalf("SubscriptionByCustomer = %+v, %v", byCust, err)
		}
		if _, err := s.SubscriptionByCustomer(ctx, "cus_unknown"); !errors.Is(err, billing.ErrNotFound) {
			t.Fatalf("unknown customer: %v", err)
		}
		if _, err := s.SubscriptionByCustomer(ctx, ""); !errors.Is(err, billing.ErrNotFound) {
			t.Fatalf("empty customer: %v", err)
		}
	})

	t.Run("UpdateErrors", func(t *testing.T) {
		s := store(t)
		a, b := ensure(t, s, newSub(1)), ensure(t, s, newSub(2))
		if _, err := s.UpdateSubscription(ctx, ecoid.New(ecoid.User), func(*billing.Subscription) error { return nil }); !errors.Is(err, billing.ErrNotFound) {
			t.Fatalf("update of a missing row: %v", err)
		}
		boom := errors.New("boom")
		if _, err := s.UpdateSubscription(ctx, a.UserID, func(r *billing.Subscription) error { r.Plan = billing.Pro; return boom }); !errors.Is(err, boom) {
			t.Fatalf("fn error: %v", err)
		}
		if got, _ := s.Subscription(ctx, a.UserID); got.Plan != billing.Free {
			t.Fatalf("a failed update was stored: %+v", got)
		}
		if _, err := s.UpdateSubscription(ctx, a.UserID, func(r *billing.Subscription) error { r.StripeCustomerID = "cus_same"; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateSubscription(ctx, b.UserID, func(r *billing.Subscription) error { r.StripeCustomerID = "cus_same"; return nil }); !errors.Is(err, billing.ErrConflict) {
			t.Fatalf("second row with one customer ID: %v, want ErrConflict", err)
		}
	})

	t.Run("ConcurrentUpdatesDoNotLoseWrites", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		const n = 20
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error {
					r.Custom.QuotaCalls++
					return nil
				}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got, _ := s.Subscription(ctx, sub.UserID); got.Custom.QuotaCalls != n {
			t.Fatalf("after %d concurrent increments the counter is %d", n, got.Custom.QuotaCalls)
		}
	})

	t.Run("ProcessEventOnce", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		e := billing.Event{ID: "evt_1", Type: "customer.subscription.updated", Created: base}
		calls := 0
		apply := func(ctx context.Context, tx billing.SubscriptionTx) error {
			calls++
			_, err := tx.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error { r.Plan = billing.Pro; return nil })
			return err
		}
		done, err := s.ProcessEvent(ctx, e, apply)
		if err != nil || !done {
			t.Fatalf("first ProcessEvent = %v, %v", done, err)
		}
		done, err = s.ProcessEvent(ctx, e, apply)
		if err != nil || done || calls != 1 {
			t.Fatalf("second ProcessEvent = %v, %v (fn ran %d times)", done, err, calls)
		}
		if got, _ := s.Subscription(ctx, sub.UserID); got.Plan != billing.Pro {
			t.Fatalf("the event's write is missing: %+v", got)
		}
	})

	t.Run("ProcessEventFailureKeepsNothing", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		other := newSub(2)
		e := billing.Event{ID: "evt_fail", Type: "checkout.session.completed", Created: base}
		boom := errors.New("boom")
		_, err := s.ProcessEvent(ctx, e, func(ctx context.Context, tx billing.SubscriptionTx) error {
			if _, err := tx.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error { r.Plan = billing.Pro; return nil }); err != nil {
				return err
			}
			if _, err := tx.EnsureSubscription(ctx, other); err != nil {
				return err
			}
			if got, err := tx.Subscription(ctx, sub.UserID); err != nil || got.Plan != billing.Pro {
				return fmt.Errorf("the tx does not see its own write: %+v %v", got, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("ProcessEvent = %v, want boom", err)
		}
		if got, _ := s.Subscription(ctx, sub.UserID); got.Plan != billing.Free {
			t.Fatalf("the failed event's update was kept: %+v", got)
		}
		if _, err := s.Subscription(ctx, other.UserID); !errors.Is(err, billing.ErrNotFound) {
			t.Fatalf("the failed event's insert was kept: %v", err)
		}
		done, err := s.ProcessEvent(ctx, e, func(context.Context, billing.SubscriptionTx) error { return nil })
		if err != nil || !done {
			t.Fatalf("retry after failure = %v, %v; want it processed", done, err)
		}
	})

	t.Run("ProcessEventTxReads", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		if _, err := s.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error { r.StripeCustomerID = "cus_tx"; return nil }); err != nil {
			t.Fatal(err)
		}
		_, err := s.ProcessEvent(ctx, billing.Event{ID: "evt_r", Type: "x", Created: base}, func(ctx context.Context, tx billing.SubscriptionTx) error {
			got, err := tx.SubscriptionByCustomer(ctx, "cus_tx")
			if err != nil || got.UserID != sub.UserID {
				return fmt.Errorf("by customer in tx: %+v %v", got, err)
			}
			if _, err := tx.Subscription(ctx, ecoid.New(ecoid.User)); !errors.Is(err, billing.ErrNotFound) {
				return fmt.Errorf("missing user in tx: %v", err)
			}
			if _, err := tx.UpdateSubscription(ctx, ecoid.New(ecoid.User), func(*billing.Subscription) error { return nil }); !errors.Is(err, billing.ErrNotFound) {
				return fmt.Errorf("update of a missing user in tx: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ProcessEventConcurrentOnce", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		var ran atomic.Int64
		var wg sync.WaitGroup
		var doneCount atomic.Int64
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done, err := s.ProcessEvent(ctx, billing.Event{ID: "evt_c", Type: "x", Created: base}, func(ctx context.Context, tx billing.SubscriptionTx) error {
					ran.Add(1)
					_, err := tx.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error { r.Custom.QuotaCalls++; return nil })
					return err
				})
				if err != nil {
					t.Error(err)
				}
				if done {
					doneCount.Add(1)
				}
			}()
		}
		wg.Wait()
		got, _ := s.Subscription(ctx, sub.UserID)
		if ran.Load() != 1 || doneCount.Load() != 1 || got.Custom.QuotaCalls != 1 {
			t.Fatalf("fn ran %d times, %d calls reported done, counter %d; want 1, 1, 1", ran.Load(), doneCount.Load(), got.Custom.QuotaCalls)
		}
	})

	t.Run("ListPagesFiltersAndSorts", func(t *testing.T) {
		s := store(t)
		plans := []billing.PlanID{billing.Free, billing.Pro, billing.Free, billing.Enterprise, billing.Pro, billing.Free, billing.Free}
		var all []billing.Subscription
		for i, p := range plans {
			sub := newSub(i)
			sub.Email = fmt.Sprintf("u%d@example.com", (i*5)%7) // emails in another order than creation
			sub.Plan = p
			all = append(all, ensure(t, s, sub))
		}
		rows, total, err := s.ListSubscriptions(ctx, billing.ListQuery{Page: 1, Limit: 3, Sort: "created_at"})
		if err != nil || total != 7 || len(rows) != 3 || rows[0].ID != all[0].ID || rows[2].ID != all[2].ID {
			t.Fatalf("page 1 = %d rows, total %d, %v", len(rows), total, err)
		}
		rows, _, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 3, Limit: 3, Sort: "created_at"})
		if len(rows) != 1 || rows[0].ID != all[6].ID {
			t.Fatalf("page 3 = %+v", rows)
		}
		rows, total, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 9, Limit: 3, Sort: "created_at"})
		if len(rows) != 0 || total != 7 {
			t.Fatalf("page past the end = %d rows, total %d", len(rows), total)
		}
		rows, total, err = s.ListSubscriptions(ctx, billing.ListQuery{Page: math.MaxInt, Limit: 100, Sort: "created_at"})
		if err != nil || len(rows) != 0 || total != 7 {
			t.Fatalf("page MaxInt = %d rows, total %d, %v", len(rows), total, err)
		}
		rows, _, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 1, Limit: 100, Sort: "-created_at"})
		if len(rows) != 7 || rows[0].ID != all[6].ID || rows[6].ID != all[0].ID {
			t.Fatal("-created_at is not newest first")
		}
		rows, _, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 1, Limit: 100, Sort: "email"})
		for i := 1; i < len(rows); i++ {
			if rows[i-1].Email > rows[i].Email {
				t.Fatalf("email sort: %q before %q", rows[i-1].Email, rows[i].Email)
			}
		}
		rows, _, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 1, Limit: 100, Sort: "-email"})
		if rows[0].Email != "u6@example.com" {
			t.Fatalf("-email first = %q", rows[0].Email)
		}
		rows, _, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 1, Limit: 100, Sort: "plan"})
		if rows[0].Plan != billing.Enterprise || rows[6].Plan != billing.Pro {
			t.Fatalf("plan sort: first %s last %s", rows[0].Plan, rows[6].Plan)
		}
		rows, _, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 1, Limit: 100, Sort: "-plan"})
		if rows[0].Plan != billing.Pro {
			t.Fatalf("-plan first = %s", rows[0].Plan)
		}
		rows, total, _ = s.ListSubscriptions(ctx, billing.ListQuery{Page: 1, Limit: 1, Plan: billing.Pro, Sort: "created_at"})
		if total != 2 || len(rows) != 1 || rows[0].ID != all[1].ID {
			t.Fatalf("plan filter: total %d rows %+v", total, rows)
		}
	})

	t.Run("SubscriptionsByPlanAndBreakdown", func(t *testing.T) {
		s := store(t)
		var pro []ecoid.ID
		for i, p := range []billing.PlanID{billing.Pro, billing.Free, billing.Pro, billing.Enterprise, billing.Pro} {
			sub := ensure(t, s, newSub(i))
			status := billing.StatusActive
			if i == 4 {
				status = billing.StatusCanceled
			}
			price := int64(0)
			if p == billing.Enterprise {
				price = 50_000
			}
			if _, err := s.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error {
				r.Plan, r.Status, r.Custom.PriceCents = p, status, price
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if p == billing.Pro {
				pro = append(pro, sub.ID)
			}
		}
		rows, err := s.Subscriptions(ctx, billing.Pro)
		if err != nil || len(rows) != 3 || rows[0].ID != pro[0] || rows[2].ID != pro[2] {
			t.Fatalf("Subscriptions(pro) = %d rows, %v", len(rows), err)
		}
		rows, _ = s.Subscriptions(ctx, billing.Pro, billing.Enterprise)
		if len(rows) != 4 {
			t.Fatalf("Subscriptions(pro, enterprise) = %d rows", len(rows))
		}
		groups, err := s.PlanBreakdown(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]billing.PlanGroup{
			"enterprise/active": {Plan: billing.Enterprise, Status: billing.StatusActive, Users: 1, CustomPriceCents: 50_000},
			"free/active":       {Plan: billing.Free, Status: billing.StatusActive, Users: 1},
			"pro/active":        {Plan: billing.Pro, Status: billing.StatusActive, Users: 2},
			"pro/canceled":      {Plan: billing.Pro, Status: billing.StatusCanceled, Users: 1},
		}
		if len(groups) != len(want) {
			t.Fatalf("PlanBreakdown = %+v", groups)
		}
		for _, g := range groups {
			if want[string(g.Plan)+"/"+string(g.Status)] != g {
				t.Fatalf("PlanBreakdown group %+v, want %+v", g, want[string(g.Plan)+"/"+string(g.Status)])
			}
		}
	})

	t.Run("OverageLedger", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		period := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		c := billing.OverageCharge{SubscriptionID: sub.ID, UserID: sub.UserID, Period: period.Add(36 * time.Hour),
			Calls: 112_345, CallsOver: 12_345, AmountCents: 1_235, ClaimedAt: base}
		if _, err := s.OverageCharge(ctx, sub.ID, period); !errors.Is(err, billing.ErrNotFound) {
			t.Fatalf("OverageCharge before claim: %v", err)
		}
		if _, err := s.CompleteOverage(ctx, sub.ID, period, "ii_x", base); !errors.Is(err, billing.ErrNotFound) {
			t.Fatalf("CompleteOverage before claim: %v", err)
		}
		got, claimed, err := s.ClaimOverage(ctx, c, base.Add(-time.Hour))
		if err != nil || !claimed || !got.Period.Equal(period) || got.AmountCents != 1_235 || got.InvoiceItemID != "" {
			t.Fatalf("first claim = %+v, %v, %v", got, claimed, err)
		}
		// A fresh pending row is not taken over.
		again := c
		again.AmountCents, again.ClaimedAt = 9_999, base.Add(time.Minute)
		if got, claimed, err = s.ClaimOverage(ctx, again, base.Add(-time.Hour)); err != nil || claimed || got.AmountCents != 1_235 {
			t.Fatalf("claim of a fresh pending row = %+v, %v, %v", got, claimed, err)
		}
		// A stale one is, keeping its amounts.
		got, claimed, err = s.ClaimOverage(ctx, again, base.Add(time.Second))
		if err != nil || !claimed || got.AmountCents != 1_235 || got.CallsOver != 12_345 || !got.ClaimedAt.Equal(base.Add(time.Minute)) {
			t.Fatalf("claim of a stale pending row = %+v, %v, %v", got, claimed, err)
		}
		done, err := s.CompleteOverage(ctx, sub.ID, period, "ii_1", base.Add(2*time.Minute))
		if err != nil || !done {
			t.Fatalf("CompleteOverage = %v, %v", done, err)
		}
		if done, err = s.CompleteOverage(ctx, sub.ID, period, "ii_2", base.Add(3*time.Minute)); err != nil || done {
			t.Fatalf("second CompleteOverage = %v, %v; want false", done, err)
		}
		got, err = s.OverageCharge(ctx, sub.ID, period)
		if err != nil || got.InvoiceItemID != "ii_1" || !got.ChargedAt.Equal(base.Add(2*time.Minute).Round(time.Microsecond)) ||
			got.UserID != sub.UserID || got.Calls != 112_345 || !got.Period.Equal(period) {
			t.Fatalf("charged row = %+v, %v", got, err)
		}
		// A charged row is never claimed again, however old.
		if _, claimed, err = s.ClaimOverage(ctx, again, base.AddDate(1, 0, 0)); err != nil || claimed {
			t.Fatalf("claim of a charged row = %v, %v", claimed, err)
		}
	})

	t.Run("OverageRevenue", func(t *testing.T) {
		s := store(t)
		a, b := ensure(t, s, newSub(1)), ensure(t, s, newSub(2))
		jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		feb := jan.AddDate(0, 1, 0)
		for _, x := range []struct {
			sub    billing.Subscription
			period time.Time
			cents  int64
			charge bool
		}{{a, jan, 100, true}, {b, jan, 250, true}, {a, feb, 40, true}, {b, feb, 7, false}} {
			if _, _, err := s.ClaimOverage(ctx, billing.OverageCharge{SubscriptionID: x.sub.ID, UserID: x.sub.UserID,
				Period: x.period, Calls: 1, CallsOver: 1, AmountCents: x.cents, ClaimedAt: base}, base); err != nil {
				t.Fatal(err)
			}
			if x.charge {
				if _, err := s.CompleteOverage(ctx, x.sub.ID, x.period, "ii_"+x.sub.ID.String()+x.period.String(), base); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, q := range []struct {
			from, to time.Time
			want     int64
		}{{jan, feb, 350}, {feb, feb.AddDate(0, 1, 0), 40}, {time.Time{}, feb.AddDate(0, 1, 0), 390}, {jan.Add(time.Hour), feb.Add(time.Hour), 40}, {feb.AddDate(0, 1, 0), feb.AddDate(0, 2, 0), 0}} {
			if got, err := s.OverageRevenue(ctx, q.from, q.to); err != nil || got != q.want {
				t.Errorf("OverageRevenue(%s, %s) = %d, %v; want %d", q.from, q.to, got, err, q.want)
			}
		}
	})

	// at returns a subscription change fn that sets plan and status at time when.
	set := func(plan billing.PlanID, status billing.Status, when time.Time) func(*billing.Subscription) error {
		return func(r *billing.Subscription) error {
			r.Plan, r.Status, r.UpdatedAt = plan, status, when
			return nil
		}
	}
	history := func(t *testing.T, s billing.Store, from, to time.Time) map[ecoid.ID]string {
		t.Helper()
		recs, err := s.TermsInForce(ctx, from, to)
		if err != nil {
			t.Fatalf("TermsInForce: %v", err)
		}
		out := map[ecoid.ID]string{}
		for i, r := range recs {
			if i > 0 && recs[i-1].SubscriptionID > r.SubscriptionID {
				t.Fatalf("TermsInForce not ordered by subscription: %v", recs)
			}
			if out[r.SubscriptionID] != "" {
				out[r.SubscriptionID] += " "
			}
			out[r.SubscriptionID] += fmt.Sprintf("%s/%d/%s@%s", r.Plan, r.Terms.QuotaCalls, r.StripeSubscriptionID, r.At.UTC().Format("01-02T15"))
		}
		return out
	}

	t.Run("TermsHistoryRecordsChanges", func(t *testing.T) {
		s := store(t)
		jan := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
		sub := newSub(1)
		sub.CreatedAt, sub.UpdatedAt = jan, jan
		sub = ensure(t, s, sub)
		ensure(t, s, sub) // an existing row: nothing new
		update := func(fn func(*billing.Subscription) error) {
			t.Helper()
			if _, err := s.UpdateSubscription(ctx, sub.UserID, fn); err != nil {
				t.Fatal(err)
			}
		}
		// Changes that leave the terms alone record nothing.
		update(func(r *billing.Subscription) error {
			r.Email, r.UpdatedAt = "new@example.com", jan.Add(time.Hour)
			return nil
		})
		update(func(r *billing.Subscription) error { r.Custom.QuotaCalls = 7; return nil }) // ignored on Free
		update(set(billing.Pro, billing.StatusActive, jan.AddDate(0, 0, 5)))
		update(func(r *billing.Subscription) error { r.StripeSubscriptionID = "sub_1"; return nil }) // at the same time
		update(set(billing.Pro, billing.StatusPastDue, jan.AddDate(0, 0, 6)))                        // still entitled: same terms
		// A change whose UpdatedAt is older than the last record is recorded at that record.
		update(set(billing.Pro, billing.StatusCanceled, jan.AddDate(0, 0, 1)))
		want := "free/1000/@01-05T00 pro/100000/@01-10T00 pro/100000/sub_1@01-10T00 free/1000/sub_1@01-10T00"
		if got := history(t, s, jan.AddDate(0, 0, -1), jan.AddDate(0, 1, 0)); got[sub.ID] != want {
			t.Fatalf("history\n got %s\nwant %s", got[sub.ID], want)
		}
		// An event's changes are recorded with it, and not when it rolls back.
		boom := errors.New("boom")
		feb := jan.AddDate(0, 1, 0)
		_, err := s.ProcessEvent(ctx, billing.Event{ID: "evt_t1", Type: "x", Created: feb}, func(ctx context.Context, tx billing.SubscriptionTx) error {
			if _, err := tx.UpdateSubscription(ctx, sub.UserID, set(billing.Enterprise, billing.StatusActive, feb)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, err := s.ProcessEvent(ctx, billing.Event{ID: "evt_t2", Type: "x", Created: feb}, func(ctx context.Context, tx billing.SubscriptionTx) error {
			_, err := tx.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error {
				r.Plan, r.Status, r.UpdatedAt = billing.Enterprise, billing.StatusActive, feb.Add(time.Hour)
				r.Custom = billing.Terms{QuotaCalls: 2_000_000, OverageMilliCentsPerCall: 50}
				return nil
			})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := history(t, s, feb, feb.AddDate(0, 1, 0)); got[sub.ID] != "free/1000/sub_1@01-10T00 enterprise/2000000/sub_1@02-05T01" {
			t.Fatalf("history after events: %s", got[sub.ID])
		}
	})

	t.Run("TermsInForcePerPeriod", func(t *testing.T) {
		s := store(t)
		jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		feb, mar, apr := jan.AddDate(0, 1, 0), jan.AddDate(0, 2, 0), jan.AddDate(0, 3, 0)
		mk := func(i int, created time.Time, changes ...func(*billing.Subscription) error) billing.Subscription {
			t.Helper()
			sub := newSub(i)
			sub.CreatedAt, sub.UpdatedAt = created, created
			sub = ensure(t, s, sub)
			for _, fn := range changes {
				if _, err := s.UpdateSubscription(ctx, sub.UserID, fn); err != nil {
					t.Fatal(err)
				}
			}
			return sub
		}
		// Pro from Jan 10, deleted Feb 20.
		deleted := mk(1, jan.AddDate(0, 0, 4), set(billing.Pro, billing.StatusActive, jan.AddDate(0, 0, 9)), set(billing.Free, billing.StatusActive, feb.AddDate(0, 0, 19)))
		free := mk(2, jan)
		// Pro from exactly Feb 1: January's Free is superseded at the period's start.
		edge := mk(3, jan.AddDate(0, 0, 2), set(billing.Pro, billing.StatusActive, feb))
		later := mk(4, jan, set(billing.Pro, billing.StatusActive, mar.AddDate(0, 0, 4)))
		capped := mk(5, jan, func(r *billing.Subscription) error {
			r.Plan, r.Custom = billing.Enterprise, billing.Terms{QuotaCalls: 10, HardCap: true, OverageMilliCentsPerCall: 5}
			return nil
		})
		got := history(t, s, feb, mar)
		want := map[ecoid.ID]string{
			deleted.ID: "pro/100000/@01-10T00 free/1000/@02-20T00",
			edge.ID:    "pro/100000/@02-01T00",
		}
		if len(got) != len(want) || got[deleted.ID] != want[deleted.ID] || got[edge.ID] != want[edge.ID] {
			t.Fatalf("February:\n got %v\nwant %v", got, want)
		}
		if got := history(t, s, jan, feb); len(got) != 1 || got[deleted.ID] != "free/1000/@01-05T00 pro/100000/@01-10T00" {
			t.Fatalf("January: %v", got)
		}
		if got := history(t, s, mar, apr); len(got) != 2 || got[edge.ID] != "pro/100000/@02-01T00" || got[later.ID] != "free/1000/@01-01T00 pro/100000/@03-05T00" {
			t.Fatalf("March: %v", got)
		}
		_, _ = free, capped // never billed: a hard cap whatever the quota
	})

	t.Run("ConcurrentClaimsOneWinner", func(t *testing.T) {
		s := store(t)
		sub := ensure(t, s, newSub(1))
		period := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		var winners atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, claimed, err := s.ClaimOverage(ctx, billing.OverageCharge{SubscriptionID: sub.ID, UserID: sub.UserID,
					Period: period, Calls: 2, CallsOver: 1, AmountCents: 1, ClaimedAt: base}, base.Add(-time.Minute))
				if err != nil {
					t.Error(err)
				}
				if claimed {
					winners.Add(1)
				}
			}()
		}
		wg.Wait()
		if winners.Load() != 1 {
			t.Fatalf("%d concurrent claims won, want 1", winners.Load())
		}
	})
}

// billingSameSub compares subscriptions with times compared by instant.
func billingSameSub(a, b billing.Subscription) bool {
	times := func(s billing.Subscription) []time.Time {
		return []time.Time{s.CurrentPeriodStart, s.CurrentPeriodEnd, s.StateAt, s.CreatedAt, s.UpdatedAt}
	}
	ta, tb := times(a), times(b)
	for i := range ta {
		if !ta[i].Equal(tb[i]) {
			return false
		}
	}
	a.CurrentPeriodStart, a.CurrentPeriodEnd, a.StateAt, a.CreatedAt, a.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	b.CurrentPeriodStart, b.CurrentPeriodEnd, b.StateAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}
