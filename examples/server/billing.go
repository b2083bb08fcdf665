package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/httpjson"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/usage"
	"github.com/stripe/stripe-go/v76"
)

// billingConfig is what the server reads for billing (see README "Configuration").
type billingConfig struct {
	StripeKey     string // STRIPE_SECRET_KEY; empty: billing off
	WebhookSecret string // STRIPE_WEBHOOK_SECRET
	StripeBase    string // STRIPE_API_BASE (stripe-mock); empty: api.stripe.com
	PricePro      string // STRIPE_PRICE_PRO
	PriceFree     string // STRIPE_PRICE_FREE
	AppURL        string // NEXUS_APP_URL: base of the checkout and portal return URLs
	CronSecret    string // NEXUS_CRON_SECRET; empty: the cron route refuses everyone
}

// parseBillingConfig reads the billing variables. NEXUS_APP_URL must be an http(s) URL.
func parseBillingConfig(cfg *config, getenv func(string) string) error {
	b := billingConfig{
		StripeKey: getenv("STRIPE_SECRET_KEY"), WebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
		StripeBase: getenv("STRIPE_API_BASE"), PricePro: getenv("STRIPE_PRICE_PRO"), PriceFree: getenv("STRIPE_PRICE_FREE"),
		AppURL: strings.TrimRight(getenv("NEXUS_APP_URL"), "/"), CronSecret: getenv("NEXUS_CRON_SECRET"),
	}
	if b.AppURL == "" {
		b.AppURL = "http://127.0.0.1:8080"
	}
	if !strings.HasPrefix(b.AppURL, "http://") && !strings.HasPrefix(b.AppURL, "https://") {
		return errors.New("NEXUS_APP_URL must start with http:// or https://")
	}
	cfg.Billing = b
	return nil
}

// billingState is the part of app that serves subscriptions, webhooks, overage and the
// admin analytics.
type billingState struct {
	billing *billing.Service
}

