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
// now) for every subscription whose terms bill overage (Pro, and Enterprise with an
// overage rate and no hard cap). It is the cron entry point; see ProcessOverageFor.
func (s *Service) ProcessOverage(ctx context.Context) (OverageResult, error) {
	return s.ProcessOverageFor(ctx, PeriodStart(s.now()).AddDate(0, -1, 0))
}

// ProcessOverageFor charges the overage of the closed period containing period. For each
// subscription, calls over the quota × the overage rate (Terms.OverageCents) become one
// Stripe invoice item on the customer's next invoice, with metadata {eco_id, period} and
// the idempotency key "nexus:overage:<subscription EcoID>:<YYYY-MM-DD>", recorded in the
// ledger (unique per subscription and period) with its invoice item ID.
//
// Exactly one charge per subscription and period, whatever happens:
//   - a second run finds the ledger row charged and skips it;
//   - concurrent runs race on ClaimOverage and only the winner calls Stripe;
//   - after a crash between Stripe and the store the row stays pending; once the claim is
//     older than Config.OverageLease a later run re-claims it and repeats the call with
//     the same idempotency key, and Stripe answers with the item it already created.
//
// Terms are those of each subscription when the run happens: a subscription that ended
// (customer.subscription.deleted) before the cron ran for its last month is on Free by
// then and that month's overage is not charged; run the cron early on the first of the
// month. Keeping a history of terms per period would close this gap.
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
	subs, err := s.store.Subscriptions(ctx, Pro, Enterprise)
	if err != nil {
		return res, fmt.Errorf("billing: overage: list subscriptions: %w", err)
	}
	var errs []error
	for _, sub := range subs {
		t := sub.Terms()
		if t.HardCap || t.OverageMilliCentsPerCall == 0 {
			continue
		}
		res.Processed++
		charged, err := s.chargeOverage(ctx, sub, t, period)
		if err != nil {
			errs = append(errs, fmt.Errorf("subscription %s: %w", sub.ID, err))
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

// chargeOverage charges one subscription for one period; it reports whether this call
// created the charge.
func (s *Service) chargeOverage(ctx context.Context, sub Subscription, t Terms, period time.Time) (bool, error) {
	if sub.StripeCustomerID == "" {
		return false, nil
	}
	calls, err := s.cfg.Usage.PeriodCalls(ctx, sub.UserID, period)
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
		SubscriptionID: sub.ID, UserID: sub.UserID, Period: period,
		Calls: calls, CallsOver: over, AmountCents: cents, ClaimedAt: now,
	}, now.Add(-s.cfg.OverageLease))
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	if !claimed {
		return false, nil
	}
	pk := periodKey(period)
	p := &stripe.InvoiceItemParams{
		Params:      s.params(ctx, idemKey("overage", sub.ID.String(), pk)),
		Customer:    stripe.String(sub.StripeCustomerID),
		Amount:      stripe.Int64(row.AmountCents),
		Currency:    stripe.String(s.cfg.Currency),
		Description: stripe.String("API overage " + pk[:7] + ": " + strconv.FormatInt(row.CallsOver, 10) + " calls over the quota"),
	}
	if sub.StripeSubscriptionID != "" {
		p.Subscription = stripe.String(sub.StripeSubscriptionID)
	}
	p.AddMetadata("eco_id", sub.UserID.String())
	p.AddMetadata("period", pk)
	item, err := s.cfg.Stripe.InvoiceItems.New(p)
	if err != nil {
		return false, fmt.Errorf("create invoice item: %w: %w", ErrStripe, err)
	}
	done, err := s.store.CompleteOverage(ctx, sub.ID, period, item.ID, s.now())
	if err != nil {
		return false, fmt.Errorf("record invoice item %s: %w", item.ID, err)
	}
	return done, nil
}
