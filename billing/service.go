// Package billing sells Nexus plans through Stripe: plans and their quotas, a subscription
// service over stripe-go, the Stripe webhook handler, idempotent overage invoicing and the
// admin metrics.
//
// The local part (plans, a user's current plan, QuotaFor, the admin metrics) works without
// Stripe; the operations that talk to Stripe return ErrDisabled when the Service has no
// Stripe client. Money is always integer US cents; see Terms.OverageCents for the one
// rounding rule. Billing periods are calendar months in UTC (PeriodStart).
package billing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/stripe/stripe-go/v76/client"
)

// UsageSource reports API calls counted by the usage package (or anything else). Billing
// uses it for overage and the admin metrics.
type UsageSource interface {
	// PeriodCalls returns the calls the user made in the billing period starting at period.
	PeriodCalls(ctx context.Context, user ecoid.ID, period time.Time) (int64, error)
	// TotalCalls returns all users' calls in [from, to).
	TotalCalls(ctx context.Context, from, to time.Time) (int64, error)
	// TopUsers returns the n users with the most calls in [from, to), most first.
	TopUsers(ctx context.Context, from, to time.Time, n int) ([]UserCalls, error)
}

// UserCalls is one user's call count.
type UserCalls struct {
	UserID ecoid.ID
	Calls  int64
}

// PriceIDs are the Stripe price IDs of the plans (recurring monthly prices). They are
// also the only way a webhook learns a plan: a subscription is on the plan its price maps
// to, never on what its metadata says (see PlanOf).
type PriceIDs struct {
	Free string // a $0 price; "" disables SubscribeFree's Stripe subscription
	Pro  string // the $29 price; required for Pro checkout
	// Plans maps further price IDs to the plan each bills, Free or Pro (a yearly Pro
	// price, one being retired). Enterprise is not granted by a price: its terms are set
	// per customer with SetEnterprise, so entries naming it are ignored.
	Plans map[string]PlanID
}

// PlanOf returns the plan a Stripe price ID bills, and false for a price that is not
// configured (which upgrades nothing).
func (p PriceIDs) PlanOf(price string) (PlanID, bool) {
	switch {
	case price == "":
		return "", false
	case price == p.Pro:
		return Pro, true
	case price == p.Free:
		return Free, true
	}
	if plan, ok := p.Plans[price]; ok && (plan == Pro || plan == Free) {
		return plan, true
	}
	return "", false
}

// Config configures a Service. The zero value (apart from the store) is a Service without
// Stripe or usage: plans, quotas and the user list work, Stripe operations return
// ErrDisabled and usage-based ones ErrNoUsage.
type Config struct {
	// Stripe is the client for every Stripe call; nil disables them. Build it with
	// client.New(key, backends) so no global stripe state is touched.
	Stripe *client.API
	Prices PriceIDs
	// SuccessURL and CancelURL are where Stripe Checkout sends the user back;
	// PortalReturnURL is where the customer portal does.
	SuccessURL, CancelURL, PortalReturnURL string
	// Usage counts calls; nil: overage and call metrics return ErrNoUsage.
	Usage UsageSource
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives operational messages; default discards. Secrets are never logged.
	Logger *slog.Logger
	// OverageLease is how long a claimed but unfinished overage charge is left to its run
	// before another run takes it over (crash recovery); default 15 minutes.
	OverageLease time.Duration
	// Currency of prices and invoice items; default "usd".
	Currency string
	// UserExists, when set, is asked before a checkout.session.completed event activates
	// a plan for a user: an event about a user it does not know is ignored (answered 200
	// and logged), so a Stripe account shared by two environments cannot create paid rows
	// for strangers here. An error answers 500, and Stripe retries. Default: every user
	// named by a well-formed EcoID is accepted.
	UserExists func(ctx context.Context, user ecoid.ID) (bool, error)
	// OnPlanChange, when set, is called after a change of the user's subscription row was
	// committed by a webhook (or by SetEnterprise): anything that can change the user's
	// plan or terms (plan, status, Enterprise terms, Stripe IDs). It is not called for
	// duplicates, for events that changed nothing, or when the change rolled back. Use it
	// to drop cached plans (TermsCache.Invalidate) and to tell other instances. It runs
	// in the webhook's request after the commit, once per changed user; keep it short.
	OnPlanChange func(ctx context.Context, user ecoid.ID)
	// OnWebhook, when set, is called once per HandleWebhook (and so per request of
	// WebhookHandler) with what it did and the error it returns: a hook for metrics
	// (WebhookOutcome names the result). res.Type is empty when the signature or the body
	// was refused. It runs in the webhook's request; keep it short.
	OnWebhook func(ctx context.Context, res WebhookResult, err error)
}

