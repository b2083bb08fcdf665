package billing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

// Objects as Stripe sends them (the fields billing reads).
func checkoutSession(user ecoid.ID, plan, cust, sub string) map[string]any {
	return map[string]any{
		"id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
		"client_reference_id": user.String(), "customer": cust, "subscription": sub,
		"customer_details": map[string]any{"email": "buyer@example.com"},
		"metadata":         map[string]any{"eco_id": user.String(), "plan": plan},
		"payment_status":   "paid",
	}
}

func subscriptionObj(user ecoid.ID, id, cust, status, price string, cancel bool, start time.Time) map[string]any {
	md := map[string]any{}
	if user != "" {
		md["eco_id"] = user.String()
	}
	return map[string]any{
		"id": id, "object": "subscription", "customer": cust, "status": status,
		"cancel_at_period_end": cancel, "current_period_start": start.Unix(), "current_period_end": start.AddDate(0, 1, 0).Unix(),
		"metadata": md,
		"items": map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "si_1", "object": "subscription_item", "price": map[string]any{"id": price, "object": "price"}},
		}},
	}
}

func invoiceObj(id, cust, sub string) map[string]any {
	return map[string]any{"id": id, "object": "invoice", "customer": cust, "subscription": sub}
}

var evtSeq atomic.Int64

func evtID() string { return fmt.Sprintf("evt_test_%d", evtSeq.Add(1)) }

// proUser is a user whom a checkout made Pro on Stripe subscription sub_1 / customer
// cus_1: the session links them, the subscription's event (its price) sets the plan.
func proUser(t *testing.T, e *env) ecoid.ID {
	t.Helper()
	u := e.user(t)
	at := e.clock.Now().Add(-time.Minute)
	status, body := e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", at, checkoutSession(u, "pro", "cus_1", "sub_1")))
	if status != 200 {
		t.Fatalf("checkout.session.completed: %d %v", status, body)
	}
	sub := subscriptionObj(u, "sub_1", "cus_1", "active", proPrice, false, billing.PeriodStart(at))
	if status, body = e.deliver(t, stripeEvent(evtID(), "customer.subscription.created", at, sub)); status != 200 {
		t.Fatalf("customer.subscription.created: %d %v", status, body)
	}
	if e.row(t, u).Plan != billing.Pro {
		t.Fatal("proUser is not on Pro")
	}
	return u
}

// stripeMockEnv is a service on stripe-mock whose Pro price is the one stripe-mock's
// subscriptions carry, so a checkout's subscription read back from Stripe bills Pro.
func stripeMockEnv(t *testing.T, opts ...func(*billing.Config)) *env {
	t.Helper()
	return stripeMockEnvWith(t, memory.NewBillingStore(), opts...)
}

func stripeMockEnvWith(t *testing.T, store billing.Store, opts ...func(*billing.Config)) *env {
	t.Helper()
	return newEnvWith(t, store, true, append([]func(*billing.Config){func(c *billing.Config) {
		c.Prices.Plans = map[string]billing.PlanID{mockPrice(t): billing.Pro}
	}}, opts...)...)
}

func TestWebhookCheckoutActivatesPlan(t *testing.T) {
	e := stripeMockEnv(t)
	u := e.user(t)
	if l, hard, _ := e.svc.QuotaFor(context.Background(), u); l != 1000 || !hard {
		t.Fatal("not on Free before checkout")
	}
	status, body := e.deliver(t, stripeEvent("evt_co", "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_9", "sub_9")))
	if status != 200 || body["received"] != true || body["duplicate"] != false {
		t.Fatalf("status %d %v", status, body)
	}
	if got := e.rec.sent("GET", "/v1/subscriptions/sub_9"); len(got) != 1 {
		t.Fatalf("the subscription was read %d times, want once", len(got))
	}
	row := e.row(t, u)
	if row.Plan != billing.Pro || row.Status != billing.StatusActive || row.StripeCustomerID != "cus_9" || row.StripeSubscriptionID != "sub_9" || !row.StateAt.Equal(testNow) {
		t.Fatalf("row after checkout: %+v", row)
	}
	if l, hard, _ := e.svc.QuotaFor(context.Background(), u); l != 100_000 || hard {
		t.Fatalf("QuotaFor after checkout = %d, %v", l, hard)
	}
}

