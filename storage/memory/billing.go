package memory

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var _ billing.Store = (*BillingStore)(nil)

// BillingStore is the in-memory billing.Store. Safe for concurrent use.
type BillingStore struct {
	mu      sync.Mutex
	subs    map[ecoid.ID]billing.Subscription // by user
	events  map[string]billing.Event
	charges map[billingChargeKey]billing.OverageCharge
	terms   map[ecoid.ID][]billing.TermsRecord // by subscription, in write order
}

type billingChargeKey struct {
	sub    ecoid.ID
	period time.Time
}

// NewBillingStore returns an empty BillingStore.
func NewBillingStore() *BillingStore {
	return &BillingStore{
		subs:    map[ecoid.ID]billing.Subscription{},
		events:  map[string]billing.Event{},
		charges: map[billingChargeKey]billing.OverageCharge{},
		terms:   map[ecoid.ID][]billing.TermsRecord{},
	}
}

// Subscription implements billing.SubscriptionTx.
func (s *BillingStore) Subscription(_ context.Context, user ecoid.ID) (billing.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view().get(user)
}

// SubscriptionByCustomer implements billing.SubscriptionTx.
func (s *BillingStore) SubscriptionByCustomer(_ context.Context, customerID string) (billing.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view().byCustomer(customerID)
}

// EnsureSubscription implements billing.SubscriptionTx.
func (s *BillingStore) EnsureSubscription(_ context.Context, sub billing.Subscription) (billing.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view().ensure(sub)
}

// UpdateSubscription implements billing.SubscriptionTx. fn runs under the store's lock.
func (s *BillingStore) UpdateSubscription(_ context.Context, user ecoid.ID, fn func(*billing.Subscription) error) (billing.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view().update(user, fn)
}

// view is the store's own billingView: writes go straight to its maps.
func (s *BillingStore) view() billingView { return billingView{m: s.subs, terms: s.terms} }

// billingView holds the subscription logic shared by the store and its transactions.
type billingView struct {
	m     map[ecoid.ID]billing.Subscription
	terms map[ecoid.ID][]billing.TermsRecord
}

// record appends the terms record of sub when it differs from the last one (or there is
// none), never earlier than the last one.
func (v billingView) record(sub billing.Subscription) {
	rec := billing.TermsRecordOf(sub)
	hist := v.terms[sub.ID]
	if n := len(hist); n > 0 {
		last := hist[n-1]
		if last.SameAs(rec) {
			return
		}
		if rec.At.Before(last.At) {
			rec.At = last.At
		}
	}
	v.terms[sub.ID] = append(hist[:len(hist):len(hist)], rec)
}

func (v billingView) get(user ecoid.ID) (billing.Subscription, error) {
	sub, ok := v.m[user]
	if !ok {
		return billing.Subscription{}, billing.ErrNotFound
	}
	return sub, nil
}

func (v billingView) byCustomer(customerID string) (billing.Subscription, error) {
	if customerID == "" {
		return billing.Subscription{}, billing.ErrNotFound
	}
	for _, sub := range v.m {
		if sub.StripeCustomerID == customerID {
			return sub, nil
		}
	}
	return billing.Subscription{}, billing.ErrNotFound
}

func (v billingView) ensure(sub billing.Subscription) (billing.Subscription, error) {
	if !sub.ID.Valid() || !sub.UserID.Valid() {
		return billing.Subscription{}, billing.ErrConflict
	}
	if old, ok := v.m[sub.UserID]; ok {
		return old, nil
	}
	for _, other := range v.m {
		if other.ID == sub.ID || (sub.StripeCustomerID != "" && other.StripeCustomerID == sub.StripeCustomerID) {
			return billing.Subscription{}, billing.ErrConflict
		}
	}
	sub = billingNormalize(sub)
	v.m[sub.UserID] = sub
	v.record(sub)
	return sub, nil
}

