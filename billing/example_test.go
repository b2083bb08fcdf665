package billing_test

import (
	"context"
	"fmt"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

// Quotas work without Stripe: every registered user gets a Free row, and QuotaFor is the
// function the usage quota middleware takes.
func Example() {
	svc := billing.NewService(memory.NewBillingStore(), billing.Config{})
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	if _, err := svc.EnsureFreeSubscription(ctx, user, "ada@example.com"); err != nil {
		panic(err)
	}
	limit, hardCap, _ := svc.QuotaFor(ctx, user)
	fmt.Println("free:", limit, hardCap)

	if _, err := svc.SetEnterprise(ctx, user, "", billing.Terms{QuotaCalls: 5_000_000, PriceCents: 150_000}); err != nil {
		panic(err)
	}
	limit, hardCap, _ = svc.QuotaFor(ctx, user)
	fmt.Println("enterprise:", limit, hardCap)
	_, err := svc.Checkout(ctx, user, "", "pro")
	fmt.Println(err)
	// Output:
	// free: 1000 true
	// enterprise: 5000000 false
	// billing: billing is disabled (no Stripe client)
}

// Overage is rounded up to whole cents: $0.001 a call on Pro.
func ExampleTerms_OverageCents() {
	pro := billing.ProTerms
	for _, calls := range []int64{100_000, 100_001, 112_345} {
		over := pro.CallsOver(calls)
		fmt.Printf("%d calls: %d over, %d cents\n", calls, over, pro.OverageCents(over))
	}
	// Output:
	// 100000 calls: 0 over, 0 cents
	// 100001 calls: 1 over, 1 cents
	// 112345 calls: 12345 over, 1235 cents
}