func TestWebhookCheckoutForUserWithoutRow(t *testing.T) {
	e := stripeMockEnv(t)
	u := ecoid.New(ecoid.User)
	cs := checkoutSession(u, "pro", "cus_2", "sub_2")
	cs["client_reference_id"] = "" // found through metadata instead
	if status, _ := e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, cs)); status != 200 {
		t.Fatal(status)
	}
	if row := e.row(t, u); row.Plan != billing.Pro || row.Email != "buyer@example.com" {
		t.Fatalf("row = %+v", row)
	}
}

// TestWebhookCheckoutWithoutStripeLinksOnly: without a Stripe client the session cannot
// be checked against what Stripe bills, so it only links the user to the customer and
// subscription; the subscription's own event sets the plan from its price.
func TestWebhookCheckoutWithoutStripeLinksOnly(t *testing.T) {
	e := newEnv(t, false)
	u := e.user(t)
	e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(u, "enterprise", "cus_l", "sub_l")))
	if row := e.row(t, u); row.Plan != billing.Free || row.StripeCustomerID != "cus_l" || row.StripeSubscriptionID != "sub_l" {
		t.Fatalf("row after checkout = %+v", row)
	}
	sub := subscriptionObj("", "sub_l", "cus_l", "active", proPrice, false, billing.PeriodStart(testNow))
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.created", testNow, sub))
	if row := e.row(t, u); row.Plan != billing.Pro {
		t.Fatalf("row after the subscription event = %+v", row)
	}
}

// TestWebhookPlanFollowsThePrice is issue 10.7: metadata is free text (anyone with
// dashboard access writes it), so plan=enterprise in it upgrades nothing; the price does.
func TestWebhookPlanFollowsThePrice(t *testing.T) { onEveryStore(t, testWebhookPlanFollowsThePrice) }

func testWebhookPlanFollowsThePrice(t *testing.T, newStore func(*testing.T) billing.Store) {
	e := stripeMockEnvWith(t, newStore(t), func(c *billing.Config) { c.Prices.Plans["price_yearly_pro"] = billing.Pro })
	start := billing.PeriodStart(testNow)
	upd := func(u ecoid.ID, sub, price string, md map[string]any, at time.Time) {
		t.Helper()
		obj := subscriptionObj(u, sub, "cus_"+string(u[8:]), "active", price, false, start)
		for k, v := range md {
			obj["metadata"].(map[string]any)[k] = v
		}
		if status, body := e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", at, obj)); status != 200 {
			t.Fatalf("%d %v", status, body)
		}
	}
	enterprise := map[string]any{"plan": "enterprise"}
	var obj map[string]any

	// An unknown price with plan=enterprise: nothing.
	a := e.user(t)
	upd(a, "sub_a", "price_somebody_elses", enterprise, testNow)
	if row := e.row(t, a); row.Plan != billing.Free || row.StripeSubscriptionID != "" {
		t.Fatalf("an unknown price changed the row: %+v", row)
	}
	if l, hard, _ := e.svc.QuotaFor(context.Background(), a); l != 1000 || !hard {
		t.Fatalf("quota after plan=enterprise metadata: %d %v", l, hard)
	}
	// The Pro price with plan=enterprise: Pro, not Enterprise. So does a further Pro price.
	upd(a, "sub_a", proPrice, enterprise, testNow.Add(time.Second))
	if row := e.row(t, a); row.Plan != billing.Pro {
		t.Fatalf("Pro price: %+v", row)
	}
	b := e.user(t)
	upd(b, "sub_b", "price_yearly_pro", nil, testNow)
	if row := e.row(t, b); row.Plan != billing.Pro {
		t.Fatalf("Prices.Plans price: %+v", row)
	}
	// The current subscription moved to a price we do not sell: back on Free.
	upd(a, "sub_a", "price_somebody_elses", enterprise, testNow.Add(2*time.Second))
	if row := e.row(t, a); row.Plan != billing.Free {
		t.Fatalf("the current subscription on an unknown price kept %s", row.Plan)
	}
	// Another subscription on an unknown price does not touch a Pro user's row.
	upd(b, "sub_other_product", "price_somebody_elses", nil, testNow.Add(time.Second))
	if row := e.row(t, b); row.Plan != billing.Pro || row.StripeSubscriptionID != "sub_b" {
		t.Fatalf("an unrelated subscription replaced the current one: %+v", row)
	}
	// Enterprise comes only from SetEnterprise; a price mapped to it is ignored.
	e2 := stripeMockEnvWith(t, newStore(t), func(c *billing.Config) { c.Prices.Plans["price_ent"] = billing.Enterprise })
	c := e2.user(t)
	obj = subscriptionObj(c, "sub_c", "cus_c", "active", "price_ent", false, start)
	e2.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow, obj))
	if row := e2.row(t, c); row.Plan != billing.Free {
		t.Fatalf("a price mapped to enterprise granted %s", row.Plan)
	}
	// An Enterprise customer (SetEnterprise) keeps Enterprise whatever price Stripe bills;
	// the status still follows Stripe.
	ent := e.user(t)
	if _, err := e.svc.SetEnterprise(context.Background(), ent, "", billing.Terms{QuotaCalls: 5_000_000, PriceCents: 90_000}); err != nil {
		t.Fatal(err)
	}
	upd(ent, "sub_ent", proPrice, nil, testNow.Add(time.Minute))
	obj = subscriptionObj(ent, "sub_ent", "cus_"+string(ent[8:]), "unpaid", "price_custom", false, start)
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(2*time.Minute), obj))
	if row := e.row(t, ent); row.Plan != billing.Enterprise || row.Status != billing.StatusUnpaid {
		t.Fatalf("Enterprise row after Stripe events: %+v", row)
	}
	// Checkout: the session's metadata says enterprise, the subscription Stripe bills is
	// Pro (stripe-mock's price): Pro.
	d := e.user(t)
	e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(d, "enterprise", "cus_d", "sub_d")))
	if row := e.row(t, d); row.Plan != billing.Pro {
		t.Fatalf("checkout: %+v", row)
	}
	// A checkout whose subscription bills a price we do not sell: nothing.
	f := newEnvWith(t, newStore(t), true) // stripe-mock's price is not configured here
	g := f.user(t)
	f.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(g, "enterprise", "cus_g", "sub_g")))
	if row := f.row(t, g); row.Plan != billing.Free || row.StripeSubscriptionID != "" {
		t.Fatalf("checkout of an unknown price: %+v", row)
	}
}

