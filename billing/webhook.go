package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/stripe/stripe-go/v76"
)

// WebhookTolerance is how far a Stripe-Signature timestamp may lie from now, in the past
// or in the future.
const WebhookTolerance = 300 * time.Second

// maxWebhookBytes bounds a webhook body; Stripe's events are far smaller.
const maxWebhookBytes = 1 << 20

// Webhook errors. ErrInvalidSignature covers a missing or malformed header, a wrong
// signature and a timestamp out of tolerance; ErrInvalidEvent a signed body that is not a
// Stripe event.
var (
	ErrInvalidSignature = errors.New("billing: invalid Stripe signature")
	ErrInvalidEvent     = errors.New("billing: invalid Stripe event")
)

// WebhookResult says what HandleWebhook did with an event.
type WebhookResult struct {
	EventID   string
	Type      string
	Handled   bool // the type is one billing acts on
	Duplicate bool // the event ID was processed before; nothing was done
}

// Handled event types.
const (
	eventCheckoutCompleted     = "checkout.session.completed"
	eventCheckoutAsyncPaid     = "checkout.session.async_payment_succeeded"
	eventCheckoutAsyncFailed   = "checkout.session.async_payment_failed"
	eventSubscriptionCreated   = "customer.subscription.created"
	eventSubscriptionUpdated   = "customer.subscription.updated"
	eventSubscriptionDeleted   = "customer.subscription.deleted"
	eventInvoicePaymentFailed  = "invoice.payment_failed"
	eventInvoicePaymentSucceed = "invoice.payment_succeeded"
)

// WebhookHandler returns the http.Handler for Stripe's webhook endpoint, verifying each
// request with the endpoint's signing secret. It answers 400 invalid_signature to a
// missing, wrong or stale signature (more than WebhookTolerance in the past or the
// future) and 400 invalid_event to a signed body that is not an event, 413 to a body over
// 1 MiB, 200 {"received":true} to events it handled, did not need or had already
// processed, and 500 when handling failed (the event stays unprocessed so Stripe retries
// it). It does not need a Stripe client.
func (s *Service) WebhookHandler(secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				httpjson.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", "webhook body over 1 MiB")
				return
			}
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_body", "could not read the body")
			return
		}
		res, err := s.HandleWebhook(r.Context(), body, r.Header.Get("Stripe-Signature"), secret)
		switch {
		case errors.Is(err, ErrInvalidSignature):
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_signature", "the Stripe-Signature header does not verify")
		case errors.Is(err, ErrInvalidEvent):
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_event", "the body is not a Stripe event")
		case err != nil:
			s.log.Error("stripe webhook failed", "event", res.EventID, "type", res.Type, "err", err)
			httpjson.WriteError(w, http.StatusInternalServerError, "webhook_failed", "the event could not be processed; Stripe will retry")
		default:
			httpjson.Write(w, http.StatusOK, map[string]any{"received": true, "duplicate": res.Duplicate})
		}
	})
}

// HandleWebhook verifies payload against the Stripe-Signature header sigHeader and the
// endpoint secret, then processes the event once (see Store.ProcessEvent). Errors wrap
// ErrInvalidSignature or ErrInvalidEvent for bad input; any other error means processing
// failed and the event was not recorded.
//
// Verification is done here, strictly (see verifySignature): the header must carry
// exactly one t= (a second one is refused, so a replayed signature cannot be checked
// against an old timestamp while the tolerance looks at a fresh one), that timestamp must
// be within WebhookTolerance of Config.Now in the past or the future, and a v1 signature
// must be HMAC-SHA256 of "<that timestamp>.<payload>", compared in constant time. API
// versions are not compared: billing reads only fields stable across versions.
func (s *Service) HandleWebhook(ctx context.Context, payload []byte, sigHeader, secret string) (WebhookResult, error) {
	res, err := s.handleWebhook(ctx, payload, sigHeader, secret)
	if s.cfg.OnWebhook != nil {
		s.cfg.OnWebhook(ctx, res, err)
	}
	return res, err
}

