package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/httpjson"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/usage"
)

// usageState is the part of app that tracks API-key requests, enforces monthly quotas
// and answers /api/usage/*.
type usageState struct {
	usageStore usage.Store
	tracker    *usage.Tracker
	quota      *usage.Quota

	// planFor returns a user's plan: initBilling points it at the billing subscription;
	// tests may replace it before the first request.
	planFor func(ctx context.Context, user ecoid.ID) (usagePlan, error)
}

// usagePlan is what quotas and the usage routes need to know of a plan.
type usagePlan struct {
	Name    string // "free", "pro", "enterprise"
	Quota   int64  // calls per calendar month (UTC); negative: unlimited
	HardCap bool   // calls over Quota are refused (429 quota_exceeded) rather than billed
	// OverageMicroUSD is the price of one call over Quota in millionths of a dollar
	// (Pro: $0.001 = 1,000).
	OverageMicroUSD int64
}

// The plans of DESIGN.md section 5, until billing owns them.
var (
	freePlan = usagePlan{Name: "free", Quota: 1000, HardCap: true}
	proPlan  = usagePlan{Name: "pro", Quota: 100_000, OverageMicroUSD: 1000}
)

// initUsage builds the store, the tracker (flushed by shutdown) and the quota.
func (a *app) initUsage() {
	var store usage.Store = memory.NewUsageStore()
	if a.db != nil {
		store = postgres.NewUsageStore(a.db)
	}
	a.usageStore = store
	a.tracker = usage.NewTracker(store, usage.Config{Logger: a.log})
	if a.planFor == nil {
		a.planFor = func(context.Context, ecoid.ID) (usagePlan, error) { return freePlan, nil }
	}
	a.quota = usage.NewQuota(store, func(ctx context.Context, user ecoid.ID) (int64, bool, error) {
		p, err := a.planFor(ctx, user)
		return p.Quota, p.HardCap, err
	}, usage.QuotaConfig{Logger: a.log})
}

// closeUsage writes every tracked request to the store, within ctx.
func (a *app) closeUsage(ctx context.Context) error {
	if a.tracker == nil {
		return nil
	}
	if err := a.tracker.Close(ctx); err != nil {
		return err
	}
	a.log.Info("usage tracker flushed", "stats", fmt.Sprintf("%+v", a.tracker.Stats()))
	return nil
}

// meter puts usage tracking and the monthly quota in an API-key chain, after the key is
// authenticated and before its rate limit:
//
//	authenticate → track (every request, whatever its status) → admit (e.g. the scope
//	check) → reserve quota (429 quota_exceeded) → rate limit (its OnLimited hook calls
//	releaseQuota) → handler
//
// identify returns the key and its owner from what authentication put in the context;
// admit refuses requests before they reach the quota, so its refusals cost none.
func (a *app) meter(identify usage.IdentifyFunc, admit func(http.Handler) http.Handler, next http.Handler) http.Handler {
	user := func(r *http.Request) (ecoid.ID, bool) {
		_, u, ok := identify(r)
		return u, ok
	}
	track := usage.Middleware(a.tracker, identify, usage.MiddlewareConfig{})
	return track(admit(a.quota.Middleware(user)(next)))
}

// keyOf identifies an API-key request for usage tracking: the key and its owner, from
// what apikey.Authenticate put in the context.
func keyOf(r *http.Request) (keyID, userID ecoid.ID, ok bool) {
	k, ok := apikey.KeyFrom(r.Context())
	return k.ID, k.Owner, ok
}

// releaseQuota gives back the quota reservation of a request that a later limit refused,
// so that it costs no quota.
func (a *app) releaseQuota(r *http.Request) {
	if err := usage.ReleaseReservation(r.Context()); err != nil && err != usage.ErrNoReservation {
		a.log.Error("usage: quota release failed", "err", err)
	}
}

// usageRoutes registers /api/usage/*.
func (a *app) usageRoutes(r *router) {
	r.handle("GET /api/usage/current", a.requireUser(http.HandlerFunc(a.usageCurrent)))
	r.handle("GET /api/usage/history", a.requireUser(http.HandlerFunc(a.usageHistory)))
	r.handle("GET /api/usage/endpoints", a.requireUser(http.HandlerFunc(a.usageEndpoints)))
	r.handle("GET /api/usage/overage", a.requireUser(http.HandlerFunc(a.usageOverage)))
}

// usageInternalError logs err and answers 500 without internals.
func (a *app) usageInternalError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("usage request failed", "path", r.URL.Path, "err", err)
	httpjson.WriteError(w, http.StatusInternalServerError, "internal_error", "internal error")
}

type usageCurrentAnswer struct {
	Plan        string `json:"plan"`
	PeriodStart string `json:"period_start"` // first day of the month, YYYY-MM-DD (UTC)
	PeriodEnd   string `json:"period_end"`   // last day of the month, inclusive
	Calls       int64  `json:"calls"`
	Quota       int64  `json:"quota"`
	Remaining   int64  `json:"remaining"`
}