// TestWebhookCheckoutUnpaid is issue 10.8: a session with payment_status unpaid (a
// delayed payment method) does not activate anything; its async success, or the
// subscription becoming active, does; its async failure leaves the user on Free.
func TestWebhookCheckoutUnpaid(t *testing.T) { onEveryStore(t, testWebhookCheckoutUnpaid) }

func testWebhookCheckoutUnpaid(t *testing.T, newStore func(*testing.T) billing.Store) {
	e := stripeMockEnvWith(t, newStore(t))
	unpaid := func(u ecoid.ID, sub string) map[string]any {
		cs := checkoutSession(u, "pro", "cus_"+sub, sub)
		cs["payment_status"] = "unpaid"
		return cs
	}
	// Unpaid, then paid later.
	a := e.user(t)
	e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, unpaid(a, "sub_a")))
	if row := e.row(t, a); row.Plan != billing.Free {
		t.Fatalf("an unpaid checkout activated %s", row.Plan)
	}
	if l, hard, _ := e.svc.QuotaFor(context.Background(), a); l != 1000 || !hard {
		t.Fatal("quota of an unpaid checkout is not Free's")
	}
	paid := unpaid(a, "sub_a")
	paid["payment_status"] = "paid"
	e.deliver(t, stripeEvent(evtID(), "checkout.session.async_payment_succeeded", testNow.Add(time.Hour), paid))
	if row := e.row(t, a); row.Plan != billing.Pro || row.StripeSubscriptionID != "sub_a" {
		t.Fatalf("after async_payment_succeeded: %+v", row)
	}
	// Unpaid, then failed.
	b := e.user(t)
	e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, unpaid(b, "sub_b")))
	e.deliver(t, stripeEvent(evtID(), "checkout.session.async_payment_failed", testNow.Add(time.Hour), unpaid(b, "sub_b")))
	if row := e.row(t, b); row.Plan != billing.Free {
		t.Fatalf("after async_payment_failed: %+v", row)
	}
	// Unpaid, then the subscription becomes active.
	c := e.user(t)
	e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, unpaid(c, "sub_c")))
	obj := subscriptionObj(c, "sub_c", "cus_sub_c", "active", proPrice, false, billing.PeriodStart(testNow))
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(time.Hour), obj))
	if row := e.row(t, c); row.Plan != billing.Pro {
		t.Fatalf("after the subscription became active: %+v", row)
	}
	// A failure reported for the subscription a user is on takes the plan's terms away.
	e.deliver(t, stripeEvent(evtID(), "checkout.session.async_payment_failed", testNow.Add(2*time.Hour), unpaid(c, "sub_c")))
	if l, hard, _ := e.svc.QuotaFor(context.Background(), c); l != 1000 || !hard {
		t.Fatalf("quota after the payment failed: %d %v", l, hard)
	}
	// None of the unpaid sessions read Stripe.
	if got := e.rec.sent("GET", "/v1/subscriptions/"); len(got) != 1 {
		t.Fatalf("%d subscription reads, want 1 (the paid one)", len(got))
	}
}

