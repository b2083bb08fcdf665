package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
)

// TestBillingTermsOfRowsBeforeTheHistory: a subscription written before migration 0007
// has no terms record. It counts as its current state since its creation, and its first
// change records that state first, so the period before the change stays billable.
func TestBillingTermsOfRowsBeforeTheHistory(t *testing.T) {
	db := pgtest.New(t)
	s := postgres.NewBillingStore(db)
	ctx := context.Background()
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feb, mar := jan.AddDate(0, 1, 0), jan.AddDate(0, 2, 0)
	sub, err := s.EnsureSubscription(ctx, billing.Subscription{
		ID: ecoid.New(ecoid.Subscription), UserID: ecoid.New(ecoid.User), Plan: billing.Free, Status: billing.StatusActive,
		CreatedAt: jan, UpdatedAt: jan,
	})
	if err != nil {
		t.Fatal(err)
	}
	// As if it had become Pro before the history existed.
	if _, err := db.ExecContext(ctx, `UPDATE eco_subscriptions SET plan = 'pro', stripe_customer_id = 'cus_old' WHERE id = $1`, sub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM eco_subscription_terms WHERE subscription_id = $1`, sub.ID); err != nil {
		t.Fatal(err)
	}
	recs, err := s.TermsInForce(ctx, feb, mar)
	if err != nil || len(recs) != 1 || recs[0].Plan != billing.Pro || !recs[0].At.Equal(jan) || recs[0].StripeCustomerID != "cus_old" {
		t.Fatalf("legacy row in February = %+v, %v", recs, err)
	}
	// Deleted on Feb 20: February keeps its Pro part.
	if _, err := s.UpdateSubscription(ctx, sub.UserID, func(r *billing.Subscription) error {
		r.Plan, r.UpdatedAt = billing.Free, feb.AddDate(0, 0, 19)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	recs, err = s.TermsInForce(ctx, feb, mar)
	if err != nil || len(recs) != 2 || recs[0].Plan != billing.Pro || !recs[0].At.Equal(jan) || recs[1].Plan != billing.Free || !recs[1].At.Equal(feb.AddDate(0, 0, 19)) {
		t.Fatalf("February after the change = %+v, %v", recs, err)
	}
	if recs, _ := s.TermsInForce(ctx, mar, mar.AddDate(0, 1, 0)); len(recs) != 0 {
		t.Fatalf("March bills nothing: %+v", recs)
	}
}
