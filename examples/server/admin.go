package main

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// adminHandlers serve /api/admin/*: the analytics of administrators (NEXUS_ADMINS).
type adminHandlers struct {
	billing      *billing.Service
	requireAdmin func(http.Handler) http.Handler // 401 without a user, 403 for non-admins
	log          *slog.Logger
}

func (h adminHandlers) register(rt *router) {
	rt.Handle("GET /api/admin/analytics/overview", h.requireAdmin(http.HandlerFunc(h.overview)))
	rt.Handle("GET /api/admin/analytics/users", h.requireAdmin(http.HandlerFunc(h.users)))
}

// overview: GET /api/admin/analytics/overview.
func (h adminHandlers) overview(w http.ResponseWriter, r *http.Request) {
	ov, err := h.billing.Overview(r.Context())
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"users_by_plan": ov.UsersByPlan, "mrr_cents": ov.MRRCents,
		"overage_revenue_cents": ov.OverageRevenueCents, "overage_revenue_total_cents": ov.OverageRevenueTotalCents,
		"calls_today": ov.CallsToday, "calls_this_period": ov.CallsThisPeriod,
		"period_start": ov.PeriodStart.Format(time.DateOnly), "top_users": ov.TopUsers,
	})
}

// users: GET /api/admin/analytics/users?page&limit&plan&sort.
func (h adminHandlers) users(w http.ResponseWriter, r *http.Request) {
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
	page, err := h.billing.Users(r.Context(), q)
	if err != nil {
		billingError(h.log, w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, page)
}