func TestWebhookCheckoutWithoutUserIsIgnored(t *testing.T) {
	e := stripeMockEnv(t)
	u := e.user(t)
	noUser := checkoutSession(u, "pro", "cus_3", "sub_3")
	noUser["client_reference_id"], noUser["metadata"] = "someone", map[string]any{}
	noSub := checkoutSession(u, "pro", "cus_3", "")
	delete(noSub, "subscription")
	for _, obj := range []map[string]any{noUser, noSub} {
		if status, _ := e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, obj)); status != 200 {
			t.Fatal(status)
		}
	}
	if row := e.row(t, u); row.Plan != billing.Free {
		t.Fatalf("an unusable checkout changed the plan: %+v", row)
	}
}

func TestWebhookDuplicateIsProcessedOnce(t *testing.T) {
	e := newEnv(t, false)
	u := e.user(t)
	payload := stripeEvent("evt_dup", "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_1", "sub_1"))
	if status, _ := e.deliver(t, payload); status != 200 {
		t.Fatal(status)
	}
	// Undo locally; a redelivery must not apply the event again.
	e.setRow(t, u, func(s *billing.Subscription) { s.Plan = billing.Free })
	status, body := e.deliver(t, payload)
	if status != 200 || body["duplicate"] != true {
		t.Fatalf("redelivery: %d %v", status, body)
	}
	if e.row(t, u).Plan != billing.Free {
		t.Fatal("a duplicate event was applied again")
	}
}

