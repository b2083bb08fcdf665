package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Overview is the admin dashboard's summary.
type Overview struct {
	UsersByPlan map[PlanID]int64 `json:"users_by_plan"` // every row, by plan (canceled rows count as free)
	// MRRCents is the monthly recurring revenue: the monthly price of every entitled
	// subscription (Pro at its price, Enterprise at its custom price), in cents.
	MRRCents int64 `json:"mrr_cents"`
	// OverageRevenueCents is the overage charged for the last closed period;
	// OverageRevenueTotalCents all overage ever charged.
	OverageRevenueCents      int64     `json:"overage_revenue_cents"`
	OverageRevenueTotalCents int64     `json:"overage_revenue_total_cents"`
	CallsToday               int64     `json:"calls_today"`
	CallsThisPeriod          int64     `json:"calls_this_period"`
	PeriodStart              time.Time `json:"-"`
	TopUsers                 []TopUser `json:"top_users"`
}

// TopUser is one of the heaviest users of the current period.
type TopUser struct {
	UserID ecoid.ID `json:"user_id"`
	Email  string   `json:"email"`
	Plan   PlanID   `json:"plan"`
	Calls  int64    `json:"calls"`
}

// TopUsersCount is how many users Overview lists.
const TopUsersCount = 5

// Overview computes the admin summary at now. Without a UsageSource the call figures
// are zero and TopUsers empty.
func (s *Service) Overview(ctx context.Context) (Overview, error) {
	now := s.now()
	period := PeriodStart(now)
	ov := Overview{UsersByPlan: map[PlanID]int64{Free: 0, Pro: 0, Enterprise: 0}, PeriodStart: period, TopUsers: []TopUser{}}
	groups, err := s.store.PlanBreakdown(ctx)
	if err != nil {
		return Overview{}, fmt.Errorf("billing: overview: %w", err)
	}
	for _, g := range groups {
		plan := g.Plan
		if !g.Status.Entitled() {
			plan = Free
		}
		ov.UsersByPlan[plan] += g.Users
		if !g.Status.Entitled() {
			continue
		}
		switch g.Plan {
		case Pro:
			ov.MRRCents += g.Users * ProTerms.PriceCents
		case Enterprise:
			ov.MRRCents += g.CustomPriceCents
		}
	}
	last := period.AddDate(0, -1, 0)
	if ov.OverageRevenueCents, err = s.store.OverageRevenue(ctx, last, period); err != nil {
		return Overview{}, fmt.Errorf("billing: overview: %w", err)
	}
	if ov.OverageRevenueTotalCents, err = s.store.OverageRevenue(ctx, time.Time{}, PeriodEnd(now)); err != nil {
		return Overview{}, fmt.Errorf("billing: overview: %w", err)
	}
	if s.cfg.Usage == nil {
		return ov, nil
	}
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if ov.CallsToday, err = s.cfg.Usage.TotalCalls(ctx, day, now.Add(time.Nanosecond)); err != nil {
		return Overview{}, fmt.Errorf("billing: overview: calls today: %w", err)
	}
	if ov.CallsThisPeriod, err = s.cfg.Usage.TotalCalls(ctx, period, now.Add(time.Nanosecond)); err != nil {
		return Overview{}, fmt.Errorf("billing: overview: calls this period: %w", err)
	}
	top, err := s.cfg.Usage.TopUsers(ctx, period, now.Add(time.Nanosecond), TopUsersCount)
	if err != nil {
		return Overview{}, fmt.Errorf("billing: overview: top users: %w", err)
	}
	for _, u := range top {
		row, err := s.Current(ctx, u.UserID)
		if err != nil {
			return Overview{}, err
		}
		ov.TopUsers = append(ov.TopUsers, TopUser{UserID: u.UserID, Email: row.Email, Plan: row.EffectivePlan(), Calls: u.Calls})
	}
	return ov, nil
}

// UserSummary is one row of the admin user list.
type UserSummary struct {
	UserID            ecoid.ID  `json:"id"`
	Email             string    `json:"email"`
	Plan              PlanID    `json:"plan"`
	Status            Status    `json:"status"`
	CancelAtPeriodEnd bool      `json:"cancel_at_period_end"`
	CallsThisPeriod   int64     `json:"calls_this_period"`
	CreatedAt         time.Time `json:"created_at"`
}

// UserPage is one page of the admin user list.
type UserPage struct {
	Users []UserSummary `json:"users"`
	Page  int           `json:"page"`
	Limit int           `json:"limit"`
	Total int64         `json:"total"`
}

// Users returns one page of users (every user with a subscription row, which
// EnsureFreeSubscription gives each registered user). q is validated first: an error
// wrapping ErrInvalidQuery for page < 1, limit outside 1..100, an unknown plan or a sort
// key outside SortKeys. With a UsageSource each row carries its calls this period.
func (s *Service) Users(ctx context.Context, q ListQuery) (UserPage, error) {
	if err := q.Validate(); err != nil {
		return UserPage{}, err
	}
	if q.Sort == "" {
		q.Sort = "created_at"
	}
	rows, total, err := s.store.ListSubscriptions(ctx, q)
	if err != nil {
		return UserPage{}, fmt.Errorf("billing: list users: %w", err)
	}
	page := UserPage{Users: make([]UserSummary, 0, len(rows)), Page: q.Page, Limit: q.Limit, Total: total}
	period := PeriodStart(s.now())
	for _, r := range rows {
		u := UserSummary{UserID: r.UserID, Email: r.Email, Plan: r.Plan, Status: r.Status, CancelAtPeriodEnd: r.CancelAtPeriodEnd, CreatedAt: r.CreatedAt}
		if s.cfg.Usage != nil {
			if u.CallsThisPeriod, err = s.cfg.Usage.PeriodCalls(ctx, r.UserID, period); err != nil {
				return UserPage{}, fmt.Errorf("billing: list users: calls: %w", err)
			}
		}
		page.Users = append(page.Users, u)
	}
	return page, nil
}