func (v billingView) update(user ecoid.ID, fn func(*billing.Subscription) error) (billing.Subscription, error) {
	old, ok := v.m[user]
	if !ok {
		return billing.Subscription{}, billing.ErrNotFound
	}
	sub := old
	if err := fn(&sub); err != nil {
		return billing.Subscription{}, err
	}
	sub.ID, sub.UserID = old.ID, old.UserID
	if sub.StripeCustomerID != "" && sub.StripeCustomerID != old.StripeCustomerID {
		for u, other := range v.m {
			if u != user && other.StripeCustomerID == sub.StripeCustomerID {
				return billing.Subscription{}, billing.ErrConflict
			}
		}
	}
	sub = billingNormalize(sub)
	v.m[user] = sub
	v.record(sub)
	return sub, nil
}

// billingNormalize makes times UTC and microsecond-precise, like PostgreSQL's timestamptz.
func billingNormalize(sub billing.Subscription) billing.Subscription {
	for _, t := range []*time.Time{&sub.CurrentPeriodStart, &sub.CurrentPeriodEnd, &sub.StateAt, &sub.CreatedAt, &sub.UpdatedAt} {
		*t = billingRound(*t)
	}
	return sub
}

func billingRound(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(time.Microsecond)
}

// ProcessEvent implements billing.Store. It holds the store's lock while fn runs, and fn
// works on a copy of the subscriptions that replaces the originals only when fn succeeds.
func (s *BillingStore) ProcessEvent(ctx context.Context, e billing.Event, fn func(context.Context, billing.SubscriptionTx) error) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, done := s.events[e.ID]; done {
		return false, nil
	}
	tx := &billingTx{view: billingView{m: maps.Clone(s.subs), terms: maps.Clone(s.terms)}}
	if err := fn(ctx, tx); err != nil {
		return false, err
	}
	s.subs, s.terms = tx.view.m, tx.view.terms
	e.Created = billingRound(e.Created)
	s.events[e.ID] = e
	return true, nil
}

// billingTx is the SubscriptionTx of ProcessEvent: the store's lock is held by its caller.
type billingTx struct{ view billingView }

func (t *billingTx) Subscription(_ context.Context, user ecoid.ID) (billing.Subscription, error) {
	return t.view.get(user)
}

func (t *billingTx) SubscriptionByCustomer(_ context.Context, customerID string) (billing.Subscription, error) {
	return t.view.byCustomer(customerID)
}

func (t *billingTx) EnsureSubscription(_ context.Context, sub billing.Subscription) (billing.Subscription, error) {
	return t.view.ensure(sub)
}

func (t *billingTx) UpdateSubscription(_ context.Context, user ecoid.ID, fn func(*billing.Subscription) error) (billing.Subscription, error) {
	return t.view.update(user, fn)
}

// ListSubscriptions implements billing.Store.
func (s *BillingStore) ListSubscriptions(_ context.Context, q billing.ListQuery) ([]billing.Subscription, int64, error) {
	s.mu.Lock()
	var rows []billing.Subscription
	for _, sub := range s.subs {
		if q.Plan == "" || sub.Plan == q.Plan {
			rows = append(rows, sub)
		}
	}
	s.mu.Unlock()
	key, desc := strings.CutPrefix(q.Sort, "-")
	slices.SortFunc(rows, func(a, b billing.Subscription) int {
		var c int
		switch key {
		case "email":
			c = strings.Compare(a.Email, b.Email)
		case "plan":
			c = strings.Compare(string(a.Plan), string(b.Plan))
		default:
			c = a.CreatedAt.Compare(b.CreatedAt)
		}
		if c == 0 {
			c = strings.Compare(string(a.ID), string(b.ID))
		}
		if desc {
			c = -c
		}
		return c
	})
	total := int64(len(rows))
	if q.Page < 1 || q.Limit < 1 || q.Page-1 >= (len(rows)+q.Limit-1)/q.Limit {
		return []billing.Subscription{}, total, nil // also keeps (Page-1)*Limit from overflowing
	}
	start := (q.Page - 1) * q.Limit
	return rows[start:min(start+q.Limit, len(rows))], total, nil
}