func TestWebhookSignatureChecks(t *testing.T) {
	e := newEnv(t, false)
	u := e.user(t)
	payload := stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_1", "sub_1"))
	now := e.clock.Now()
	cases := map[string]string{
		"missing":         "",
		"garbage":         "not a signature",
		"no timestamp":    "v1=" + strings.Repeat("ab", 32),
		"bad timestamp":   "t=abc,v1=00",
		"wrong secret":    signed(payload, "whsec_other", now),
		"stale":           signed(payload, whSecret, now.Add(-301*time.Second)),
		"future":          signed(payload, whSecret, now.Add(301*time.Second)),
		"other body":      signed([]byte(`{"id":"evt_x"}`), whSecret, now),
		"no v1 signature": fmt.Sprintf("t=%d,v0=abc", now.Unix()),
	}
	for name, sig := range cases {
		status, body := e.post(t, payload, sig)
		if status != 400 || errCode(body) != "invalid_signature" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	if e.row(t, u).Plan != billing.Free {
		t.Fatal("an unverified event was applied")
	}
	// Inside the tolerance either way it verifies.
	for _, d := range []time.Duration{-299 * time.Second, 299 * time.Second} {
		p := stripeEvent(evtID(), "invoice.created", testNow, map[string]any{"id": "in_1", "object": "invoice"})
		if status, body := e.post(t, p, signed(p, whSecret, now.Add(d))); status != 200 {
			t.Errorf("signature %v from now: %d %v", d, status, body)
		}
	}
	// Several v1 signatures (a rolled secret): any one that matches is enough.
	p := stripeEvent(evtID(), "invoice.created", testNow, map[string]any{"id": "in_2", "object": "invoice"})
	good := signed(p, whSecret, now)
	rolled := good + ",v1=" + strings.Repeat("00", 32)
	if status, _ := e.post(t, p, rolled); status != 200 {
		t.Errorf("rolled secret header: %d", status)
	}
	// An empty endpoint secret verifies nothing.
	if _, err := e.svc.HandleWebhook(context.Background(), p, good, ""); !errors.Is(err, billing.ErrInvalidSignature) {
		t.Errorf("empty secret: %v", err)
	}
}

// TestWebhookReplayThroughSecondTimestamp is the attack of issue 10.3: a month-old
// signed delivery replayed with a fresh t= in front of its own. The signature is valid for
// the old timestamp only, so the header must be refused whatever order the two t= have.
func TestWebhookReplayThroughSecondTimestamp(t *testing.T) {
	onEveryStore(t, testWebhookReplayThroughSecondTimestamp)
}

func testWebhookReplayThroughSecondTimestamp(t *testing.T, newStore func(*testing.T) billing.Store) {
	e := newEnvWith(t, newStore(t), false)
	u := e.user(t)
	payload := stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_1", "sub_1"))
	old := e.clock.Now().AddDate(0, -1, 0)
	oldSig := signed(payload, whSecret, old) // "t=<old>,v1=<sig>"
	_, v1, _ := strings.Cut(oldSig, ",")
	fresh := fmt.Sprintf("t=%d", e.clock.Now().Unix())
	for name, header := range map[string]string{
		"fresh first":  fresh + "," + oldSig,
		"fresh last":   oldSig + "," + fresh,
		"fresh middle": fmt.Sprintf("t=%d,%s,%s", old.Unix(), fresh, v1),
		"same twice":   fresh + "," + fresh + "," + v1,
		"old alone":    oldSig,
	} {
		status, body := e.post(t, payload, header)
		if status != 400 || errCode(body) != "invalid_signature" {
			t.Errorf("%s (%s): %d %v", name, header, status, body)
		}
	}
	if e.row(t, u).Plan != billing.Free {
		t.Fatal("a replayed event was applied")
	}
}

// TestWebhookHeaderIsParsedStrictly: every element is key=value, one canonical
// timestamp, well-formed v1 signatures; other schemes are ignored.
func TestWebhookHeaderIsParsedStrictly(t *testing.T) {
	e := newEnv(t, false)
	p := stripeEvent(evtID(), "invoice.created", testNow, map[string]any{"id": "in_s", "object": "invoice"})
	good := signed(p, whSecret, e.clock.Now())
	ts, v1, _ := strings.Cut(good, ",")
	sec := strings.TrimPrefix(ts, "t=")
	for name, header := range map[string]string{
		"leading zero":      "t=0" + sec + "," + v1,
		"plus sign":         "t=+" + sec + "," + v1,
		"spaces":            "t= " + sec + "," + v1,
		"empty element":     good + ",",
		"no equals":         good + ",v1",
		"empty key":         good + ",=x",
		"short v1":          ts + "," + v1[:len(v1)-2],
		"non-hex v1":        ts + ",v1=" + strings.Repeat("zz", 32),
		"v1 before t twice": v1 + "," + ts + "," + ts,
		"too many v1":       ts + strings.Repeat(",v1="+strings.Repeat("00", 32), 8) + "," + v1,
	} {
		status, body := e.post(t, p, header)
		if status != 400 || errCode(body) != "invalid_signature" {
			t.Errorf("%s (%s): %d %v", name, header, status, body)
		}
	}
	for name, header := range map[string]string{
		"v1 first":     v1 + "," + ts,
		"other scheme": good + ",v0=abc,v2=whatever",
	} {
		if status, body := e.post(t, p, header); status != 200 {
			t.Errorf("%s (%s): %d %v", name, header, status, body)
		}
	}
}

func TestWebhookBadBodies(t *testing.T) {
	e := newEnv(t, false)
	for name, payload := range map[string][]byte{
		"not json":        []byte("{nope"),
		"no id":           []byte(`{"object":"event","type":"checkout.session.completed","data":{"object":{}}}`),
		"no data":         []byte(`{"id":"evt_nd","object":"event","type":"checkout.session.completed"}`),
		"wrong object":    []byte(`{"id":"evt_wo","object":"event","type":"customer.subscription.updated","data":{"object":{"status":42}}}`),
		"wrong checkout":  []byte(`{"id":"evt_wc","object":"event","type":"checkout.session.completed","data":{"object":{"metadata":"x"}}}`),
		"wrong invoice":   []byte(`{"id":"evt_wi","object":"event","type":"invoice.payment_failed","data":{"object":{"subscription":7}}}`),
		"data not object": []byte(`{"id":"evt_dn","object":"event","type":"invoice.payment_failed","data":{"object":[]}}`),
	} {
		status, body := e.deliver(t, payload)
		if status != 400 || errCode(body) != "invalid_event" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	if status, _ := e.post(t, big, signed(big, whSecret, e.clock.Now())); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", status)
	}
	req, _ := http.NewRequest("POST", "/", errReader{})
	w := newResponse()
	e.svc.WebhookHandler(whSecret).ServeHTTP(w, req)
	if w.status != 400 {
		t.Errorf("unreadable body: %d", w.status)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestWebhookUnhandledTypeAnswers200(t *testing.T) {
	e := newEnv(t, false)
	p := stripeEvent("evt_unh", "customer.created", testNow, map[string]any{"id": "cus_1", "object": "customer"})
	res, err := e.svc.HandleWebhook(context.Background(), p, signed(p, whSecret, testNow), whSecret)
	if err != nil || res.Handled || res.EventID != "evt_unh" || res.Type != "customer.created" {
		t.Fatalf("HandleWebhook = %+v, %v", res, err)
	}
	if status, _ := e.deliver(t, p); status != 200 {
		t.Fatal(status)
	}
}

func TestWebhookSubscriptionUpdated(t *testing.T) {
	e := newEnv(t, false)
	u := proUser(t, e)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	obj := subscriptionObj(u, "sub_1", "cus_1", "past_due", proPrice, true, start)
	if status, _ := e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow, obj)); status != 200 {
		t.Fatal(status)
	}
	row := e.row(t, u)
	if row.Status != billing.StatusPastDue || !row.CancelAtPeriodEnd || !row.CurrentPeriodStart.Equal(start) ||
		!row.CurrentPeriodEnd.Equal(start.AddDate(0, 1, 0)) || row.Plan != billing.Pro {
		t.Fatalf("row = %+v", row)
	}
	// Found by customer when the metadata has no eco_id; the plan comes from the price.
	obj = subscriptionObj("", "sub_1", "cus_1", "active", freePrice, false, start)
	if status, _ := e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(time.Second), obj)); status != 200 {
		t.Fatal(status)
	}
	if row := e.row(t, u); row.Plan != billing.Free || row.Status != billing.StatusActive {
		t.Fatalf("row = %+v", row)
	}
	// Back on the Pro price; then an unknown price, whatever the metadata says, is Free.
	obj = subscriptionObj(u, "sub_1", "cus_1", "trialing", proPrice, false, start)
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(2*time.Second), obj))
	if row := e.row(t, u); row.Plan != billing.Pro || row.Status != billing.StatusTrialing {
		t.Fatalf("row = %+v", row)
	}
	obj = subscriptionObj(u, "sub_1", "cus_1", "active", "price_other", false, start)
	obj["metadata"] = map[string]any{"eco_id": u.String(), "plan": "pro"}
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(3*time.Second), obj))
	if row := e.row(t, u); row.Plan != billing.Free {
		t.Fatalf("plan from metadata: %+v", row)
	}
	// An event for a customer nobody has is acknowledged and ignored.
	obj = subscriptionObj("", "sub_x", "cus_unknown", "active", proPrice, false, start)
	if status, _ := e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow, obj)); status != 200 {
		t.Fatal(status)
	}
}

