package billing

import (
	"fmt"
	"math"
	"time"
)

// PlanID names a plan. The zero value is not a plan.
type PlanID string

// The plans Nexus knows.
const (
	Free       PlanID = "free"       // $0, 1,000 calls a month, hard cap
	Pro        PlanID = "pro"        // $29, 100,000 calls a month, overage $0.001 a call
	Enterprise PlanID = "enterprise" // quota and price set per customer (see Terms)
)

// ParsePlan returns the plan named s ("free", "pro" or "enterprise"), or an error wrapping
// ErrUnknownPlan.
func ParsePlan(s string) (PlanID, error) {
	switch p := PlanID(s); p {
	case Free, Pro, Enterprise:
		return p, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownPlan, s)
}

// Terms are what a plan gives and costs: the monthly quota, whether the quota is a hard
// cap (requests over it are refused) or billed as overage, the monthly price and the
// overage rate. All money is in integer US cents; the overage rate is in thousandths of a
// cent per call so that $0.001 a call is exact.
type Terms struct {
	QuotaCalls int64 // calls included per calendar month (UTC)
	HardCap    bool  // true: calls over QuotaCalls are refused; false: they are billed
	PriceCents int64 // monthly price in cents
	// OverageMilliCentsPerCall is the price of one call over the quota in 1/1000 of a
	// cent: 100 is $0.001 a call. Zero means calls over the quota cost nothing.
	OverageMilliCentsPerCall int64
}

// Standard plan terms. Enterprise terms are set per subscription with
// Service.SetEnterprise.
var (
	FreeTerms = Terms{QuotaCalls: 1_000, HardCap: true}
	ProTerms  = Terms{QuotaCalls: 100_000, PriceCents: 2_900, OverageMilliCentsPerCall: 100}
)

// TermsFor returns the standard terms of plan p. Enterprise has no standard terms: it and
// any unknown plan return Free's terms and false.
func TermsFor(p PlanID) (Terms, bool) {
	switch p {
	case Free:
		return FreeTerms, true
	case Pro:
		return ProTerms, true
	}
	return FreeTerms, false
}

// OverageCents is the charge for calls over the quota under t, in cents.
//
// Rounding rule (the only one in this package): the exact amount
// callsOver × OverageMilliCentsPerCall / 1000 is rounded UP to the next whole cent, so a
// charge is never below the published rate: 1 to 10 calls over on Pro cost 1 cent, 11 cost
// 2 cents, 12,345 cost 1,235 cents. It returns 0 when callsOver ≤ 0, the rate is zero or
// the plan has a hard cap, and saturates at math.MaxInt64 instead of overflowing.
func (t Terms) OverageCents(callsOver int64) int64 {
	if callsOver <= 0 || t.OverageMilliCentsPerCall <= 0 || t.HardCap {
		return 0
	}
	if callsOver > (math.MaxInt64-999)/t.OverageMilliCentsPerCall {
		return math.MaxInt64
	}
	return (callsOver*t.OverageMilliCentsPerCall + 999) / 1000
}

// CallsOver returns how many of calls exceed the quota of t (never negative).
func (t Terms) CallsOver(calls int64) int64 {
	if calls <= t.QuotaCalls {
		return 0
	}
	return calls - t.QuotaCalls
}

// PeriodStart returns the billing period that contains t: the first instant of t's
// calendar month in UTC. Billing periods are calendar months in UTC and are identified by
// this first day; the usage quota counter uses the same periods.
func PeriodStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PeriodEnd returns the end (exclusive) of the period that starts at start: the first
// instant of the next month.
func PeriodEnd(start time.Time) time.Time {
	return PeriodStart(start).AddDate(0, 1, 0)
}

// periodKey formats a period as its first day, YYYY-MM-DD.
func periodKey(period time.Time) string { return PeriodStart(period).Format(time.DateOnly) }