// current returns the user's plan and period.
func (a *app) current(ctx context.Context, user ecoid.ID) (usagePlan, usage.Current, error) {
	plan, err := a.planFor(ctx, user)
	if err != nil {
		return usagePlan{}, usage.Current{}, err
	}
	cur, err := a.quota.Current(ctx, user)
	return plan, cur, err
}

// usageCurrent: GET /api/usage/current → {plan,period_start,period_end,calls,quota,remaining}.
func (a *app) usageCurrent(w http.ResponseWriter, r *http.Request) {
	plan, cur, err := a.current(r.Context(), currentUser(r))
	if err != nil {
		a.usageInternalError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, usageCurrentAnswer{
		Plan:        plan.Name,
		PeriodStart: cur.PeriodStart.Format(time.DateOnly),
		PeriodEnd:   cur.PeriodEnd.AddDate(0, 0, -1).Format(time.DateOnly),
		Calls:       cur.Calls,
		Quota:       cur.Quota,
		Remaining:   cur.Remaining,
	})
}

// daysParam reads ?days=N: absent is def; anything but an integer in 1..365 is an error.
func daysParam(r *http.Request, def int) (int, bool) {
	v := r.URL.Query().Get("days")
	if v == "" && !r.URL.Query().Has("days") {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 365 {
		return 0, false
	}
	return n, true
}

// lastDays reads ?days=N (default def) and returns the first UTC day of the last N days up
// to today; it answers 400 invalid_days and returns false for a bad N.
func lastDays(w http.ResponseWriter, r *http.Request, def int) (from time.Time, days int, ok bool) {
	days, ok = daysParam(r, def)
	if !ok {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_days", "days must be an integer from 1 to 365")
		return time.Time{}, 0, false
	}
	return usage.DayStart(time.Now()).AddDate(0, 0, 1-days), days, true
}

type usageDay struct {
	Date   string `json:"date"`
	Calls  int64  `json:"calls"`
	Errors int64  `json:"errors"`
}

// usageHistory: GET /api/usage/history?days=N (default 30) → {days:[{date,calls,errors}]},
// the last N UTC days up to today, oldest first, days without calls included.
func (a *app) usageHistory(w http.ResponseWriter, r *http.Request) {
	from, days, ok := lastDays(w, r, 30)
	if !ok {
		return
	}
	hist, err := a.usageStore.History(r.Context(), currentUser(r), from, days)
	if err != nil {
		a.usageInternalError(w, r, err)
		return
	}
	out := make([]usageDay, len(hist))
	for i, d := range hist {
		out[i] = usageDay{Date: d.Date.Format(time.DateOnly), Calls: d.Calls, Errors: d.Errors}
	}
	httpjson.Write(w, http.StatusOK, map[string][]usageDay{"days": out})
}

type usageEndpoint struct {
	Method       string  `json:"method"`
	Endpoint     string  `json:"endpoint"`
	Calls        int64   `json:"calls"`
	ErrorRate    float64 `json:"error_rate"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
	P95LatencyMS float64 `json:"p95_latency_ms"`
}

// usageEndpoints: GET /api/usage/endpoints?days=N (default 7) → {endpoints:[…]} over the
// last N UTC days up to now, busiest first.
func (a *app) usageEndpoints(w http.ResponseWriter, r *http.Request) {
	from, days, ok := lastDays(w, r, 7)
	if !ok {
		return
	}
	stats, err := a.usageStore.Endpoints(r.Context(), currentUser(r), from, from.AddDate(0, 0, days))
	if err != nil {
		a.usageInternalError(w, r, err)
		return
	}
	out := make([]usageEndpoint, len(stats))
	for i, s := range stats {
		out[i] = usageEndpoint{Method: s.Method, Endpoint: s.Endpoint, Calls: s.Calls,
			ErrorRate: s.ErrorRate, AvgLatencyMS: s.AvgLatencyMS, P95LatencyMS: s.P95LatencyMS}
	}
	httpjson.Write(w, http.StatusOK, map[string][]usageEndpoint{"endpoints": out})
}

// overage returns the calls over a soft quota and their price in cents, rounded up to the
// next cent: billing's one rounding rule (billing.Terms.OverageCents), so this preview
// matches what the overage cron invoices. Hard-capped and unlimited plans have none.
func overage(plan usagePlan, calls int64) (over, cents int64) {
	if plan.HardCap || plan.Quota < 0 || calls <= plan.Quota {
		return 0, 0
	}
	over = calls - plan.Quota
	return over, (over*plan.OverageMicroUSD + 9_999) / 10_000
}

// usageOverage: GET /api/usage/overage → {calls_over,amount_cents} for the current period.
func (a *app) usageOverage(w http.ResponseWriter, r *http.Request) {
	plan, cur, err := a.current(r.Context(), currentUser(r))
	if err != nil {
		a.usageInternalError(w, r, err)
		return
	}
	over, cents := overage(plan, cur.Calls)
	httpjson.Write(w, http.StatusOK, map[string]int64{"calls_over": over, "amount_cents": cents})
}