func TestWebhookOutOfOrderNeverGoesBack(t *testing.T) {
	e := newEnv(t, false)
	u := proUser(t, e)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	newer := subscriptionObj(u, "sub_1", "cus_1", "active", proPrice, true, start)
	older := subscriptionObj(u, "sub_1", "cus_1", "past_due", proPrice, false, start)
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(10*time.Second), newer))
	status, _ := e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", testNow.Add(5*time.Second), older))
	if row := e.row(t, u); status != 200 || row.Status != billing.StatusActive || !row.CancelAtPeriodEnd {
		t.Fatalf("an older update overwrote a newer one: %d %+v", status, row)
	}
	// A delete and a late update of the same subscription in the same second: stays Free.
	at := testNow.Add(20 * time.Second)
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.deleted", at, subscriptionObj(u, "sub_1", "cus_1", "canceled", proPrice, false, start)))
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", at, subscriptionObj(u, "sub_1", "cus_1", "active", proPrice, false, start)))
	if row := e.row(t, u); row.Plan != billing.Free {
		t.Fatalf("a late update revived a deleted subscription: %+v", row)
	}
	// A late checkout.session.completed older than the deletion changes nothing.
	e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_1", "sub_1")))
	if row := e.row(t, u); row.Plan != billing.Free {
		t.Fatalf("a stale checkout reactivated the plan: %+v", row)
	}
	// A later, new subscription is adopted.
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", at.Add(time.Minute), subscriptionObj(u, "sub_2", "cus_1", "active", proPrice, false, start)))
	if row := e.row(t, u); row.Plan != billing.Pro || row.StripeSubscriptionID != "sub_2" {
		t.Fatalf("a new subscription was not adopted: %+v", row)
	}
	// But an ended other subscription does not replace the current one, nor does its
	// deletion end the current one.
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.updated", at.Add(2*time.Minute), subscriptionObj(u, "sub_old", "cus_1", "canceled", proPrice, false, start)))
	e.deliver(t, stripeEvent(evtID(), "customer.subscription.deleted", at.Add(3*time.Minute), subscriptionObj(u, "sub_old", "cus_1", "canceled", proPrice, false, start)))
	if row := e.row(t, u); row.Plan != billing.Pro || row.StripeSubscriptionID != "sub_2" || row.Status != billing.StatusActive {
		t.Fatalf("another subscription's end changed the current one: %+v", row)
	}
}

