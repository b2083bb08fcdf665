package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// Idempotency keys. Every create (and update) sent to Stripe carries a key derived from
// what the request means, never stripe-go's random default, so a retry of the same intent
// (a double click, a crashed run, two processes at once) is answered by Stripe with the
// first result instead of creating a second object. Stripe keeps keys for at least 24
// hours.
func idemKey(parts ...string) string {
	k := "nexus:" + strings.Join(parts, ":")
	if len(k) > 255 { // Stripe's limit; cannot happen with our parts, but stay safe
		sum := sha256.Sum256([]byte(k))
		k = "nexus:" + hex.EncodeToString(sum[:])
	}
	return k
}

// fingerprint hashes values that must be part of a key without spelling them out.
func fingerprint(values ...string) string {
	h := sha256.New()
	for _, v := range values {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func (s *Service) params(ctx context.Context, key string) stripe.Params {
	return stripe.Params{Context: ctx, IdempotencyKey: stripe.String(key)}
}

// Customer returns the user's Stripe customer ID, creating the customer (and the user's
// local Free row) on first use. It is idempotent: the create carries the key
// "nexus:customer:<user>", and when two calls race, the first ID stored wins and is
// returned to both.
func (s *Service) Customer(ctx context.Context, user ecoid.ID, email string) (string, error) {
	if s.cfg.Stripe == nil {
		return "", ErrDisabled
	}
	row, err := s.EnsureFreeSubscription(ctx, user, email)
	if err != nil {
		return "", err
	}
	if row.StripeCustomerID != "" {
		return row.StripeCustomerID, nil
	}
	if email == "" {
		email = row.Email
	}
	p := &stripe.CustomerParams{Params: s.params(ctx, idemKey("customer", user.String()))}
	if email != "" {
		p.Email = stripe.String(email)
	}
	p.AddMetadata("eco_id", user.String())
	c, err := s.cfg.Stripe.Customers.New(p)
	if err != nil {
		return "", fmt.Errorf("billing: create customer: %w: %w", ErrStripe, err)
	}
	row, err = s.store.UpdateSubscription(ctx, user, func(sub *Subscription) error {
		if sub.StripeCustomerID == "" {
			sub.StripeCustomerID, sub.UpdatedAt = c.ID, s.now()
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("billing: store customer: %w", err)
	}
	return row.StripeCustomerID, nil
}

// SubscribeFree puts the user's Free plan on Stripe as a subscription to the $0 Free price
// (so the customer portal shows it and upgrades are prorated by Stripe). Without a Free
// price ID it only ensures the local Free row. A user who already has a Stripe
// subscription keeps it. Key: "nexus:free:<user>".
func (s *Service) SubscribeFree(ctx context.Context, user ecoid.ID, email string) (Subscription, error) {
	if s.cfg.Stripe == nil {
		return Subscription{}, ErrDisabled
	}
	if s.cfg.Prices.Free == "" {
		return s.EnsureFreeSubscription(ctx, user, email)
	}
	cust, err := s.Customer(ctx, user, email)
	if err != nil {
		return Subscription{}, err
	}
	row, err := s.store.Subscription(ctx, user)
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: subscribe free: %w", err)
	}
	if row.StripeSubscriptionID != "" {
		return row, nil
	}
	p := &stripe.SubscriptionParams{
		Params:   s.params(ctx, idemKey("free", user.String())),
		Customer: stripe.String(cust),
		Items:    []*stripe.SubscriptionItemsParams{{Price: stripe.String(s.cfg.Prices.Free)}},
	}
	p.AddMetadata("eco_id", user.String())
	p.AddMetadata("plan", string(Free))
	sub, err := s.cfg.Stripe.Subscriptions.New(p)
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: create free subscription: %w: %w", ErrStripe, err)
	}
	row, err = s.store.UpdateSubscription(ctx, user, func(r *Subscription) error {
		if r.StripeSubscriptionID == "" {
			r.StripeSubscriptionID = sub.ID
			r.CurrentPeriodStart = unixTime(sub.CurrentPeriodStart)
			r.CurrentPeriodEnd = unixTime(sub.CurrentPeriodEnd)
			r.UpdatedAt = s.now()
		}
		return nil
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: store free subscription: %w", err)
	}
	return row, nil
}

// Checkout starts a Stripe Checkout session for plan and returns its URL. Only Pro is sold
// through checkout: other plans return ErrPlanNotForSale (ErrUnknownPlan for unknown
// names). The session carries client_reference_id = the user's EcoID and metadata
// {eco_id, plan} (also on the subscription it creates), which the webhook uses to
// activate the plan. A user already entitled to plan gets ErrAlreadySubscribed (use the
// portal to manage that subscription).
//
// Its key is derived from the user, plan, price, URLs, the row's last change and the UTC
// hour, so repeated clicks within an hour reuse one session while a later attempt, or
// one after any change of the subscription, gets a fresh session.
func (s *Service) Checkout(ctx context.Context, user ecoid.ID, email string, plan string) (string, error) {
	p, err := ParsePlan(plan)
	if err != nil {
		return "", err
	}
	if p != Pro {
		return "", fmt.Errorf("%w: %s", ErrPlanNotForSale, p)
	}
	if s.cfg.Stripe == nil {
		return "", ErrDisabled
	}
	if s.cfg.Prices.Pro == "" {
		return "", errors.New("billing: no Stripe price ID configured for pro")
	}
	// A second checkout would start a second Stripe subscription for the same plan; this is
	// checked before any Stripe call.
	switch current, err := s.store.Subscription(ctx, user); {
	case err == nil && current.Plan == p && current.Status.Entitled():
		return "", fmt.Errorf("%w: %s", ErrAlreadySubscribed, p)
	case err != nil && !errors.Is(err, ErrNotFound):
		return "", fmt.Errorf("billing: checkout: %w", err)
	}
	cust, err := s.Customer(ctx, user, email)
	if err != nil {
		return "", err
	}
	row, err := s.store.Subscription(ctx, user)
	if err != nil {
		return "", fmt.Errorf("billing: checkout: %w", err)
	}
	now := s.now()
	key := idemKey("checkout", user.String(), string(p), fingerprint(
		cust, s.cfg.Prices.Pro, s.cfg.SuccessURL, s.cfg.CancelURL,
		strconv.FormatInt(row.UpdatedAt.UnixNano(), 10), now.Format("2006010215")))
	params := &stripe.CheckoutSessionParams{
		Params:            s.params(ctx, key),
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:          stripe.String(cust),
		ClientReferenceID: stripe.String(user.String()),
		LineItems: []*stripe.CheckoutSessionLineItemParams{
			{Price: stripe.String(s.cfg.Prices.Pro), Quantity: stripe.Int64(1)},
		},
		SubscriptionData: &stripe.CheckoutSessionSubscriptionDataParams{
			Metadata: map[string]string{"eco_id": user.String(), "plan": string(p)},
		},
	}
	if s.cfg.SuccessURL != "" {
		params.SuccessURL = stripe.String(s.cfg.SuccessURL)
	}
	if s.cfg.CancelURL != "" {
		params.CancelURL = stripe.String(s.cfg.CancelURL)
	}
	params.AddMetadata("eco_id", user.String())
	params.AddMetadata("plan", string(p))
	sess, err := s.cfg.Stripe.CheckoutSessions.New(params)
	if err != nil {
		return "", fmt.Errorf("billing: create checkout session: %w: %w", ErrStripe, err)
	}
	return sess.URL, nil
}

// Portal opens a Stripe customer portal session and returns its URL. Its key is derived
// from the user, the return URL and the UTC minute (portal sessions are short-lived).
func (s *Service) Portal(ctx context.Context, user ecoid.ID, email string) (string, error) {
	if s.cfg.Stripe == nil {
		return "", ErrDisabled
	}
	cust, err := s.Customer(ctx, user, email)
	if err != nil {
		return "", err
	}
	key := idemKey("portal", user.String(), fingerprint(cust, s.cfg.PortalReturnURL, s.now().Format("200601021504")))
	p := &stripe.BillingPortalSessionParams{Params: s.params(ctx, key), Customer: stripe.String(cust)}
	if s.cfg.PortalReturnURL != "" {
		p.ReturnURL = stripe.String(s.cfg.PortalReturnURL)
	}
	sess, err := s.cfg.Stripe.BillingPortalSessions.New(p)
	if err != nil {
		return "", fmt.Errorf("billing: create portal session: %w: %w", ErrStripe, err)
	}
	return sess.URL, nil
}

// Cancel asks Stripe to cancel the user's subscription at the end of the current period
// and records that locally; the plan stays until Stripe deletes the subscription (the
// customer.subscription.deleted webhook). ErrNoStripeSubscription when the user has none.
func (s *Service) Cancel(ctx context.Context, user ecoid.ID) (Subscription, error) {
	return s.setCancelAtPeriodEnd(ctx, user, true)
}

// Resume undoes Cancel while the period has not ended.
func (s *Service) Resume(ctx context.Context, user ecoid.ID) (Subscription, error) {
	return s.setCancelAtPeriodEnd(ctx, user, false)
}

func (s *Service) setCancelAtPeriodEnd(ctx context.Context, user ecoid.ID, cancel bool) (Subscription, error) {
	if s.cfg.Stripe == nil {
		return Subscription{}, ErrDisabled
	}
	row, err := s.store.Subscription(ctx, user)
	if errors.Is(err, ErrNotFound) || (err == nil && (row.StripeSubscriptionID == "" || row.Status == StatusCanceled)) {
		return Subscription{}, ErrNoStripeSubscription
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: cancel: %w", err)
	}
	op := "resume"
	if cancel {
		op = "cancel"
	}
	key := idemKey(op, row.StripeSubscriptionID, strconv.FormatInt(row.UpdatedAt.UnixNano(), 10))
	_, err = s.cfg.Stripe.Subscriptions.Update(row.StripeSubscriptionID, &stripe.SubscriptionParams{
		Params: s.params(ctx, key), CancelAtPeriodEnd: stripe.Bool(cancel),
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: %s subscription: %w: %w", op, ErrStripe, err)
	}
	target := row.StripeSubscriptionID
	row, err = s.store.UpdateSubscription(ctx, user, func(r *Subscription) error {
		if r.StripeSubscriptionID == target {
			r.CancelAtPeriodEnd = cancel
			r.UpdatedAt = s.now()
		}
		return nil
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("billing: %s subscription: %w", op, err)
	}
	return row, nil
}

// unixTime converts Stripe's Unix seconds; 0 stays the zero time.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// NewStripeClient returns a Stripe client for the secret key that talks to baseURL
// ("" means api.stripe.com; stripe-mock's address in tests and demos) through httpClient
// (nil: stripe-go's default), logging nothing. It builds its own backends, so no global
// stripe-go state (stripe.Key, stripe.SetBackend) is read or changed.
func NewStripeClient(key, baseURL string, httpClient *http.Client) *client.API {
	cfg := &stripe.BackendConfig{
		HTTPClient:    httpClient,
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if baseURL != "" {
		cfg.URL = stripe.String(strings.TrimRight(baseURL, "/"))
	}
	api := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
	uploads := stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg)
	connect := stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg)
	return client.New(key, &stripe.Backends{API: api, Connect: connect, Uploads: uploads})
}
