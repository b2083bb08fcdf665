package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/usage"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

const (
	testWebhookSecret = "whsec_server_test"
	testCronSecret    = "cron-secret-for-tests"
)

type subscriptionAnswer struct {
	ID                string `json:"id"`
	Plan              string `json:"plan"`
	Status            string `json:"status"`
	CancelAtPeriodEnd bool   `json:"cancel_at_period_end"`
	Quota             int64  `json:"quota"`
	HardCap           bool   `json:"hard_cap"`
	PriceCents        int64  `json:"price_cents"`
	BillingEnabled    bool   `json:"billing_enabled"`
}

// billingEnv is authEnv plus billing against stripe-mock (skipping without it). Its Pro
// price is the one stripe-mock's subscriptions carry, since a paid checkout's plan is
// the price of the subscription billing reads back from Stripe.
func billingEnv(t *testing.T, extra ...string) map[string]string {
	t.Helper()
	return authEnv(append([]string{
		"STRIPE_SECRET_KEY", "sk_test_server", "STRIPE_API_BASE", testenv.Stripe(t),
		"STRIPE_WEBHOOK_SECRET", testWebhookSecret, "STRIPE_PRICE_PRO", stripeMockPrice(t),
		"NEXUS_CRON_SECRET", testCronSecret, "NEXUS_ADMINS", "boss@example.com",
	}, extra...)...)
}

// stripeMockPrice is the price ID of the subscriptions stripe-mock answers with.
func stripeMockPrice(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, testenv.Stripe(t)+"/v1/subscriptions/sub_probe", nil)
	req.SetBasicAuth("sk_test_server", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sub stripe.Subscription
	if err := json.NewDecoder(resp.Body).Decode(&sub); err != nil || sub.Items == nil || len(sub.Items.Data) == 0 || sub.Items.Data[0].Price == nil {
		t.Fatalf("stripe-mock's subscription has no price: %v", err)
	}
	return sub.Items.Data[0].Price.ID
}

// webhook posts a Stripe event to the server, signed at its creation time (which must
// be within 5 minutes of the server's billing clock).
func (s *testServer) stripeEvent(typ string, created time.Time, object string) *http.Response {
	s.t.Helper()
	payload := fmt.Sprintf(`{"id":"evt_%s","object":"event","api_version":"2023-10-16","type":%q,"created":%d,"data":{"object":%s}}`,
		ecoid.New(ecoid.Event)[8:], typ, created.Unix(), object)
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(payload), Secret: testWebhookSecret, Timestamp: created}).Header
	return s.do("POST", "/api/webhooks/stripe", payload, http.Header{"Stripe-Signature": {sig}}, nil)
}