func TestWebhookDeletedGoesBackToFree(t *testing.T) {
	e := newEnv(t, false)
	u := proUser(t, e)
	obj := subscriptionObj(u, "sub_1", "cus_1", "canceled", proPrice, false, testNow)
	if status, _ := e.deliver(t, stripeEvent(evtID(), "customer.subscription.deleted", testNow, obj)); status != 200 {
		t.Fatal(status)
	}
	row := e.row(t, u)
	if row.Plan != billing.Free || row.Status != billing.StatusActive || row.StripeSubscriptionID != "" || row.StripeCustomerID != "cus_1" {
		t.Fatalf("row after delete = %+v", row)
	}
	if l, hard, _ := e.svc.QuotaFor(context.Background(), u); l != 1000 || !hard {
		t.Fatalf("QuotaFor after delete = %d %v", l, hard)
	}
}

func TestWebhookInvoices(t *testing.T) {
	e := newEnv(t, false)
	u := proUser(t, e)
	failed := stripeEvent(evtID(), "invoice.payment_failed", testNow, invoiceObj("in_1", "cus_1", "sub_1"))
	if status, _ := e.deliver(t, failed); status != 200 || e.row(t, u).Status != billing.StatusPastDue {
		t.Fatalf("after payment_failed: %d %+v", status, e.row(t, u))
	}
	if l, _, _ := e.svc.QuotaFor(context.Background(), u); l != 100_000 {
		t.Fatal("past_due lost the plan while Stripe retries")
	}
	paid := stripeEvent(evtID(), "invoice.payment_succeeded", testNow.Add(time.Minute), invoiceObj("in_1", "cus_1", "sub_1"))
	if status, _ := e.deliver(t, paid); status != 200 || e.row(t, u).Status != billing.StatusActive {
		t.Fatalf("after payment_succeeded: %d %+v", status, e.row(t, u))
	}
	// An older failure delivered late does not undo the payment.
	lateFail := stripeEvent(evtID(), "invoice.payment_failed", testNow.Add(30*time.Second), invoiceObj("in_0", "cus_1", "sub_1"))
	e.deliver(t, lateFail)
	if e.row(t, u).Status != billing.StatusActive {
		t.Fatal("a late failure moved the subscription back")
	}
	// Invoices of another subscription, without one, or of unknown customers change nothing.
	for _, obj := range []map[string]any{invoiceObj("in_2", "cus_1", "sub_other"), invoiceObj("in_3", "cus_1", ""), invoiceObj("in_4", "cus_nobody", "sub_9")} {
		if status, _ := e.deliver(t, stripeEvent(evtID(), "invoice.payment_failed", testNow.Add(time.Hour), obj)); status != 200 {
			t.Fatal(status)
		}
	}
	if e.row(t, u).Status != billing.StatusActive {
		t.Fatal("an unrelated invoice changed the subscription")
	}
	// A payment on an active subscription changes nothing either.
	e.deliver(t, stripeEvent(evtID(), "invoice.payment_succeeded", testNow.Add(2*time.Hour), invoiceObj("in_5", "cus_1", "sub_1")))
	if e.row(t, u).Status != billing.StatusActive {
		t.Fatal("status changed")
	}
}

// failingStore fails ProcessEvent's work while fail is set, like a database error
// inside the transaction.
type failingStore struct {
	*memory.BillingStore
	fail atomic.Bool
}