// initBilling builds the billing service over the usage store's counts (so initUsage runs
// first), registers the hook that gives every new user a Free subscription row, and makes
// billing the source of every user's plan for quotas and /api/usage.
func (a *app) initBilling() {
	var store billing.Store = memory.NewBillingStore()
	if a.db != nil {
		store = postgres.NewBillingStore(a.db)
	}
	bc := a.cfg.Billing
	cfg := billing.Config{
		Prices:     billing.PriceIDs{Pro: bc.PricePro, Free: bc.PriceFree},
		SuccessURL: bc.AppURL + "/billing/success?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:  bc.AppURL + "/billing/cancel", PortalReturnURL: bc.AppURL + "/account",
		Usage: usageCounts{a.usageStore}, Logger: a.log,
		// Only accounts of this server may be upgraded by a webhook.
		UserExists: func(ctx context.Context, id ecoid.ID) (bool, error) {
			_, err := a.auth.UserByID(ctx, id)
			if errors.Is(err, auth.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
	}
	if bc.StripeKey != "" {
		cfg.Stripe = billing.NewStripeClient(bc.StripeKey, bc.StripeBase, &http.Client{Timeout: 30 * time.Second})
		if bc.WebhookSecret == "" {
			a.log.Warn("STRIPE_WEBHOOK_SECRET is unset: Stripe webhooks will be refused")
		}
	}
	a.billing = billing.NewService(store, cfg)
	a.onRegister = append(a.onRegister, func(ctx context.Context, u auth.User) error {
		_, err := a.billing.EnsureFreeSubscription(ctx, u.ID, u.Email)
		return err
	})
	a.planFor = a.planFromBilling
}

// billingRoutes registers the subscription, webhook, cron and admin analytics routes.
func (a *app) billingRoutes(r *router) {
	r.handle("GET /api/subscriptions/current", a.requireUser(http.HandlerFunc(a.currentSubscription)))
	r.handle("POST /api/subscriptions/checkout", a.requireUser(a.needStripe(http.HandlerFunc(a.checkout))))
	r.handle("POST /api/subscriptions/cancel", a.requireUser(a.needStripe(http.HandlerFunc(a.cancelSubscription))))
	r.handle("POST /api/subscriptions/portal", a.requireUser(a.needStripe(http.HandlerFunc(a.portal))))
	r.handle("POST /api/webhooks/stripe", a.needStripe(a.billing.WebhookHandler(a.cfg.Billing.WebhookSecret)))
	r.handle("POST /api/cron/process-overage", a.requireCron(a.needStripe(http.HandlerFunc(a.processOverage))))
	r.handle("GET /api/admin/analytics/overview", a.requireAdmin(http.HandlerFunc(a.analyticsOverview)))
	r.handle("GET /api/admin/analytics/users", a.requireAdmin(http.HandlerFunc(a.analyticsUsers)))
}

// needStripe answers 503 billing_disabled when the server runs without STRIPE_SECRET_KEY.
func (a *app) needStripe(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.billing.StripeEnabled() {
			httpjson.WriteError(w, http.StatusServiceUnavailable, "billing_disabled", "billing is not configured on this server (STRIPE_SECRET_KEY)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// requireCron admits requests carrying "Authorization: Bearer <NEXUS_CRON_SECRET>" (the
// scheme in any case, as on the other routes), the secret compared in constant time; 401
// otherwise, and always when no secret is configured.
func (a *app) requireCron(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		secret := a.cfg.Billing.CronSecret
		if !ok || secret == "" || subtle.ConstantTimeCompare([]byte(token), []byte(secret)) != 1 {
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "a valid cron bearer token is required")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// subscriptionJSON is the shape of a subscription in answers.
type subscriptionJSON struct {
	ID                 ecoid.ID       `json:"id,omitempty"`
	Plan               billing.PlanID `json:"plan"` // the plan whose terms apply now
	Status             billing.Status `json:"status"`
	CancelAtPeriodEnd  bool           `json:"cancel_at_period_end"`
	CurrentPeriodStart *time.Time     `json:"current_period_start"`
	CurrentPeriodEnd   *time.Time     `json:"current_period_end"`
	Quota              int64          `json:"quota"`
	HardCap            bool           `json:"hard_cap"`
	PriceCents         int64          `json:"price_cents"`
	BillingEnabled     bool           `json:"billing_enabled"`
}

func (a *app) subscriptionJSON(s billing.Subscription) subscriptionJSON {
	t := s.Terms()
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	return subscriptionJSON{
		ID: s.ID, Plan: s.EffectivePlan(), Status: s.Status, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		CurrentPeriodStart: opt(s.CurrentPeriodStart), CurrentPeriodEnd: opt(s.CurrentPeriodEnd),
		Quota: t.QuotaCalls, HardCap: t.HardCap, PriceCents: t.PriceCents, BillingEnabled: a.billing.StripeEnabled(),
	}
}

// currentSubscription: GET /api/subscriptions/current.
func (a *app) currentSubscription(w http.ResponseWriter, r *http.Request) {
	sub, err := a.billing.Current(r.Context(), currentUser(r))
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, a.subscriptionJSON(sub))
}

// userEmail returns the caller's email for Stripe's customer record.
func (a *app) userEmail(r *http.Request) (string, error) {
	u, err := a.auth.UserByID(r.Context(), currentUser(r))
	if err != nil {
		return "", err
	}
	return u.Email, nil
}

// checkout: POST /api/subscriptions/checkout {plan} → {url}.
func (a *app) checkout(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Plan string `json:"plan"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	if p, err := billing.ParsePlan(in.Plan); err == nil && p == billing.Pro && a.cfg.Billing.PricePro == "" {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "billing_disabled", "the Pro plan is not for sale on this server (STRIPE_PRICE_PRO)")
		return
	}
	email, err := a.userEmail(r)
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	link, err := a.billing.Checkout(r.Context(), currentUser(r), email, in.Plan)
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"url": link})
}

// cancelSubscription: POST /api/subscriptions/cancel → the subscription, cancelling at
// the end of the period.
func (a *app) cancelSubscription(w http.ResponseWriter, r *http.Request) {
	sub, err := a.billing.Cancel(r.Context(), currentUser(r))
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, a.subscriptionJSON(sub))
}

// portal: POST /api/subscriptions/portal → {url}.
func (a *app) portal(w http.ResponseWriter, r *http.Request) {
	email, err := a.userEmail(r)
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	link, err := a.billing.Portal(r.Context(), currentUser(r), email)
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"url": link})
}

// processOverage: POST /api/cron/process-overage → {processed,charged,skipped}.
func (a *app) processOverage(w http.ResponseWriter, r *http.Request) {
	res, err := a.billing.ProcessOverage(r.Context())
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

// analyticsOverview: GET /api/admin/analytics/overview.
func (a *app) analyticsOverview(w http.ResponseWriter, r *http.Request) {
	ov, err := a.billing.Overview(r.Context())
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"users_by_plan": ov.UsersByPlan, "mrr_cents": ov.MRRCents,
		"overage_revenue_cents": ov.OverageRevenueCents, "overage_revenue_total_cents": ov.OverageRevenueTotalCents,
		"calls_today": ov.CallsToday, "calls_this_period": ov.CallsThisPeriod,
		"period_start": ov.PeriodStart.Format(time.DateOnly), "top_users": ov.TopUsers,
	})
}

// analyticsUsers: GET /api/admin/analytics/users?page&limit&plan&sort.
func (a *app) analyticsUsers(w http.ResponseWriter, r *http.Request) {
	q := billing.ListQuery{Page: 1, Limit: 20, Sort: "created_at"}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_query", "the query string is malformed")
		return
	}
	for name, dst := range map[string]*int{"page": &q.Page, "limit": &q.Limit} {
		if s := v.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				httpjson.WriteError(w, http.StatusBadRequest, "invalid_query", name+" must be an integer")
				return
			}
			*dst = n
		}
	}
	q.Plan = billing.PlanID(v.Get("plan"))
	if s := v.Get("sort"); s != "" {
		q.Sort = s
	}
	page, err := a.billing.Users(r.Context(), q)
	if err != nil {
		a.billingError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, page)
}

// billingError maps billing errors to the contract's answers; anything unexpected is
// logged and answered 500 without internals.
func (a *app) billingError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, billing.ErrUnknownPlan), errors.Is(err, billing.ErrPlanNotForSale):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_plan", "plan must be \"pro\" (enterprise plans are arranged with sales)")
	case errors.Is(err, billing.ErrInvalidQuery):
		msg := err.Error()
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_query", msg)
	case errors.Is(err, billing.ErrAlreadySubscribed):
		httpjson.WriteError(w, http.StatusConflict, "already_subscribed", "you are already on this plan; manage it through the billing portal")
	case errors.Is(err, billing.ErrNoStripeSubscription):
		httpjson.WriteError(w, http.StatusConflict, "no_subscription", "there is no paid subscription to cancel")
	case errors.Is(err, billing.ErrDisabled):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "billing_disabled", "billing is not configured on this server")
	case errors.Is(err, billing.ErrStripe):
		// Stripe's messages may quote the request (stripe-mock echoes the key), so only
		// the structured fields are logged.
		attrs := []any{"method", r.Method, "path", r.URL.Path}
		var se *stripe.Error
		if errors.As(err, &se) {
			attrs = append(attrs, "stripe_status", se.HTTPStatusCode, "stripe_type", se.Type, "stripe_code", se.Code, "stripe_request_id", se.RequestID)
		}
		a.log.Error("stripe request failed", attrs...)
		httpjson.WriteError(w, http.StatusBadGateway, "stripe_unavailable", "the payment provider did not answer as expected; try again")
	case errors.Is(err, auth.ErrNotFound):
		httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "the account no longer exists")
	default:
		a.log.Error("billing request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpjson.WriteError(w, http.StatusInternalServerError, "internal_error", "internal error")
	}
}

// usageCounts gives billing the call counts of the usage store.
type usageCounts struct{ store usage.Store }

func (u usageCounts) PeriodCalls(ctx context.Context, user ecoid.ID, period time.Time) (int64, error) {
	return u.store.PeriodCalls(ctx, user, period)
}

func (u usageCounts) TotalCalls(ctx context.Context, from, to time.Time) (int64, error) {
	return u.store.TotalCalls(ctx, from, to)
}

func (u usageCounts) TopUsers(ctx context.Context, from, to time.Time, n int) ([]billing.UserCalls, error) {
	top, err := u.store.TopUsers(ctx, from, to, n)
	out := make([]billing.UserCalls, len(top))
	for i, t := range top {
		out[i] = billing.UserCalls{UserID: t.UserID, Calls: t.Calls}
	}
	return out, err
}

// planFromBilling is the usage routes' and quota's view of a user's subscription: the
// terms that apply now (Free's when a paid subscription is not entitled).
func (a *app) planFromBilling(ctx context.Context, user ecoid.ID) (usagePlan, error) {
	sub, err := a.billing.Current(ctx, user)
	if err != nil {
		return usagePlan{}, err
	}
	t := sub.Terms()
	// 1 thousandth of a cent is 10 millionths of a dollar.
	return usagePlan{Name: string(sub.EffectivePlan()), Quota: t.QuotaCalls, HardCap: t.HardCap, OverageMicroUSD: t.OverageMilliCentsPerCall * 10}, nil
}