// Service is the billing API. It is safe for concurrent use.
type Service struct {
	store Store
	cfg   Config
	log   *slog.Logger
}

// NewService returns a Service over store configured by cfg (see Config for defaults).
func NewService(store Store, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.OverageLease <= 0 {
		cfg.OverageLease = 15 * time.Minute
	}
	if cfg.Currency == "" {
		cfg.Currency = "usd"
	}
	return &Service{store: store, cfg: cfg, log: cfg.Logger}
}

// StripeEnabled reports whether the service has a Stripe client.
func (s *Service) StripeEnabled() bool { return s.cfg.Stripe != nil }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// EnsureFreeSubscription gives the user a local Free subscription row unless they have one,
// and returns their row. It never calls Stripe, so it is safe in a registration hook; it
// is idempotent. An invalid user ID is an error.
func (s *Service) EnsureFreeSubscription(ctx context.Context, user ecoid.ID, email string) (Subscription, error) {
	if user.Type() != ecoid.User || !user.Valid() {
		return Subscription{}, fmt.Errorf("billing: %q is not a user ID", user)
	}
	now := s.now()
	row, err := s.store.EnsureSubscription(ctx, Subscription{
		ID: ecoid.New(ecoid.Subscription), UserID: user, Email: email,
		Plan: Free, Status: StatusActive, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: ensure subscription: %w", err)
	}
	return row, nil
}

// Current returns the user's subscription. A user without a row gets an unsaved Free
// subscription (zero ID), so every user has a plan.
func (s *Service) Current(ctx context.Context, user ecoid.ID) (Subscription, error) {
	row, err := s.store.Subscription(ctx, user)
	if errors.Is(err, ErrNotFound) {
		return Subscription{UserID: user, Plan: Free, Status: StatusActive}, nil
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: current subscription: %w", err)
	}
	return row, nil
}

// QuotaFor returns the user's monthly call quota and whether it is a hard cap: Free gives
// (1000, true), Pro (100000, false), Enterprise its custom terms; a subscription that is
// not entitled (canceled, unpaid, …) or a user without one gets Free's. It is the quota
// function the usage middleware takes.
func (s *Service) QuotaFor(ctx context.Context, user ecoid.ID) (limit int64, hardCap bool, err error) {
	row, err := s.Current(ctx, user)
	if err != nil {
		return 0, false, err
	}
	t := row.Terms()
	return t.QuotaCalls, t.HardCap, nil
}

// PlanTerms returns the user's effective plan and the terms in force now (see
// Subscription.Terms): the TermsLoader a TermsCache takes. It reads the store on every
// call.
func (s *Service) PlanTerms(ctx context.Context, user ecoid.ID) (PlanID, Terms, error) {
	row, err := s.Current(ctx, user)
	if err != nil {
		return "", Terms{}, err
	}
	return row.EffectivePlan(), row.Terms(), nil
}

// planChanged calls Config.OnPlanChange for each user once.
func (s *Service) planChanged(ctx context.Context, users ...ecoid.ID) {
	if s.cfg.OnPlanChange == nil {
		return
	}
	for i, u := range users {
		if !slices.Contains(users[:i], u) {
			s.cfg.OnPlanChange(ctx, u)
		}
	}
}

// SetEnterprise moves the user to the Enterprise plan with custom terms (quota, hard cap,
// monthly price, overage rate), creating their row if needed. Negative numbers are an
// error.
func (s *Service) SetEnterprise(ctx context.Context, user ecoid.ID, email string, t Terms) (Subscription, error) {
	if t.QuotaCalls < 0 || t.PriceCents < 0 || t.OverageMilliCentsPerCall < 0 {
		return Subscription{}, errors.New("billing: enterprise terms must not be negative")
	}
	if _, err := s.EnsureFreeSubscription(ctx, user, email); err != nil {
		return Subscription{}, err
	}
	row, err := s.store.UpdateSubscription(ctx, user, func(sub *Subscription) error {
		sub.Plan, sub.Status, sub.Custom, sub.UpdatedAt = Enterprise, StatusActive, t, s.now()
		return nil
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: set enterprise: %w", err)
	}
	s.planChanged(ctx, user)
	return row, nil
}