func (f *failingStore) ProcessEvent(ctx context.Context, e billing.Event, fn func(context.Context, billing.SubscriptionTx) error) (bool, error) {
	return f.BillingStore.ProcessEvent(ctx, e, func(ctx context.Context, tx billing.SubscriptionTx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if f.fail.Load() {
			return errors.New("database went away")
		}
		return nil
	})
}

func TestWebhookHandlerErrorLeavesEventUnprocessed(t *testing.T) {
	fs := &failingStore{BillingStore: memory.NewBillingStore()}
	e := newEnvWith(t, fs, false)
	u := e.user(t)
	payload := stripeEvent("evt_retry", "customer.subscription.created", testNow,
		subscriptionObj(u, "sub_1", "cus_1", "active", proPrice, false, billing.PeriodStart(testNow)))
	fs.fail.Store(true)
	status, body := e.deliver(t, payload)
	if status != 500 || errCode(body) != "webhook_failed" || strings.Contains(fmt.Sprint(body), "database") {
		t.Fatalf("failing handler: %d %v", status, body)
	}
	if e.row(t, u).Plan != billing.Free {
		t.Fatal("a failed event left its changes")
	}
	fs.fail.Store(false)
	status, body = e.deliver(t, payload) // Stripe's retry
	if status != 200 || body["duplicate"] != false || e.row(t, u).Plan != billing.Pro {
		t.Fatalf("retry: %d %v %+v", status, body, e.row(t, u))
	}
}

func TestWebhookCheckoutForUnknownUserIsIgnored(t *testing.T) {
	known := ecoid.New(ecoid.User)
	e := stripeMockEnv(t, func(c *billing.Config) {
		c.UserExists = func(_ context.Context, u ecoid.ID) (bool, error) { return u == known, nil }
	})
	stranger := ecoid.New(ecoid.User)
	if status, _ := e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(stranger, "pro", "cus_s", "sub_s"))); status != 200 {
		t.Fatalf("event about an unknown user: %d, want 200 (so Stripe stops retrying)", status)
	}
	if _, err := e.store.Subscription(context.Background(), stranger); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("an unknown user got a subscription row: %v", err)
	}
	if status, _ := e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(known, "pro", "cus_k", "sub_k"))); status != 200 {
		t.Fatal(status)
	}
	if row := e.row(t, known); row.Plan != billing.Pro {
		t.Fatalf("a known user's checkout did not activate Pro: %+v", row)
	}
}

func TestWebhookUserLookupFailureIsRetried(t *testing.T) {
	e := newEnv(t, false, func(c *billing.Config) {
		c.UserExists = func(context.Context, ecoid.ID) (bool, error) { return false, errors.New("auth store down") }
	})
	u := e.user(t)
	payload := stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(u, "pro", "cus_r", "sub_r"))
	if status, _ := e.deliver(t, payload); status != http.StatusInternalServerError {
		t.Fatalf("lookup failure answered %d, want 500 so Stripe retries", status)
	}
	if row := e.row(t, u); row.Plan != billing.Free {
		t.Fatalf("a failed event changed the plan: %+v", row)
	}
}

// A checkout naming a Stripe customer that is another user's is answered 200 and changes
// nothing: it can never be applied, and a 500 would be retried by Stripe for days.
func TestWebhookCheckoutWithAnotherUsersCustomer(t *testing.T) {
	onEveryStore(t, func(t *testing.T, newStore func(*testing.T) billing.Store) {
		e := stripeMockEnvWith(t, newStore(t))
		first, second := e.user(t), e.user(t)
		if status, body := e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(first, "pro", "cus_shared", "sub_a"))); status != 200 {
			t.Fatalf("first checkout: %d %v", status, body)
		}
		status, body := e.deliver(t, stripeEvent(evtID(), "checkout.session.completed", testNow, checkoutSession(second, "pro", "cus_shared", "sub_b")))
		if status != 200 || body["received"] != true {
			t.Fatalf("checkout with the first user's customer: %d %v, want 200", status, body)
		}
		if row := e.row(t, second); row.Plan != billing.Free || row.StripeCustomerID != "" {
			t.Fatalf("the second user took the customer: %+v", row)
		}
		if row := e.row(t, first); row.Plan != billing.Pro || row.StripeCustomerID != "cus_shared" {
			t.Fatalf("the first user's row changed: %+v", row)
		}
	})
}