func TestBillingDisabledWithoutStripeKey(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_CRON_SECRET", testCronSecret, "NEXUS_ADMINS", "boss@example.com"))
	user := s.register("ann@example.com")
	var sub subscriptionAnswer
	if resp := s.do("GET", "/api/subscriptions/current", "", bearer(user.AccessToken), &sub); resp.StatusCode != 200 ||
		sub.Plan != "free" || sub.Quota != 1000 || !sub.HardCap || sub.BillingEnabled || !strings.HasPrefix(sub.ID, "eco_sub_") {
		t.Fatalf("current: %d %+v", resp.StatusCode, sub)
	}
	for _, path := range []string{"/api/subscriptions/checkout", "/api/subscriptions/cancel", "/api/subscriptions/portal"} {
		var e errorAnswer
		if resp := s.do("POST", path, `{"plan":"pro"}`, bearer(user.AccessToken), &e); resp.StatusCode != 503 || e.Error.Code != "billing_disabled" {
			t.Errorf("%s: %d %+v", path, resp.StatusCode, e)
		}
	}
	var e errorAnswer
	if resp := s.do("POST", "/api/webhooks/stripe", `{}`, nil, &e); resp.StatusCode != 503 || e.Error.Code != "billing_disabled" {
		t.Errorf("webhook: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/cron/process-overage", "", bearer(testCronSecret), &e); resp.StatusCode != 503 {
		t.Errorf("cron: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/cron/process-overage", "", nil, &e); resp.StatusCode != 401 {
		t.Errorf("cron without token: %d", resp.StatusCode)
	}
	boss := s.verifiedUser("boss@example.com")
	var ov map[string]any
	if resp := s.do("GET", "/api/admin/analytics/overview", "", bearer(boss.AccessToken), &ov); resp.StatusCode != 200 {
		t.Fatalf("overview without Stripe: %d %v", resp.StatusCode, ov)
	}
	if byPlan := ov["users_by_plan"].(map[string]any); byPlan["free"] != 2.0 {
		t.Fatalf("users by plan %v", byPlan)
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	s := startServer(t, billingEnv(t))
	user := s.register("ann@example.com")
	tok := bearer(user.AccessToken)
	var e errorAnswer
	if resp := s.do("POST", "/api/subscriptions/checkout", `{"plan":"pro"}`, nil, &e); resp.StatusCode != 401 {
		t.Fatalf("anonymous checkout: %d", resp.StatusCode)
	}
	for body, code := range map[string]string{`{"plan":"gold"}`: "invalid_plan", `{"plan":"free"}`: "invalid_plan", `{}`: "invalid_plan", `{"plan":`: "invalid_json", `{"plan":7}`: "invalid_json"} {
		if resp := s.do("POST", "/api/subscriptions/checkout", body, tok, &e); resp.StatusCode != 400 || e.Error.Code != code {
			t.Errorf("checkout %s: %d %+v", body, resp.StatusCode, e)
		}
	}
	var out map[string]string
	if resp := s.do("POST", "/api/subscriptions/checkout", `{"plan":"pro"}`, tok, &out); resp.StatusCode != 200 || out["url"] == "" {
		t.Fatalf("checkout: %d %v", resp.StatusCode, out)
	}
	if resp := s.do("POST", "/api/subscriptions/portal", "", tok, &out); resp.StatusCode != 200 || out["url"] == "" {
		t.Fatalf("portal: %d %v", resp.StatusCode, out)
	}
	if resp := s.do("POST", "/api/subscriptions/cancel", "", tok, &e); resp.StatusCode != 409 || e.Error.Code != "no_subscription" {
		t.Fatalf("cancel on Free: %d %+v", resp.StatusCode, e)
	}

	// Stripe reports the completed checkout: the user is on Pro.
	now := time.Now()
	uid := user.User.ID
	resp := s.stripeEvent("checkout.session.completed", now.Add(-time.Minute), fmt.Sprintf(
		`{"id":"cs_1","object":"checkout.session","payment_status":"paid","client_reference_id":%q,"customer":"cus_srv","subscription":"sub_srv","metadata":{"eco_id":%q,"plan":"pro"}}`, uid, uid))
	if resp.StatusCode != 200 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	var sub subscriptionAnswer
	if resp := s.do("GET", "/api/subscriptions/current", "", tok, &sub); resp.StatusCode != 200 || sub.Plan != "pro" || sub.Quota != 100_000 || sub.HardCap || sub.PriceCents != 2900 || !sub.BillingEnabled {
		t.Fatalf("current after checkout: %+v", sub)
	}
	if resp := s.do("POST", "/api/subscriptions/checkout", `{"plan":"pro"}`, tok, &e); resp.StatusCode != 409 || e.Error.Code != "already_subscribed" {
		t.Fatalf("second checkout on Pro: %d %+v", resp.StatusCode, e)
	}
	// A signed event about a user this server does not have changes nothing.
	stranger := ecoid.New(ecoid.User)
	resp = s.stripeEvent("checkout.session.completed", now, fmt.Sprintf(
		`{"id":"cs_2","object":"checkout.session","payment_status":"paid","client_reference_id":%q,"customer":"cus_x","subscription":"sub_x","metadata":{"eco_id":%q,"plan":"pro"}}`, stranger, stranger))
	if resp.StatusCode != 200 {
		t.Fatalf("webhook about a stranger: %d", resp.StatusCode)
	}
	boss := s.verifiedUser("boss@example.com")
	var ov struct {
		UsersByPlan map[string]int `json:"users_by_plan"`
	}
	if s.do("GET", "/api/admin/analytics/overview", "", bearer(boss.AccessToken), &ov); ov.UsersByPlan["pro"] != 1 {
		t.Fatalf("users by plan after a stranger's checkout: %v, want one Pro user", ov.UsersByPlan)
	}
	if resp := s.do("POST", "/api/subscriptions/cancel", "", tok, &sub); resp.StatusCode != 200 || !sub.CancelAtPeriodEnd || sub.Plan != "pro" {
		t.Fatalf("cancel: %d %+v", resp.StatusCode, sub)
	}
	// A bad signature is refused; a deletion puts the user back on Free.
	if resp := s.do("POST", "/api/webhooks/stripe", `{"id":"evt_x"}`, http.Header{"Stripe-Signature": {"t=1,v1=00"}}, &e); resp.StatusCode != 400 || e.Error.Code != "invalid_signature" {
		t.Fatalf("bad signature: %d %+v", resp.StatusCode, e)
	}
	resp = s.stripeEvent("customer.subscription.deleted", now, fmt.Sprintf(
		`{"id":"sub_srv","object":"subscription","customer":"cus_srv","status":"canceled","metadata":{"eco_id":%q}}`, uid))
	if resp.StatusCode != 200 {
		t.Fatalf("deleted webhook: %d", resp.StatusCode)
	}
	if s.do("GET", "/api/subscriptions/current", "", tok, &sub); sub.Plan != "free" || sub.Quota != 1000 {
		t.Fatalf("current after deletion: %+v", sub)
	}
}

func TestCronProcessOverage(t *testing.T) {
	s := startServer(t, billingEnv(t))
	var e errorAnswer
	for _, h := range []http.Header{nil, bearer("wrong"), {"Authorization": {testCronSecret}}, bearer("")} {
		if resp := s.do("POST", "/api/cron/process-overage", "", h, &e); resp.StatusCode != 401 {
			t.Errorf("cron with %v: %d", h, resp.StatusCode)
		}
	}
	var res map[string]int
	if resp := s.do("POST", "/api/cron/process-overage", "", bearer(testCronSecret), &res); resp.StatusCode != 200 {
		t.Fatalf("cron: %d %v", resp.StatusCode, res)
	}
	if _, ok := res["processed"]; !ok || res["charged"] != 0 {
		t.Fatalf("cron answer %v", res)
	}
	if resp := s.do("GET", "/api/cron/process-overage", "", bearer(testCronSecret), &e); resp.StatusCode != 405 {
		t.Fatalf("GET cron: %d", resp.StatusCode)
	}
}

func TestCronRefusesEveryoneWithoutSecret(t *testing.T) {
	s := startServer(t, billingEnv(t, "NEXUS_CRON_SECRET", ""))
	if resp := s.do("POST", "/api/cron/process-overage", "", bearer(""), nil); resp.StatusCode != 401 {
		t.Fatalf("cron with an empty secret configured: %d", resp.StatusCode)
	}
}

func TestAdminAnalytics(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_ADMINS", "boss@example.com"))
	boss := s.verifiedUser("boss@example.com")
	user := s.register("zed@example.com")
	s.register("amy@example.com")
	var e errorAnswer
	if resp := s.do("GET", "/api/admin/analytics/overview", "", bearer(user.AccessToken), &e); resp.StatusCode != 403 {
		t.Fatalf("non-admin overview: %d", resp.StatusCode)
	}
	if resp := s.do("GET", "/api/admin/analytics/users", "", bearer(user.AccessToken), &e); resp.StatusCode != 403 {
		t.Fatalf("non-admin users: %d", resp.StatusCode)
	}
	if resp := s.do("GET", "/api/admin/analytics/users", "", nil, &e); resp.StatusCode != 401 {
		t.Fatalf("anonymous users: %d", resp.StatusCode)
	}
	admin := bearer(boss.AccessToken)
	var ov map[string]any
	if resp := s.do("GET", "/api/admin/analytics/overview", "", admin, &ov); resp.StatusCode != 200 || ov["mrr_cents"] != 0.0 ||
		ov["period_start"] != time.Now().UTC().Format("2006-01")+"-01" {
		t.Fatalf("overview: %d %v", resp.StatusCode, ov)
	}
	var page struct {
		Users []struct {
			ID    string `json:"id"`
			Email string `json:"email"`
			Plan  string `json:"plan"`
		} `json:"users"`
		Page, Limit int
		Total       int64 `json:"total"`
	}
	if resp := s.do("GET", "/api/admin/analytics/users", "", admin, &page); resp.StatusCode != 200 || page.Total != 3 || page.Page != 1 || page.Limit != 20 || len(page.Users) != 3 {
		t.Fatalf("users: %d %+v", resp.StatusCode, page)
	}
	if resp := s.do("GET", "/api/admin/analytics/users?page=2&limit=1&sort=email&plan=free", "", admin, &page); resp.StatusCode != 200 ||
		page.Total != 3 || len(page.Users) != 1 || page.Users[0].Email != "boss@example.com" || page.Users[0].Plan != "free" {
		t.Fatalf("users page 2 by email: %d %+v", resp.StatusCode, page)
	}
	if s.do("GET", "/api/admin/analytics/users?plan=pro", "", admin, &page); page.Total != 0 || len(page.Users) != 0 || page.Users == nil {
		t.Fatalf("pro users: %+v", page)
	}
	if resp := s.do("GET", "/api/admin/analytics/users?page=9223372036854775807&limit=100", "", admin, &page); resp.StatusCode != 200 || len(page.Users) != 0 || page.Total != 3 {
		t.Fatalf("last possible page: %d %+v", resp.StatusCode, page)
	}
	for _, q := range []string{"page=0", "page=-1", "page=x", "limit=0", "limit=101", "limit=1e3", "sort=password", "sort=email;drop", "plan=gold"} {
		if resp := s.do("GET", "/api/admin/analytics/users?"+q, "", admin, &e); resp.StatusCode != 400 || e.Error.Code != "invalid_query" {
			t.Errorf("users?%s: %d %+v", q, resp.StatusCode, e)
		}
	}
}

func TestBillingWithPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	email := strings.ToLower(string(ecoid.New(ecoid.User)[8:])) + "@example.com"
	bossEmail := "boss-" + email
	s := startServer(t, authEnv("DATABASE_URL", dsn, "NEXUS_ADMINS", bossEmail))
	user := s.register(email)
	boss := s.verifiedUser(bossEmail)
	var sub subscriptionAnswer
	if resp := s.do("GET", "/api/subscriptions/current", "", bearer(user.AccessToken), &sub); resp.StatusCode != 200 || sub.Plan != "free" || sub.ID == "" {
		t.Fatalf("current: %d %+v", resp.StatusCode, sub)
	}
	var page struct {
		Total int64 `json:"total"`
	}
	if resp := s.do("GET", "/api/admin/analytics/users?sort=-created_at", "", bearer(boss.AccessToken), &page); resp.StatusCode != 200 || page.Total < 2 {
		t.Fatalf("users: %d %+v", resp.StatusCode, page)
	}
}

func TestBillingConfig(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string {
		return map[string]string{"STRIPE_SECRET_KEY": "sk_test_1", "NEXUS_APP_URL": "https://app.example.com/", "STRIPE_PRICE_PRO": "price_9"}[k]
	})
	if err != nil || cfg.Billing.StripeKey != "sk_test_1" || cfg.Billing.AppURL != "https://app.example.com" || cfg.Billing.PricePro != "price_9" {
		t.Fatalf("config = %+v, %v", cfg.Billing, err)
	}
	if cfg, _ := parseConfig(nil, func(string) string { return "" }); cfg.Billing.AppURL != "http://127.0.0.1:8080" || cfg.Billing.StripeKey != "" {
		t.Fatalf("defaults = %+v", cfg.Billing)
	}
	if _, err := parseConfig(nil, func(k string) string {
		return map[string]string{"NEXUS_APP_URL": "javascript:alert(1)"}[k]
	}); err == nil {
		t.Fatal("a non-http NEXUS_APP_URL was accepted")
	}
}

func TestStripeFailureIsBadGateway(t *testing.T) {
	s := startServer(t, billingEnv(t, "STRIPE_SECRET_KEY", "not_a_key")) // stripe-mock answers 401
	user := s.register("ann@example.com")
	var e errorAnswer
	for _, path := range []string{"/api/subscriptions/checkout", "/api/subscriptions/portal"} {
		if resp := s.do("POST", path, `{"plan":"pro"}`, bearer(user.AccessToken), &e); resp.StatusCode != 502 || e.Error.Code != "stripe_unavailable" {
			t.Fatalf("%s: %d %+v", path, resp.StatusCode, e)
		}
	}
	if strings.Contains(s.logs.String(), "not_a_key") || !strings.Contains(s.logs.String(), `"stripe_status":401`) {
		t.Fatalf("the log has the Stripe key or lacks the status: %s", s.logs.String())
	}
}

// TestBillingUsesUsageCounts runs the whole loop on one server: checkout makes a user Pro
// (last month, on billing's clock), the usage routes and quota see the Pro plan, the cron
// invoices last month's calls over the quota from the usage counter, and the admin
// overview reads the usage log.
func TestBillingUsesUsageCounts(t *testing.T) {
	var mu sync.Mutex
	clock := billing.PeriodStart(time.Now()).AddDate(0, -1, 1) // the 2nd of last month; zero: now
	billingNow := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if clock.IsZero() {
			return time.Now()
		}
		return clock
	}
	a, s := startAppWith(t, billingEnv(t), func(c *config) { c.Billing.Now = billingNow })
	ctx := context.Background()
	boss := s.verifiedUser("boss@example.com")
	user := s.register("ann@example.com")
	uid := ecoid.MustParse(user.User.ID)
	if resp := s.stripeEvent("checkout.session.completed", billingNow(), fmt.Sprintf(
		`{"id":"cs_2","object":"checkout.session","payment_status":"paid","client_reference_id":%q,"customer":"cus_loop","subscription":"sub_loop","metadata":{"plan":"pro"}}`, uid)); resp.StatusCode != 200 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	mu.Lock()
	clock = time.Time{}
	mu.Unlock()
	var cur usageCurrentJSON
	if s.do("GET", "/api/usage/current", "", bearer(user.AccessToken), &cur); cur.Plan != "pro" || cur.Quota != 100_000 {
		t.Fatalf("usage/current after checkout: %+v", cur)
	}
	last := billing.PeriodStart(time.Now()).AddDate(0, -1, 0)
	for range 100_011 { // 11 calls over: 1.1 cents, invoiced as 2
		if _, _, err := a.usageStore.AddCall(ctx, uid, last, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	var res map[string]int
	if resp := s.do("POST", "/api/cron/process-overage", "", bearer(testCronSecret), &res); resp.StatusCode != 200 || res["processed"] != 1 || res["charged"] != 1 {
		t.Fatalf("cron: %d %v", resp.StatusCode, res)
	}
	if s.do("POST", "/api/cron/process-overage", "", bearer(testCronSecret), &res); res["charged"] != 0 || res["skipped"] != 1 {
		t.Fatalf("second cron run: %v", res)
	}
	// The month can be named: last month's again is skipped, a month not over is 409,
	// anything else 400.
	lastMonth := "/api/cron/process-overage?period=" + last.Format("2006-01")
	if resp := s.do("POST", lastMonth, "", bearer(testCronSecret), &res); resp.StatusCode != 200 || res["charged"] != 0 || res["skipped"] != 1 {
		t.Fatalf("cron for %s: %d %v", last.Format("2006-01"), resp.StatusCode, res)
	}
	var e errorAnswer
	thisMonth := "/api/cron/process-overage?period=" + time.Now().UTC().Format("2006-01")
	if resp := s.do("POST", thisMonth, "", bearer(testCronSecret), &e); resp.StatusCode != 409 || e.Error.Code != "period_open" {
		t.Fatalf("cron for this month: %d %+v", resp.StatusCode, e)
	}
	for _, bad := range []string{"bad", "2026-13", "2026-1", "", "2026-01-01"} {
		if resp := s.do("POST", "/api/cron/process-overage?period="+bad, "", bearer(testCronSecret), &e); resp.StatusCode != 400 || e.Error.Code != "invalid_period" {
			t.Fatalf("cron for %q: %d %+v", bad, resp.StatusCode, e)
		}
	}
	now := time.Now()
	batch := []usage.Record{
		{ID: ecoid.New(ecoid.Usage), KeyID: ecoid.New(ecoid.APIKey), UserID: uid, Endpoint: "/api/v1/ping", Method: "GET", Status: 200, Time: now},
		{ID: ecoid.New(ecoid.Usage), KeyID: ecoid.New(ecoid.APIKey), UserID: uid, Endpoint: "/api/v1/ping", Method: "GET", Status: 200, Time: now},
	}
	if err := a.usageStore.WriteBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var ov struct {
		MRR       int64 `json:"mrr_cents"`
		Overage   int64 `json:"overage_revenue_cents"`
		Today     int64 `json:"calls_today"`
		ThisMonth int64 `json:"calls_this_period"`
		Top       []struct {
			UserID string `json:"user_id"`
			Email  string `json:"email"`
			Plan   string `json:"plan"`
			Calls  int64  `json:"calls"`
		} `json:"top_users"`
	}
	if resp := s.do("GET", "/api/admin/analytics/overview", "", bearer(boss.AccessToken), &ov); resp.StatusCode != 200 ||
		ov.MRR != 2900 || ov.Overage != 2 || ov.Today != 2 || ov.ThisMonth != 2 || len(ov.Top) != 1 ||
		ov.Top[0].UserID != user.User.ID || ov.Top[0].Email != "ann@example.com" || ov.Top[0].Plan != "pro" || ov.Top[0].Calls != 2 {
		t.Fatalf("overview: %d %+v", resp.StatusCode, ov)
	}
}

// TestCronBearerScheme: the auth scheme is case-insensitive (RFC 9110 section 11.1), as on
// the user and API-key routes; the secret itself is compared exactly.
func TestCronBearerScheme(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_CRON_SECRET", testCronSecret))
	for auth, want := range map[string]int{
		"Bearer " + testCronSecret:                  503, // admitted; billing is off here
		"bearer " + testCronSecret:                  503,
		"BEARER " + testCronSecret:                  503,
		"Bearer " + strings.ToUpper(testCronSecret): 401,
		"Bearer " + testCronSecret + "x":            401,
		"Basic " + testCronSecret:                   401,
		testCronSecret:                              401,
	} {
		if resp := s.do("POST", "/api/cron/process-overage", "", http.Header{"Authorization": {auth}}, nil); resp.StatusCode != want {
			t.Errorf("Authorization %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
}

// TestCheckoutWithoutProPrice: with Stripe on but STRIPE_PRICE_PRO unset, Pro is not for
// sale here: 503 billing_disabled naming the variable, not a 500.
func TestCheckoutWithoutProPrice(t *testing.T) {
	s := startServer(t, billingEnv(t, "STRIPE_PRICE_PRO", ""))
	user := s.register("ann@example.com")
	var e errorAnswer
	if resp := s.do("POST", "/api/subscriptions/checkout", `{"plan":"pro"}`, bearer(user.AccessToken), &e); resp.StatusCode != 503 ||
		e.Error.Code != "billing_disabled" || !strings.Contains(e.Error.Message, "STRIPE_PRICE_PRO") {
		t.Fatalf("checkout without a Pro price: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/subscriptions/checkout", `{"plan":"gold"}`, bearer(user.AccessToken), &e); resp.StatusCode != 400 || e.Error.Code != "invalid_plan" {
		t.Fatalf("unknown plan: %d %+v", resp.StatusCode, e)
	}
}

// TestBillingConfigPrices: STRIPE_PRICES maps more price IDs to free or pro; anything
// else refuses to start.
func TestBillingConfigPrices(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string {
		return map[string]string{"STRIPE_PRICES": " price_y=pro, price_f=free ,"}[k]
	})
	if err != nil || len(cfg.Billing.Prices) != 2 || cfg.Billing.Prices["price_y"] != billing.Pro || cfg.Billing.Prices["price_f"] != billing.Free {
		t.Fatalf("prices = %v, %v", cfg.Billing.Prices, err)
	}
	for _, bad := range []string{"price_e=enterprise", "price_x", "=pro", "price_g=gold"} {
		if _, err := parseConfig(nil, func(k string) string { return map[string]string{"STRIPE_PRICES": bad}[k] }); err == nil {
			t.Errorf("STRIPE_PRICES=%q was accepted", bad)
		}
	}
}

// TestBillingAttacksThroughServer replays issue 10's billing findings against the server:
// a month-old signature behind a fresh t=, an unpaid checkout, plan=enterprise in free-text
// metadata, and calls over the quota on a subscription deleted before the cron (the
// billing tests do it with 5,000,000 calls; 110,000 keep this one quick).
func TestBillingAttacksThroughServer(t *testing.T) {
	var mu sync.Mutex
	clock := billing.PeriodStart(time.Now()).AddDate(0, -1, 1)
	billingNow := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if clock.IsZero() {
			return time.Now()
		}
		return clock
	}
	a, s := startAppWith(t, billingEnv(t), func(c *config) { c.Billing.Now = billingNow })
	plan := func(u sessionAnswer) string {
		t.Helper()
		var sub subscriptionAnswer
		s.do("GET", "/api/subscriptions/current", "", bearer(u.AccessToken), &sub)
		return sub.Plan
	}

	// Replay: a signature of a month ago behind a fresh timestamp.
	ann := s.register("ann@example.com")
	payload := fmt.Sprintf(`{"id":"evt_replay","object":"event","type":"checkout.session.completed","created":%d,"data":{"object":{"id":"cs_r","object":"checkout.session","payment_status":"paid","client_reference_id":%q,"customer":"cus_r","subscription":"sub_r"}}}`,
		billingNow().Unix(), ann.User.ID)
	old := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(payload), Secret: testWebhookSecret, Timestamp: billingNow().AddDate(0, -1, 0)}).Header
	var e errorAnswer
	header := fmt.Sprintf("t=%d,%s", billingNow().Unix(), old)
	if resp := s.do("POST", "/api/webhooks/stripe", payload, http.Header{"Stripe-Signature": {header}}, &e); resp.StatusCode != 400 || e.Error.Code != "invalid_signature" {
		t.Fatalf("replay through a second t=: %d %+v", resp.StatusCode, e)
	}
	// Unpaid checkout.
	s.stripeEvent("checkout.session.completed", billingNow(), fmt.Sprintf(
		`{"id":"cs_u","object":"checkout.session","payment_status":"unpaid","client_reference_id":%q,"customer":"cus_u","subscription":"sub_u"}`, ann.User.ID))
	// A subscription on a price this server does not sell, plan=enterprise in metadata.
	s.stripeEvent("customer.subscription.updated", billingNow(), fmt.Sprintf(
		`{"id":"sub_m","object":"subscription","customer":"cus_m","status":"active","metadata":{"eco_id":%q,"plan":"enterprise"},"items":{"object":"list","data":[{"id":"si_m","object":"subscription_item","price":{"id":"price_not_ours","object":"price"}}]}}`, ann.User.ID))
	if p := plan(ann); p != "free" {
		t.Fatalf("after replay, unpaid checkout and metadata: %s", p)
	}

	// Pro paid on the 2nd, 110,000 calls, deleted on the 20th, cron next month.
	bob := s.register("bob@example.com")
	bid := ecoid.MustParse(bob.User.ID)
	s.stripeEvent("checkout.session.completed", billingNow(), fmt.Sprintf(
		`{"id":"cs_b","object":"checkout.session","payment_status":"paid","client_reference_id":%q,"customer":"cus_bob","subscription":"sub_bob"}`, bid))
	if p := plan(bob); p != "pro" {
		t.Fatalf("paid checkout: %s", p)
	}
	last := billing.PeriodStart(billingNow())
	for range 110_000 {
		if _, _, err := a.usageStore.AddCall(context.Background(), bid, last, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	clock = clock.AddDate(0, 0, 18)
	mu.Unlock()
	s.stripeEvent("customer.subscription.deleted", billingNow(), fmt.Sprintf(
		`{"id":"sub_bob","object":"subscription","customer":"cus_bob","status":"canceled","metadata":{"eco_id":%q}}`, bid))
	if p := plan(bob); p != "free" {
		t.Fatalf("after deletion: %s", p)
	}
	mu.Lock()
	clock = time.Time{}
	mu.Unlock()
	var res map[string]int
	if resp := s.do("POST", "/api/cron/process-overage", "", bearer(testCronSecret), &res); resp.StatusCode != 200 || res["charged"] != 1 {
		t.Fatalf("cron after the deletion: %d %v", resp.StatusCode, res)
	}
	sub, err := a.billing.Current(context.Background(), bid)
	if err != nil {
		t.Fatal(err)
	}
	overview, err := a.billing.Overview(context.Background())
	if err != nil || overview.OverageRevenueCents != 1_000 {
		t.Fatalf("overage revenue %d cents (%v), want 1,000 for 10,000 calls over", overview.OverageRevenueCents, err)
	}
	if s.do("POST", "/api/cron/process-overage", "", bearer(testCronSecret), &res); res["charged"] != 0 {
		t.Fatalf("second cron charged again: %v (%s)", res, sub.ID)
	}
}
