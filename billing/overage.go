package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// OverageResult counts what one overage run did: Processed subscriptions were examined,
// Charged got an invoice item in this run, Skipped did not (no calls over quota, already
// charged, taken by a concurrent run, or no Stripe customer). Processed = Charged + Skipped.
type OverageResult struct {
	Processed int `json:"processed"`
	Charged   int `json:"charged"`
	Skipped   int `json:"skipped"`
}

// ProcessOverage charges the overage of the last closed period (the calendar month before
// now) for every subscription that was under terms billing overage (Pro, and Enterprise
// with an overage rate and no hard cap) at some time of it. It is the cron entry point;
// see ProcessOverageFor.
func (s *Service) ProcessOverage(ctx context.Context) (OverageResult, error) {
	return s.ProcessOverageFor(ctx, PeriodStart(s.now()).AddDate(0, -1, 0))
}

// ProcessOverageFor charges the overage of the closed period containing period, by the
// terms in force during that period (Store.TermsInForce and PeriodTerms), not by the
// terms of today: a subscription deleted, canceled or changed after (or during) the
// period is still charged for it. For each subscription, calls over the quota × the
// overage rate (Terms.OverageCents) become one Stripe invoice item with metadata
// {eco_id, period} and the idempotency key "nexus:overage:<subscription EcoID>:<YYYY-MM-DD>",
// recorded in the ledger (unique per subscription and period) with its invoice item ID.
// The item rides on the next invoice of the Stripe subscription that billed the period
// when that subscription is still the user's and entitled; otherwise (deleted, canceled,
// replaced, or none, as for Enterprise billed by hand) it goes on an invoice of its own,
// created with the key "nexus:overage-invoice:<subscription EcoID>:<YYYY-MM-DD>" and
// auto-advanced, so Stripe finalizes and collects it.
//
// Exactly one charge per subscription and period, whatever happens:
//   - a second run finds the ledger row charged and skips it;
//   - concurrent runs race on ClaimOverage and only the winner calls Stripe;
//   - after a crash between Stripe and the store the row stays pending; once the claim is
//     older than Config.OverageLease a later run re-claims it and repeats the calls with
//     the same idempotency keys, and Stripe answers with the objects it already created.
//
// Errors of single subscriptions do not stop the run: they are joined into the returned
// error while the counts cover what was done. ErrPeriodOpen when the period has not
// ended; ErrDisabled without Stripe; ErrNoUsage without a UsageSource.
func (s *Service) ProcessOverageFor(ctx context.Context, period time.Time) (OverageResult, error) {
	var res OverageResult
	period = PeriodStart(period)
	if s.now().Before(PeriodEnd(period)) {
		return res, fmt.Errorf("%w: %s", ErrPeriodOpen, periodKey(period))
	}
	if s.cfg.Stripe == nil {
		return res, ErrDisabled
	}
	if s.cfg.Usage == nil {
		return res, ErrNoUsage
	}
	records, err := s.store.TermsInForce(ctx, period, PeriodEnd(period))
	if err != nil {
		return res, fmt.Errorf("billing: overage: terms history: %w", err)
	}
	var errs []error
	for len(records) > 0 {
		n := 1
		for n < len(records) && records[n].SubscriptionID == records[0].SubscriptionID {
			n++
		}
		group := records[:n]
		records = records[n:]
		res.Processed++
		charged, err := s.chargeOverage(ctx, group, period)
		if err != nil {
			errs = append(errs, fmt.Errorf("subscription %s: %w", group[0].SubscriptionID, err))
		}
		if charged {
			res.Charged++
		} else {
			res.Skipped++
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("billing: overage %s: %w", periodKey(period), errors.Join(errs...))
	}
	s.log.Info("overage processed", "period", periodKey(period), "processed", res.Processed, "charged", res.Charged, "skipped", res.Skipped)
	return res, nil
}

// PeriodTerms picks, from the records in force during one period of one subscription
// (Store.TermsInForce), the one whose terms bill the period: the one with the highest
// included quota; among equal quotas the one that charges least (a hard cap, else the
// lowest overage rate); among equals the latest. It returns false for no records.
//
// Why the highest quota rather than pro-rating by days: calls are counted per period,
// not per day of each plan, so a pro-rated quota would charge a customer who upgraded on
// the 20th for calls made under the plan they upgraded to ("100,000 calls a month
// included" would become 36,000); and a customer on a hard cap while a paid plan was in
// force was refused past that cap anyway. The highest quota never bills more than any of
// the period's terms would have billed for the whole period, and it bills the calls a
// paid plan served even when that plan ended before the cron ran (the $4,900 of issue
// 10.6).
func PeriodTerms(records []TermsRecord) (TermsRecord, bool) {
	if len(records) == 0 {
		return TermsRecord{}, false
	}
	best := records[0]
	for _, r := range records[1:] {
		switch {
		case r.Terms.QuotaCalls > best.Terms.QuotaCalls:
			best = r
		case r.Terms.QuotaCalls < best.Terms.QuotaCalls:
		case rateOf(r.Terms) <= rateOf(best.Terms):
			best = r
		}
	}
	return best, true
}

// rateOf is the effective overage rate: zero under a hard cap.
func rateOf(t Terms) int64 {
	if t.HardCap {
		return 0
	}
	return t.OverageMilliCentsPerCall
}

// chargeOverage charges one subscription for one period by the terms of its records;
// it reports whether this call created the charge.
func (s *Service) chargeOverage(ctx context.Context, records []TermsRecord, period time.Time) (bool, error) {
	terms, _ := PeriodTerms(records)
	t := terms.Terms
	if !terms.BillsOverage() {
		return false, nil
	}
	customer := terms.StripeCustomerID
	for i := len(records) - 1; customer == "" && i >= 0; i-- {
		customer = records[i].StripeCustomerID
	}
	current, err := s.store.Subscription(ctx, terms.UserID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("subscription: %w", err)
	}
	if customer == "" {
		customer = current.StripeCustomerID
	}
	if customer == "" {
		return false, nil
	}
	calls, err := s.cfg.Usage.PeriodCalls(ctx, terms.UserID, period)
	if err != nil {
		return false, fmt.Errorf("usage: %w", err)
	}
	over := t.CallsOver(calls)
	cents := t.OverageCents(over)
	if cents == 0 {
		return false, nil
	}
	now := s.now()
	row, claimed, err := s.store.ClaimOverage(ctx, OverageCharge{
		SubscriptionID: terms.SubscriptionID, UserID: terms.UserID, Period: period,
		Calls: calls, CallsOver: over, AmountCents: cents, ClaimedAt: now,
	}, now.Add(-s.cfg.OverageLease))
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	if !claimed {
		return false, nil
	}
	pk := periodKey(period)
	sub := terms.SubscriptionID.String()
	p := &stripe.InvoiceItemParams{
		Params:      s.params(ctx, idemKey("overage", sub, pk)),
		Customer:    stripe.String(customer),
		Amount:      stripe.Int64(row.AmountCents),
		Currency:    stripe.String(s.cfg.Currency),
		Description: stripe.String("API overage " + pk[:7] + ": " + strconv.FormatInt(row.CallsOver, 10) + " calls over the quota"),
	}
	p.AddMetadata("eco_id", terms.UserID.String())
	p.AddMetadata("period", pk)
	live := terms.StripeSubscriptionID != "" && current.StripeSubscriptionID == terms.StripeSubscriptionID && current.Status.Entitled()
	if live {
		p.Subscription = stripe.String(terms.StripeSubscriptionID)
	} else {
		ip := &stripe.InvoiceParams{
			Params:                      s.params(ctx, idemKey("overage-invoice", sub, pk)),
			Customer:                    stripe.String(customer),
			AutoAdvance:                 stripe.Bool(true),
			PendingInvoiceItemsBehavior: stripe.String("exclude"),
			Currency:                    stripe.String(s.cfg.Currency),
			Description:                 stripe.String("API overage " + pk[:7]),
		}
		ip.AddMetadata("eco_id", terms.UserID.String())
		ip.AddMetadata("period", pk)
		inv, err := s.cfg.Stripe.Invoices.New(ip)
		if err != nil {
			return false, fmt.Errorf("create overage invoice: %w: %w", ErrStripe, err)
		}
		p.Invoice = stripe.String(inv.ID)
	}
	item, err := s.cfg.Stripe.InvoiceItems.New(p)
	if err != nil {
		return false, fmt.Errorf("create invoice item: %w: %w", ErrStripe, err)
	}
	done, err := s.store.CompleteOverage(ctx, terms.SubscriptionID, period, item.ID, s.now())
	if err != nil {
		return false, fmt.Errorf("record invoice item %s: %w", item.ID, err)
	}
	return done, nil
}