// WebhookOutcome names what HandleWebhook did, for metrics: "handled", "ignored" (a type
// billing does not act on), "duplicate", "invalid_signature", "invalid_event" or
// "failed".
func WebhookOutcome(res WebhookResult, err error) string {
	switch {
	case errors.Is(err, ErrInvalidSignature):
		return "invalid_signature"
	case errors.Is(err, ErrInvalidEvent):
		return "invalid_event"
	case err != nil:
		return "failed"
	case res.Duplicate:
		return "duplicate"
	case res.Handled:
		return "handled"
	}
	return "ignored"
}

func (s *Service) handleWebhook(ctx context.Context, payload []byte, sigHeader, secret string) (WebhookResult, error) {
	if err := verifySignature(payload, sigHeader, secret, s.now()); err != nil {
		return WebhookResult{}, err
	}
	var evt stripe.Event
	if err := json.Unmarshal(payload, &evt); err != nil {
		return WebhookResult{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	res := WebhookResult{EventID: evt.ID, Type: string(evt.Type)}
	if evt.ID == "" || evt.Data == nil {
		return res, fmt.Errorf("%w: no id or data", ErrInvalidEvent)
	}
	apply, err := s.eventAction(ctx, &evt)
	if err != nil {
		return res, err
	}
	if apply == nil {
		return res, nil
	}
	res.Handled = true
	var changed []ecoid.ID
	done, err := s.store.ProcessEvent(ctx, Event{ID: evt.ID, Type: res.Type, Created: unixTime(evt.Created)},
		func(ctx context.Context, tx SubscriptionTx) error {
			changed = changed[:0]
			return apply(ctx, watchTx{tx, &changed})
		})
	if err != nil {
		return res, fmt.Errorf("billing: process event %s: %w", evt.ID, err)
	}
	res.Duplicate = !done
	if done {
		s.planChanged(ctx, changed...)
	}
	return res, nil
}

// watchTx notes the users whose rows an event's work changed, for Config.OnPlanChange.
type watchTx struct {
	SubscriptionTx
	changed *[]ecoid.ID
}

func (w watchTx) UpdateSubscription(ctx context.Context, user ecoid.ID, fn func(*Subscription) error) (Subscription, error) {
	return w.SubscriptionTx.UpdateSubscription(ctx, user, func(sub *Subscription) error {
		before := *sub
		if err := fn(sub); err != nil {
			return err
		}
		if before.Plan != sub.Plan || before.Status != sub.Status || before.Custom != sub.Custom ||
			before.StripeSubscriptionID != sub.StripeSubscriptionID || before.StripeCustomerID != sub.StripeCustomerID {
			*w.changed = append(*w.changed, user)
		}
		return nil
	})
}

// eventAction decodes the event's object and returns the store work for it, or nil for a
// type billing does not act on. A handled type whose object does not decode is
// ErrInvalidEvent.
func (s *Service) eventAction(ctx context.Context, evt *stripe.Event) (func(context.Context, SubscriptionTx) error, error) {
	at := unixTime(evt.Created)
	decode := func(v any) error {
		if err := json.Unmarshal(evt.Data.Raw, v); err != nil {
			return fmt.Errorf("%w: %s object: %v", ErrInvalidEvent, evt.Type, err)
		}
		return nil
	}
	switch evt.Type {
	case eventCheckoutCompleted, eventCheckoutAsyncPaid, eventCheckoutAsyncFailed:
		var cs stripe.CheckoutSession
		if err := decode(&cs); err != nil {
			return nil, err
		}
		if evt.Type == eventCheckoutAsyncFailed {
			return func(ctx context.Context, tx SubscriptionTx) error { return s.onCheckoutFailed(ctx, tx, &cs, at) }, nil
		}
		if cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid && cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusNoPaymentRequired {
			// Not paid yet (a delayed payment method): async_payment_succeeded, or the
			// subscription becoming active, activates the plan.
			s.log.Info("checkout session not paid yet; plan not activated", "session", cs.ID, "payment_status", string(cs.PaymentStatus))
			return func(context.Context, SubscriptionTx) error { return nil }, nil
		}
		sub, err := s.checkoutSubscription(ctx, &cs)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, tx SubscriptionTx) error { return s.onCheckoutPaid(ctx, tx, &cs, sub, at) }, nil
	case eventSubscriptionCreated, eventSubscriptionUpdated, eventSubscriptionDeleted:
		var sub stripe.Subscription
		if err := decode(&sub); err != nil {
			return nil, err
		}
		deleted := evt.Type == eventSubscriptionDeleted
		return func(ctx context.Context, tx SubscriptionTx) error {
			return s.onSubscription(ctx, tx, &sub, at, deleted)
		}, nil
	case eventInvoicePaymentFailed, eventInvoicePaymentSucceed:
		var inv stripe.Invoice
		if err := decode(&inv); err != nil {
			return nil, err
		}
		paid := evt.Type == eventInvoicePaymentSucceed
		return func(ctx context.Context, tx SubscriptionTx) error { return s.onInvoice(ctx, tx, &inv, at, paid) }, nil
	}
	return nil, nil
}

// The ordering rule: a row remembers the creation time of the newest event applied to it
// (StateAt). An event created before StateAt is ignored. An event created in the same
// second as StateAt applies only to the Stripe subscription the row already points at
// (so a late update of a subscription deleted in that second cannot revive it). An event
// about another, newer subscription is adopted unless that subscription has ended.

// checkoutUser is the user a checkout session is for (client_reference_id, else the
// metadata's eco_id), or false.
func checkoutUser(cs *stripe.CheckoutSession) (ecoid.ID, bool) {
	for _, v := range []string{cs.ClientReferenceID, cs.Metadata["eco_id"]} {
		if user, err := ecoid.Parse(v); err == nil && user.Type() == ecoid.User {
			return user, true
		}
	}
	return "", false
}

// checkoutSubscription reads the subscription a paid checkout session created from
// Stripe: the session in the event carries neither its prices nor its status. Without a
// Stripe client, or for a session without a subscription, it returns nil.
func (s *Service) checkoutSubscription(ctx context.Context, cs *stripe.CheckoutSession) (*stripe.Subscription, error) {
	if s.cfg.Stripe == nil || cs.Subscription == nil || cs.Subscription.ID == "" {
		return nil, nil
	}
	if _, ok := checkoutUser(cs); !ok {
		return nil, nil // ignored anyway; no need to ask Stripe
	}
	p := &stripe.SubscriptionParams{Params: stripe.Params{Context: ctx}}
	sub, err := s.cfg.Stripe.Subscriptions.Get(cs.Subscription.ID, p)
	if err != nil {
		return nil, fmt.Errorf("billing: checkout session %s: read subscription: %w: %w", cs.ID, ErrStripe, err)
	}
	return sub, nil
}

// onCheckoutPaid handles a checkout session whose payment is done (payment_status paid or
// no_payment_required). The plan is the one the subscription's price bills (PriceIDs) and
// the status the subscription's own: what the session's metadata says is not trusted. A
// price that is not configured upgrades nothing. Without a Stripe client (sub nil) the
// session only links the user to its customer and subscription; the
// customer.subscription.* events, which carry prices and status, then set the plan.
func (s *Service) onCheckoutPaid(ctx context.Context, tx SubscriptionTx, cs *stripe.CheckoutSession, sub *stripe.Subscription, at time.Time) error {
	user, ok := checkoutUser(cs)
	if !ok {
		s.log.Warn("checkout session without a user EcoID; ignored", "session", cs.ID)
		return nil
	}
	var plan PlanID
	if sub != nil {
		var known bool
		if plan, known = s.planOf(sub); !known {
			s.log.Warn("checkout session for a price that is not configured; plan not changed",
				"session", cs.ID, "subscription", sub.ID, "prices", pricesOf(sub))
			return nil
		}
	}
	if s.cfg.UserExists != nil {
		known, err := s.cfg.UserExists(ctx, user)
		if err != nil {
			return fmt.Errorf("billing: %s: look up user: %w", cs.ID, err)
		}
		if !known {
			s.log.Warn("checkout session for an unknown user; ignored", "session", cs.ID, "user", user.String())
			return nil
		}
	}
	email := cs.CustomerEmail
	if cs.CustomerDetails != nil && cs.CustomerDetails.Email != "" {
		email = cs.CustomerDetails.Email
	}
	subID, custID := "", ""
	if cs.Subscription != nil {
		subID = cs.Subscription.ID
	}
	if cs.Customer != nil {
		custID = cs.Customer.ID
	}
	if custID != "" {
		// A Stripe customer is one user's: a session naming another user's customer (a
		// Stripe account shared by two environments, say) can never be applied, so it is
		// ignored rather than failed, which Stripe would retry for days.
		owner, err := tx.SubscriptionByCustomer(ctx, custID)
		switch {
		case err == nil && owner.UserID != user:
			s.log.Warn("checkout session names another user's Stripe customer; ignored", "session", cs.ID, "user", user.String())
			return nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return fmt.Errorf("billing: %s: look up customer: %w", cs.ID, err)
		}
	}
	now := s.now()
	if _, err := tx.EnsureSubscription(ctx, Subscription{
		ID: ecoid.New(ecoid.Subscription), UserID: user, Email: email,
		Plan: Free, Status: StatusActive, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		return err
	}
	_, err := tx.UpdateSubscription(ctx, user, func(r *Subscription) error {
		if !newer(r, subID, at) {
			return nil
		}
		if sub != nil {
			if r.Plan != Enterprise { // Enterprise is the operator's (SetEnterprise)
				r.Plan = plan
			}
			r.Status, r.CancelAtPeriodEnd = Status(sub.Status), sub.CancelAtPeriodEnd
			r.CurrentPeriodStart, r.CurrentPeriodEnd = unixTime(sub.CurrentPeriodStart), unixTime(sub.CurrentPeriodEnd)
		}
		if subID != "" {
			r.StripeSubscriptionID = subID
		}
		if custID != "" {
			r.StripeCustomerID = custID
		}
		r.StateAt, r.UpdatedAt = at, now
		return nil
	})
	return err
}

// onCheckoutFailed handles checkout.session.async_payment_failed: the delayed payment of
// the session did not go through, so its subscription, when it is the user's current
// one, is not entitled (incomplete) until Stripe reports it active.
func (s *Service) onCheckoutFailed(ctx context.Context, tx SubscriptionTx, cs *stripe.CheckoutSession, at time.Time) error {
	user, ok := checkoutUser(cs)
	if !ok || cs.Subscription == nil || cs.Subscription.ID == "" {
		return nil
	}
	s.log.Info("checkout session payment failed", "session", cs.ID, "user", user.String())
	_, err := tx.UpdateSubscription(ctx, user, func(r *Subscription) error {
		if r.StripeSubscriptionID != cs.Subscription.ID || !newer(r, cs.Subscription.ID, at) {
			return nil
		}
		r.Status, r.StateAt, r.UpdatedAt = StatusIncomplete, at, s.now()
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// pricesOf lists a subscription's price IDs, for logs.
func pricesOf(sub *stripe.Subscription) []string {
	var out []string
	if sub.Items != nil {
		for _, it := range sub.Items.Data {
			if it != nil && it.Price != nil {
				out = append(out, it.Price.ID)
			}
		}
	}
	return out
}

// newer applies the ordering rule for an event about Stripe subscription subID.
func newer(r *Subscription, subID string, at time.Time) bool {
	if at.Before(r.StateAt) {
		return false
	}
	if at.Equal(r.StateAt) && !r.StateAt.IsZero() && subID != r.StripeSubscriptionID {
		return false
	}
	return true
}

// findUser locates the row an object belongs to: by the eco_id in its metadata, else by
// its Stripe customer. It returns ErrNotFound when neither matches.
func findUser(ctx context.Context, tx SubscriptionTx, metadata map[string]string, cust *stripe.Customer) (Subscription, error) {
	if id, err := ecoid.Parse(metadata["eco_id"]); err == nil && id.Type() == ecoid.User {
		row, err := tx.Subscription(ctx, id)
		if !errors.Is(err, ErrNotFound) {
			return row, err
		}
	}
	if cust != nil && cust.ID != "" {
		return tx.SubscriptionByCustomer(ctx, cust.ID)
	}
	return Subscription{}, ErrNotFound
}

// planOf returns the plan a subscription bills: the best plan among its items' prices
// (PriceIDs.PlanOf), and false when none of its prices is configured. Metadata is never
// read: anyone with dashboard access can write it.
func (s *Service) planOf(sub *stripe.Subscription) (PlanID, bool) {
	var plan PlanID
	if sub.Items != nil {
		for _, it := range sub.Items.Data {
			if it == nil || it.Price == nil {
				continue
			}
			if p, ok := s.cfg.Prices.PlanOf(it.Price.ID); ok && (plan == "" || p == Pro) {
				plan = p
			}
		}
	}
	return plan, plan != ""
}

func (s *Service) onSubscription(ctx context.Context, tx SubscriptionTx, sub *stripe.Subscription, at time.Time, deleted bool) error {
	row, err := findUser(ctx, tx, sub.Metadata, sub.Customer)
	if errors.Is(err, ErrNotFound) {
		s.log.Warn("subscription event for an unknown customer; ignored", "subscription", sub.ID)
		return nil
	}
	if err != nil {
		return err
	}
	plan, planKnown := s.planOf(sub)
	now := s.now()
	_, err = tx.UpdateSubscription(ctx, row.UserID, func(r *Subscription) error {
		if !newer(r, sub.ID, at) {
			return nil
		}
		if deleted {
			if r.StripeSubscriptionID != sub.ID {
				return nil // an old subscription ended; the current one is unaffected
			}
			r.Plan, r.Status, r.StripeSubscriptionID, r.CancelAtPeriodEnd = Free, StatusActive, "", false
			r.CurrentPeriodStart, r.CurrentPeriodEnd = time.Time{}, time.Time{}
			r.StateAt, r.UpdatedAt = at, now
			return nil
		}
		status := Status(sub.Status)
		if r.StripeSubscriptionID != sub.ID && r.StripeSubscriptionID != "" && !status.Entitled() {
			return nil // another subscription that is not live cannot replace the current one
		}
		switch {
		case !planKnown && r.StripeSubscriptionID != sub.ID:
			// Not a subscription to a plan of ours: it upgrades nothing and replaces nothing.
			s.log.Warn("subscription for a price that is not configured; ignored", "subscription", sub.ID, "prices", pricesOf(sub))
			return nil
		case r.Plan == Enterprise:
			// Enterprise is the operator's (SetEnterprise); the status still follows Stripe.
		case planKnown:
			r.Plan = plan
		default:
			// The current subscription now bills a price that is not configured: it no
			// longer pays for a plan of ours.
			s.log.Warn("subscription moved to a price that is not configured; back on free", "subscription", sub.ID, "prices", pricesOf(sub))
			r.Plan = Free
		}
		r.StripeSubscriptionID, r.Status, r.CancelAtPeriodEnd = sub.ID, status, sub.CancelAtPeriodEnd
		if sub.Customer != nil && sub.Customer.ID != "" {
			r.StripeCustomerID = sub.Customer.ID
		}
		r.CurrentPeriodStart, r.CurrentPeriodEnd = unixTime(sub.CurrentPeriodStart), unixTime(sub.CurrentPeriodEnd)
		r.StateAt, r.UpdatedAt = at, now
		return nil
	})
	return err
}

func (s *Service) onInvoice(ctx context.Context, tx SubscriptionTx, inv *stripe.Invoice, at time.Time, paid bool) error {
	if inv.Subscription == nil || inv.Subscription.ID == "" {
		return nil // a one-off invoice does not change a subscription
	}
	row, err := findUser(ctx, tx, inv.Subscription.Metadata, inv.Customer)
	if errors.Is(err, ErrNotFound) {
		s.log.Warn("invoice event for an unknown customer; ignored", "invoice", inv.ID)
		return nil
	}
	if err != nil {
		return err
	}
	now := s.now()
	_, err = tx.UpdateSubscription(ctx, row.UserID, func(r *Subscription) error {
		if r.StripeSubscriptionID != inv.Subscription.ID || !newer(r, inv.Subscription.ID, at) {
			return nil
		}
		switch {
		case paid && (r.Status == StatusPastDue || r.Status == StatusUnpaid || r.Status == StatusIncomplete):
			r.Status = StatusActive
		case !paid && r.Status.Entitled():
			r.Status = StatusPastDue
		default:
			return nil
		}
		r.StateAt, r.UpdatedAt = at, now
		return nil
	})
	return err
}
