package billing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

func TestOverview(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	free1, free2 := e.user(t), e.user(t)
	pro1, pro2, canceled := e.user(t), e.user(t), e.user(t)
	for _, u := range []ecoid.ID{pro1, pro2, canceled} {
		e.setRow(t, u, func(s *billing.Subscription) { s.Plan = billing.Pro })
	}
	e.setRow(t, canceled, func(s *billing.Subscription) { s.Status = billing.StatusCanceled })
	ent := ecoid.New(ecoid.User)
	if _, err := e.svc.SetEnterprise(ctx, ent, "ent@example.com", billing.Terms{QuotaCalls: 1e7, PriceCents: 99_000}); err != nil {
		t.Fatal(err)
	}
	e.usage.total = 10
	e.usage.top = []billing.UserCalls{{UserID: pro1, Calls: 900}, {UserID: free1, Calls: 800}, {UserID: ent, Calls: 700},
		{UserID: free2, Calls: 600}, {UserID: canceled, Calls: 500}, {UserID: pro2, Calls: 400}}

	ov, err := e.svc.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ov.UsersByPlan[billing.Free] != 3 || ov.UsersByPlan[billing.Pro] != 2 || ov.UsersByPlan[billing.Enterprise] != 1 {
		t.Fatalf("users by plan = %v", ov.UsersByPlan)
	}
	if ov.MRRCents != 2*2900+99_000 {
		t.Fatalf("MRR = %d", ov.MRRCents)
	}
	// testNow is March 10, 12:00: today is under one day, the period nine and a half.
	if ov.CallsToday != 10 || ov.CallsThisPeriod != 100 || !ov.PeriodStart.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("calls today %d, this period %d, period %v", ov.CallsToday, ov.CallsThisPeriod, ov.PeriodStart)
	}
	if len(ov.TopUsers) != 5 || ov.TopUsers[0].UserID != pro1 || ov.TopUsers[0].Plan != billing.Pro || ov.TopUsers[0].Email == "" ||
		ov.TopUsers[2].Email != "ent@example.com" || ov.TopUsers[4].Plan != billing.Free {
		t.Fatalf("top users = %+v", ov.TopUsers)
	}

	e.usage.err = errors.New("down")
	if _, err := e.svc.Overview(ctx); err == nil {
		t.Fatal("a usage error was hidden")
	}
	noUsage := newEnv(t, false, func(c *billing.Config) { c.Usage = nil })
	ov, err = noUsage.svc.Overview(ctx)
	if err != nil || ov.CallsToday != 0 || len(ov.TopUsers) != 0 || ov.UsersByPlan[billing.Pro] != 0 {
		t.Fatalf("overview without usage = %+v, %v", ov, err)
	}
}

func TestUsersList(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	var users []ecoid.ID
	for i := 0; i < 5; i++ {
		e.clock.Set(testNow.Add(time.Duration(i) * time.Minute))
		u := e.user(t)
		users = append(users, u)
		e.usage.set(u, testNow, int64(i*10))
	}
	e.setRow(t, users[3], func(s *billing.Subscription) { s.Plan = billing.Pro })
	page, err := e.svc.Users(ctx, billing.ListQuery{Page: 2, Limit: 2})
	if err != nil || page.Total != 5 || page.Page != 2 || page.Limit != 2 || len(page.Users) != 2 ||
		page.Users[0].UserID != users[2] || page.Users[1].CallsThisPeriod != 30 || page.Users[1].Plan != billing.Pro {
		t.Fatalf("page = %+v, %v", page, err)
	}
	page, err = e.svc.Users(ctx, billing.ListQuery{Page: 1, Limit: 10, Plan: billing.Pro, Sort: "-created_at"})
	if err != nil || page.Total != 1 || page.Users[0].UserID != users[3] {
		t.Fatalf("pro page = %+v, %v", page, err)
	}
	for _, q := range []billing.ListQuery{{Page: 0, Limit: 10}, {Page: 1, Limit: 101}, {Page: 1, Limit: 10, Sort: "id"}} {
		if _, err := e.svc.Users(ctx, q); !errors.Is(err, billing.ErrInvalidQuery) {
			t.Errorf("%+v: %v", q, err)
		}
	}
	e.usage.err = errors.New("down")
	if _, err := e.svc.Users(ctx, billing.ListQuery{Page: 1, Limit: 10}); err == nil {
		t.Fatal("a usage error was hidden")
	}
}
