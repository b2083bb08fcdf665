package billing

import (
	"context"
	"errors"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Errors the package and its stores return. Test with errors.Is.
var (
	// ErrNotFound: the subscription or ledger row does not exist.
	ErrNotFound = errors.New("billing: not found")
	// ErrConflict: the write would break a uniqueness rule.
	ErrConflict = errors.New("billing: conflict")
	// ErrUnknownPlan: a plan name that is not free, pro or enterprise.
	ErrUnknownPlan = errors.New("billing: unknown plan")
	// ErrPlanNotForSale: the plan cannot be bought through checkout (free and enterprise).
	ErrPlanNotForSale = errors.New("billing: plan is not sold through checkout")
	// ErrDisabled: the operation needs Stripe and the service has no Stripe client.
	ErrDisabled = errors.New("billing: billing is disabled (no Stripe client)")
	// ErrNoStripeSubscription: the user has no paid Stripe subscription to cancel or
	// resume.
	ErrNoStripeSubscription = errors.New("billing: no Stripe subscription")
	// ErrInvalidQuery: a bad page, limit, plan filter or sort key in a user list query.
	ErrInvalidQuery = errors.New("billing: invalid query")
	// ErrPeriodOpen: overage was asked for a period that has not ended yet.
	ErrPeriodOpen = errors.New("billing: period has not ended")
	// ErrStripe wraps every failed Stripe call (together with stripe-go's error, which
	// errors.As finds as *stripe.Error when Stripe answered).
	ErrStripe = errors.New("billing: Stripe request failed")
	// ErrAlreadySubscribed: checkout was asked for the plan the user is already on.
	ErrAlreadySubscribed = errors.New("billing: already subscribed to this plan")
	// ErrNoUsage: the operation needs a UsageSource and the service has none.
	ErrNoUsage = errors.New("billing: no usage source configured")
)

// Status is the state of a subscription, with Stripe's names.
type Status string

// Subscription statuses. A local Free subscription is StatusActive.
const (
	StatusActive            Status = "active"
	StatusTrialing          Status = "trialing"
	StatusPastDue           Status = "past_due"
	StatusUnpaid            Status = "unpaid"
	StatusCanceled          Status = "canceled"
	StatusIncomplete        Status = "incomplete"
	StatusIncompleteExpired Status = "incomplete_expired"
	StatusPaused            Status = "paused"
)

// Entitled reports whether a subscription in status s gets its plan's terms. Active,
// trialing and past-due subscriptions do (Stripe is still retrying a failed payment);
// every other status falls back to Free.
func (s Status) Entitled() bool {
	return s == StatusActive || s == StatusTrialing || s == StatusPastDue
}

// Subscription is a user's billing state: exactly one row per user (eco_subscriptions).
type Subscription struct {
	ID     ecoid.ID // eco_sub_…, stable for the user's lifetime
	UserID ecoid.ID // eco_usr_…, unique
	Email  string   // the user's email when the row was created (for the admin list)
	Plan   PlanID
	Status Status

	StripeCustomerID     string // "" until a customer was created
	StripeSubscriptionID string // "" on the local Free plan
	CancelAtPeriodEnd    bool
	CurrentPeriodStart   time.Time // zero when Stripe has not reported one
	CurrentPeriodEnd     time.Time

	// Custom are the Enterprise terms; ignored for other plans.
	Custom Terms

	// StateAt is the creation time of the newest Stripe event applied to this row (zero
	// before any). Older events never overwrite a newer state.
	StateAt   time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Terms returns the terms the subscription gets now: its plan's (Custom for Enterprise)
// while its status is entitled, Free's otherwise.
func (s Subscription) Terms() Terms {
	if !s.Status.Entitled() {
		return FreeTerms
	}
	if s.Plan == Enterprise {
		return s.Custom
	}
	t, _ := TermsFor(s.Plan)
	return t
}

// EffectivePlan is the plan whose terms apply now (Free when the status is not entitled).
func (s Subscription) EffectivePlan() PlanID {
	if !s.Status.Entitled() {
		return Free
	}
	return s.Plan
}

// SubscriptionTx is the part of a Store usable inside Store.ProcessEvent. Outside of it
// every call is its own atomic operation.
//
// Terms history: every write that creates a row, or changes what its TermsRecord holds
// (effective plan, terms, Stripe customer or subscription), also appends the row's
// TermsRecordOf in the same atomic write, effective at the row's UpdatedAt, or at the
// previous record's time when UpdatedAt is older (history never goes back). Callers set
// UpdatedAt to the time of the change. Writes that change nothing of it append nothing.
type SubscriptionTx interface {
	// Subscription returns the user's row, or ErrNotFound.
	Subscription(ctx context.Context, user ecoid.ID) (Subscription, error)
	// SubscriptionByCustomer returns the row with this Stripe customer ID, or ErrNotFound.
	SubscriptionByCustomer(ctx context.Context, customerID string) (Subscription, error)
	// EnsureSubscription inserts s when the user has no row and returns the stored row
	// either way (an existing row is returned unchanged). s.ID and s.UserID must be valid.
	EnsureSubscription(ctx context.Context, s Subscription) (Subscription, error)
	// UpdateSubscription atomically reads the user's row, calls fn on it and stores what
	// fn leaves (ID and UserID are kept). It returns the stored row; ErrNotFound when the
	// user has no row; fn's error, storing nothing, when fn fails.
	UpdateSubscription(ctx context.Context, user ecoid.ID, fn func(*Subscription) error) (Subscription, error)
}

// TermsRecord says under which terms a subscription was from At until its next record:
// the terms history the overage cron bills closed periods by (see PeriodTerms).
type TermsRecord struct {
	SubscriptionID       ecoid.ID
	UserID               ecoid.ID
	At                   time.Time // when these terms took effect
	Plan                 PlanID    // the effective plan (Subscription.EffectivePlan)
	Terms                Terms     // the terms then in force (Subscription.Terms)
	StripeCustomerID     string
	StripeSubscriptionID string
}

// TermsRecordOf returns the record of what sub is under now, effective at its UpdatedAt.
func TermsRecordOf(sub Subscription) TermsRecord {
	return TermsRecord{
		SubscriptionID: sub.ID, UserID: sub.UserID, At: sub.UpdatedAt,
		Plan: sub.EffectivePlan(), Terms: sub.Terms(),
		StripeCustomerID: sub.StripeCustomerID, StripeSubscriptionID: sub.StripeSubscriptionID,
	}
}

// SameAs reports whether r and o record the same state (everything but At).
func (r TermsRecord) SameAs(o TermsRecord) bool {
	r.At, o.At = time.Time{}, time.Time{}
	return r == o
}

// BillsOverage reports whether the record's terms charge calls over the quota.
func (r TermsRecord) BillsOverage() bool {
	return !r.Terms.HardCap && r.Terms.OverageMilliCentsPerCall > 0
}

// Event is a Stripe event as recorded in eco_stripe_events.
type Event struct {
	ID      string    // Stripe's evt_… ID
	Type    string    // e.g. "customer.subscription.updated"
	Created time.Time // Stripe's creation time
}

// OverageCharge is one row of the overage ledger (eco_overage_charges), unique per
// (SubscriptionID, Period).
type OverageCharge struct {
	SubscriptionID ecoid.ID
	UserID         ecoid.ID
	Period         time.Time // first day of the month, UTC
	Calls          int64     // calls in the period
	CallsOver      int64     // calls over the quota
	AmountCents    int64
	InvoiceItemID  string    // "" while pending (claimed, Stripe not yet answered)
	ClaimedAt      time.Time // when the current run claimed the row
	ChargedAt      time.Time // zero while pending
}

// PlanGroup is one line of Store.PlanBreakdown.
type PlanGroup struct {
	Plan             PlanID
	Status           Status
	Users            int64
	CustomPriceCents int64 // sum of Custom.PriceCents over the group
}

// Sort keys accepted by ListSubscriptions. A leading "-" sorts descending.
var sortKeys = map[string]bool{
	"created_at": true, "-created_at": true,
	"email": true, "-email": true,
	"plan": true, "-plan": true,
}

// SortKeys returns the accepted user list sort keys.
func SortKeys() []string {
	return []string{"created_at", "-created_at", "email", "-email", "plan", "-plan"}
}

// ListQuery selects a page of subscriptions. Stores may assume it is valid (see
// ListQuery.Validate): Page ≥ 1, Limit in 1..100, Plan empty or a known plan, Sort one of
// SortKeys (empty means "created_at"). Ties are broken by ID.
type ListQuery struct {
	Page  int
	Limit int
	Plan  PlanID // "" for every plan
	Sort  string
}

// Validate returns an error wrapping ErrInvalidQuery when q is out of range.
func (q ListQuery) Validate() error {
	switch {
	case q.Page < 1:
		return errors.Join(ErrInvalidQuery, errors.New("page must be at least 1"))
	case q.Limit < 1 || q.Limit > 100:
		return errors.Join(ErrInvalidQuery, errors.New("limit must be between 1 and 100"))
	case q.Plan != "" && q.Plan != Free && q.Plan != Pro && q.Plan != Enterprise:
		return errors.Join(ErrInvalidQuery, errors.New("plan must be free, pro or enterprise"))
	case q.Sort != "" && !sortKeys[q.Sort]:
		return errors.Join(ErrInvalidQuery, errors.New("sort must be one of created_at, email, plan, optionally prefixed with -"))
	}
	return nil
}

// Store keeps subscriptions, processed Stripe events and the overage ledger. Implementations
// must be safe for concurrent use.
type Store interface {
	SubscriptionTx

	// ProcessEvent runs fn at most once per event ID: when e.ID was already processed it
	// returns (false, nil) without calling fn. Otherwise it records e and calls fn with a
	// SubscriptionTx whose writes commit atomically together with the event row; if fn
	// returns an error neither the event nor fn's writes are kept and the error is
	// returned, so a retry of the event runs fn again. Concurrent calls for one ID run fn
	// once. fn must use only the given tx.
	ProcessEvent(ctx context.Context, e Event, fn func(ctx context.Context, tx SubscriptionTx) error) (bool, error)

	// ListSubscriptions returns one page of rows matching q and the number of matching
	// rows.
	ListSubscriptions(ctx context.Context, q ListQuery) ([]Subscription, int64, error)
	// Subscriptions returns every row on one of plans, ordered by ID.
	Subscriptions(ctx context.Context, plans ...PlanID) ([]Subscription, error)
	// PlanBreakdown counts rows per (plan, status).
	PlanBreakdown(ctx context.Context) ([]PlanGroup, error)

	// ClaimOverage takes the ledger row of (c.SubscriptionID, c.Period) for the caller:
	// it inserts c (pending: InvoiceItemID empty, ClaimedAt = c.ClaimedAt) when there is
	// no row, or re-claims a row that is still pending and was claimed before staleBefore
	// (its run is presumed dead) by setting only its ClaimedAt to c.ClaimedAt (the amounts
	// stay as first claimed, so a retry sends Stripe identical parameters). It returns the
	// row and whether the caller now holds it. A charged row, or a pending
	// row claimed at or after staleBefore, is returned with false.
	ClaimOverage(ctx context.Context, c OverageCharge, staleBefore time.Time) (OverageCharge, bool, error)
	// CompleteOverage stores the invoice item ID of a pending row and marks it charged at
	// `at`. It returns true when it did so, false when the row was already charged; and
	// ErrNotFound when there is no row.
	CompleteOverage(ctx context.Context, sub ecoid.ID, period time.Time, invoiceItemID string, at time.Time) (bool, error)
	// OverageCharge returns the ledger row, or ErrNotFound.
	OverageCharge(ctx context.Context, sub ecoid.ID, period time.Time) (OverageCharge, error)
	// OverageRevenue sums AmountCents of charged rows whose period is in [from, to).
	OverageRevenue(ctx context.Context, from, to time.Time) (int64, error)

	// TermsInForce returns the terms history of [from, to) for every subscription that
	// was under terms billing overage (TermsRecord.BillsOverage) at some instant of it:
	// all of its records in force during [from, to), which are the last record at or
	// before from (unless another record at from follows it) and every record after from
	// and before to. They are ordered by SubscriptionID, then At, then the order they
	// were written in. A row with no record at all (written before the history existed)
	// counts as one record of its current state effective at its CreatedAt.
	TermsInForce(ctx context.Context, from, to time.Time) ([]TermsRecord, error)
}
