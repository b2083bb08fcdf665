package main

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/stripe/stripe-go/v76"
)

// billingConfig is what the server reads for billing (see README "Configuration").
type billingConfig struct {
	StripeKey     string // STRIPE_SECRET_KEY; empty: billing off
	WebhookSecret string // STRIPE_WEBHOOK_SECRET
	StripeBase    string // STRIPE_API_BASE (stripe-mock); empty: api.stripe.com
	PricePro      string // STRIPE_PRICE_PRO
	PriceFree     string // STRIPE_PRICE_FREE
	// Prices are more price IDs and the plan each bills (STRIPE_PRICES:
	// "price_a=pro,price_b=free"), e.g. a yearly Pro price. A webhook's plan is the one
	// its subscription's price maps to; any other price upgrades nothing.
	Prices     map[string]billing.PlanID
	AppURL     string // NEXUS_APP_URL: base of the checkout and portal return URLs
	CronSecret string // NEXUS_CRON_SECRET; empty: the cron route refuses everyone
	// Now is billing's clock (webhook tolerance, terms history, the cron's period); nil
	// is time.Now. Not configurable from outside: tests set it.
	Now func() time.Time
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
	prices, err := parsePrices(getenv("STRIPE_PRICES"))
	if err != nil {
		return err
	}
	b.Prices = prices
	if !strings.HasPrefix(b.AppURL, "http://") && !strings.HasPrefix(b.AppURL, "https://") {
		return errors.New("NEXUS_APP_URL must start with http:// or https://")
	}
	cfg.Billing = b
	return nil
}

// parsePrices reads STRIPE_PRICES: comma-separated price_id=plan pairs, plan free or pro
// (Enterprise is set per customer, never by a price).
func parsePrices(v string) (map[string]billing.PlanID, error) {
	out := map[string]billing.PlanID{}
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, name, ok := strings.Cut(part, "=")
		plan, err := billing.ParsePlan(strings.TrimSpace(name))
		if id = strings.TrimSpace(id); !ok || id == "" || err != nil || plan == billing.Enterprise {
			return nil, fmt.Errorf("STRIPE_PRICES: %q is not price_id=free or price_id=pro", part)
		}
		out[id] = plan
	}
	return out, nil
}

// billingHandlers serve subscriptions, the Stripe webhook and the overage cron.
type billingHandlers struct {
	billing     *billing.Service
	users       *auth.Service // the caller's email for Stripe's customer record
	cfg         billingConfig
	requireUser func(http.Handler) http.Handler
	log         *slog.Logger
}

func (h billingHandlers) register(rt *router) {
	rt.Handle("GET /api/subscriptions/current", h.requireUser(http.HandlerFunc(h.current)))
	rt.Handle("POST /api/subscriptions/checkout", h.requireUser(h.needStripe(http.HandlerFunc(h.checkout))))
	rt.Handle("POST /api/subscriptions/cancel", h.requireUser(h.needStripe(http.HandlerFunc(h.cancel))))
	rt.Handle("POST /api/subscriptions/portal", h.requireUser(h.needStripe(http.HandlerFunc(h.portal))))
	rt.Handle("POST /api/webhooks/stripe", h.needStripe(h.billing.WebhookHandler(h.cfg.WebhookSecret)))
	rt.Handle("POST /api/cron/process-overage", h.requireCron(h.needStripe(http.HandlerFunc(h.processOverage))))
}

// needStripe answers 503 billing_disabled when the server runs without STRIPE_SECRET_KEY.
func (h billingHandlers) needStripe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.billing.StripeEnabled() {
			httpjson.WriteError(w, http.StatusServiceUnavailable, "billing_disabled", "billing is not configured on this server (STRIPE_SECRET_KEY)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireCron admits requests carrying "Authorization: Bearer <NEXUS_CRON_SECRET>" (the
// scheme in any case, as on the other routes), the secret compared in constant time; 401
// otherwise, and always when no secret is configured.
func (h billingHandlers) requireCron(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		secret := h.cfg.CronSecret
		if !ok || secret == "" || subtle.ConstantTimeCompare([]byte(token), []byte(secret)) != 1 {
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "a valid cron bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
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

func (h billingHandlers) subscriptionJSON(s billing.Subscription) subscriptionJSON {
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
		Quota: t.QuotaCalls, HardCap: t.HardCap, PriceCents: t.PriceCents, BillingEnabled: h.billing.StripeEnabled(),
	}
}

// current: GET /api/subscriptions/current.
func (h billingHandlers) current(w http.ResponseWriter, r *http.Request) {
	sub, err := h.billing.Current(r.Context(), currentUser(r))
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, h.subscriptionJSON(sub))
}

// userEmail returns the caller's email for Stripe's customer record.
func (h billingHandlers) userEmail(r *http.Request) (string, error) {
	u, err := h.users.UserByID(r.Context(), currentUser(r))
	if err != nil {
		return "", err
	}
	return u.Email, nil
}

// checkout: POST /api/subscriptions/checkout {plan} → {url}.
func (h billingHandlers) checkout(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Plan string `json:"plan"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	if p, err := billing.ParsePlan(in.Plan); err == nil && p == billing.Pro && h.cfg.PricePro == "" {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "billing_disabled", "the Pro plan is not for sale on this server (STRIPE_PRICE_PRO)")
		return
	}
	email, err := h.userEmail(r)
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	link, err := h.billing.Checkout(r.Context(), currentUser(r), email, in.Plan)
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"url": link})
}

// cancel: POST /api/subscriptions/cancel → the subscription, cancelling at
// the end of the period.
func (h billingHandlers) cancel(w http.ResponseWriter, r *http.Request) {
	sub, err := h.billing.Cancel(r.Context(), currentUser(r))
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, h.subscriptionJSON(sub))
}

// portal: POST /api/subscriptions/portal → {url}.
func (h billingHandlers) portal(w http.ResponseWriter, r *http.Request) {
	email, err := h.userEmail(r)
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	link, err := h.billing.Portal(r.Context(), currentUser(r), email)
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"url": link})
}

// processOverage: POST /api/cron/process-overage[?period=YYYY-MM] →
// {processed,charged,skipped}: last month's overage, or that of the closed month named
// (a catch-up run after a missed one; what was charged is skipped).
func (h billingHandlers) processOverage(w http.ResponseWriter, r *http.Request) {
	var res billing.OverageResult
	var err error
	if q := r.URL.Query(); q.Has("period") {
		month, perr := time.Parse("2006-01", q.Get("period"))
		if perr != nil {
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_period", "period must be a month, YYYY-MM")
			return
		}
		res, err = h.billing.ProcessOverageFor(r.Context(), month)
	} else {
		res, err = h.billing.ProcessOverage(r.Context()) // last month on billing's own clock
	}
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

// billingError maps billing errors to the contract's answers; anything unexpected is
// logged and answered 500 without internals.
func billingError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
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
	case errors.Is(err, billing.ErrPeriodOpen):
		httpjson.WriteError(w, http.StatusConflict, "period_open", "that month has not ended yet")
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
		log.Error("stripe request failed", attrs...)
		httpjson.WriteError(w, http.StatusBadGateway, "stripe_unavailable", "the payment provider did not answer as expected; try again")
	case errors.Is(err, auth.ErrNotFound):
		httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "the account no longer exists")
	default:
		internalError(log, w, r, "billing request failed", err)
	}
}