// Subscriptions implements billing.Store.
func (s *BillingStore) Subscriptions(_ context.Context, plans ...billing.PlanID) ([]billing.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := []billing.Subscription{}
	for _, sub := range s.subs {
		if slices.Contains(plans, sub.Plan) {
			rows = append(rows, sub)
		}
	}
	slices.SortFunc(rows, func(a, b billing.Subscription) int { return cmp.Compare(a.ID, b.ID) })
	return rows, nil
}

// PlanBreakdown implements billing.Store.
func (s *BillingStore) PlanBreakdown(_ context.Context) ([]billing.PlanGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type key struct {
		plan   billing.PlanID
		status billing.Status
	}
	groups := map[key]*billing.PlanGroup{}
	for _, sub := range s.subs {
		k := key{sub.Plan, sub.Status}
		g := groups[k]
		if g == nil {
			g = &billing.PlanGroup{Plan: sub.Plan, Status: sub.Status}
			groups[k] = g
		}
		g.Users++
		g.CustomPriceCents += sub.Custom.PriceCents
	}
	out := make([]billing.PlanGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b billing.PlanGroup) int {
		return cmp.Or(cmp.Compare(a.Plan, b.Plan), cmp.Compare(a.Status, b.Status))
	})
	return out, nil
}

// ClaimOverage implements billing.Store.
func (s *BillingStore) ClaimOverage(_ context.Context, c billing.OverageCharge, staleBefore time.Time) (billing.OverageCharge, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Period = billing.PeriodStart(c.Period)
	k := billingChargeKey{c.SubscriptionID, c.Period}
	old, ok := s.charges[k]
	if !ok {
		c.InvoiceItemID, c.ChargedAt = "", time.Time{}
		c.ClaimedAt = billingRound(c.ClaimedAt)
		s.charges[k] = c
		return c, true, nil
	}
	if old.InvoiceItemID == "" && old.ClaimedAt.Before(staleBefore) {
		old.ClaimedAt = billingRound(c.ClaimedAt)
		s.charges[k] = old
		return old, true, nil
	}
	return old, false, nil
}

// CompleteOverage implements billing.Store.
func (s *BillingStore) CompleteOverage(_ context.Context, sub ecoid.ID, period time.Time, invoiceItemID string, at time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := billingChargeKey{sub, billing.PeriodStart(period)}
	c, ok := s.charges[k]
	if !ok {
		return false, billing.ErrNotFound
	}
	if c.InvoiceItemID != "" {
		return false, nil
	}
	c.InvoiceItemID, c.ChargedAt = invoiceItemID, billingRound(at)
	s.charges[k] = c
	return true, nil
}

// OverageCharge implements billing.Store.
func (s *BillingStore) OverageCharge(_ context.Context, sub ecoid.ID, period time.Time) (billing.OverageCharge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.charges[billingChargeKey{sub, billing.PeriodStart(period)}]
	if !ok {
		return billing.OverageCharge{}, billing.ErrNotFound
	}
	return c, nil
}

// OverageRevenue implements billing.Store.
func (s *BillingStore) OverageRevenue(_ context.Context, from, to time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum int64
	for _, c := range s.charges {
		if c.InvoiceItemID != "" && !c.Period.Before(from) && c.Period.Before(to) {
			sum += c.AmountCents
		}
	}
	return sum, nil
}

// TermsInForce implements billing.Store.
func (s *BillingStore) TermsInForce(_ context.Context, from, to time.Time) ([]billing.TermsRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []billing.TermsRecord{}
	for _, hist := range s.terms {
		first := 0 // the last record at or before from, or the first one
		for i, r := range hist {
			if !r.At.After(from) {
				first = i
			}
		}
		var in []billing.TermsRecord
		for _, r := range hist[first:] {
			if r.At.Before(to) {
				in = append(in, r)
			}
		}
		if slices.ContainsFunc(in, billing.TermsRecord.BillsOverage) {
			out = append(out, in...)
		}
	}
	slices.SortStableFunc(out, func(a, b billing.TermsRecord) int {
		return cmp.Or(cmp.Compare(a.SubscriptionID, b.SubscriptionID), a.At.Compare(b.At))
	})
	return out, nil
}
