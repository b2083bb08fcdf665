package main

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/usage"
)

// usageHandlers serve /api/usage/*: a signed-in user's calls, quota and overage. The
// plan and its terms come from billing, the one source of plans.
type usageHandlers struct {
	store       usage.Reader
	quota       *usage.Quota // counts of the current period, under billing's quota
	plans       *billing.Service
	requireUser func(http.Handler) http.Handler
	log         *slog.Logger
}

func (h usageHandlers) register(rt *router) {
	rt.Handle("GET /api/usage/current", h.requireUser(http.HandlerFunc(h.current)))
	rt.Handle("GET /api/usage/history", h.requireUser(http.HandlerFunc(h.history)))
	rt.Handle("GET /api/usage/endpoints", h.requireUser(http.HandlerFunc(h.endpoints)))
	rt.Handle("GET /api/usage/overage", h.requireUser(http.HandlerFunc(h.overage)))
}

type usageCurrentAnswer struct {
	Plan        string `json:"plan"`
	PeriodStart string `json:"period_start"` // first day of the month, YYYY-MM-DD (UTC)
	PeriodEnd   string `json:"period_end"`   // last day of the month, inclusive
	Calls       int64  `json:"calls"`
	Quota       int64  `json:"quota"`
	Remaining   int64  `json:"remaining"`
}

// period returns the user's subscription (its effective plan and terms) and the
// current period's counts.
func (h usageHandlers) period(ctx context.Context, user ecoid.ID) (billing.Subscription, usage.Current, error) {
	sub, err := h.plans.Current(ctx, user)
	if err != nil {
		return billing.Subscription{}, usage.Current{}, err
	}
	cur, err := h.quota.Current(ctx, user)
	return sub, cur, err
}

// current: GET /api/usage/current → {plan,period_start,period_end,calls,quota,remaining}.
func (h usageHandlers) current(w http.ResponseWriter, r *http.Request) {
	sub, cur, err := h.period(r.Context(), currentUser(r))
	if err != nil {
		internalError(h.log, w, r, "usage request failed", err)
		return
	}
	httpjson.Write(w, http.StatusOK, usageCurrentAnswer{
		Plan:        string(sub.EffectivePlan()),
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

// history: GET /api/usage/history?days=N (default 30) → {days:[{date,calls,errors}]},
// the last N UTC days up to today, oldest first, days without calls included.
func (h usageHandlers) history(w http.ResponseWriter, r *http.Request) {
	from, days, ok := lastDays(w, r, 30)
	if !ok {
		return
	}
	hist, err := h.store.History(r.Context(), currentUser(r), from, days)
	if err != nil {
		internalError(h.log, w, r, "usage request failed", err)
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

// endpoints: GET /api/usage/endpoints?days=N (default 7) → {endpoints:[…]} over the
// last N UTC days up to now, busiest first.
func (h usageHandlers) endpoints(w http.ResponseWriter, r *http.Request) {
	from, days, ok := lastDays(w, r, 7)
	if !ok {
		return
	}
	stats, err := h.store.Endpoints(r.Context(), currentUser(r), from, from.AddDate(0, 0, days))
	if err != nil {
		internalError(h.log, w, r, "usage request failed", err)
		return
	}
	out := make([]usageEndpoint, len(stats))
	for i, s := range stats {
		out[i] = usageEndpoint{Method: s.Method, Endpoint: s.Endpoint, Calls: s.Calls,
			ErrorRate: s.ErrorRate, AvgLatencyMS: s.AvgLatencyMS, P95LatencyMS: s.P95LatencyMS}
	}
	httpjson.Write(w, http.StatusOK, map[string][]usageEndpoint{"endpoints": out})
}

// overage: GET /api/usage/overage → {calls_over,amount_cents} for the current period:
// the calls over a soft quota and their price by billing's one rounding rule
// (billing.Terms.OverageCents), so this preview matches what the overage cron invoices.
// Hard-capped plans have none.
func (h usageHandlers) overage(w http.ResponseWriter, r *http.Request) {
	sub, cur, err := h.period(r.Context(), currentUser(r))
	if err != nil {
		internalError(h.log, w, r, "usage request failed", err)
		return
	}
	t := sub.Terms()
	var over int64
	if !t.HardCap {
		over = t.CallsOver(cur.Calls)
	}
	httpjson.Write(w, http.StatusOK, map[string]int64{"calls_over": over, "amount_cents": t.OverageCents(over)})
}
