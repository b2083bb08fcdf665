package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
	"github.com/stripe/stripe-go/v76/webhook"
)

// request is one call billing sent to stripe-mock, as the recorder saw it on the wire.
type request struct {
	Method, Path, IdempotencyKey string
	Form                         url.Values
}

// recorder is an http.RoundTripper in front of the real stripe-mock that remembers what
// was sent. It does not answer anything itself.
type recorder struct {
	mu   sync.Mutex
	reqs []request
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var form url.Values
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		form, _ = url.ParseQuery(string(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, request{Method: req.Method, Path: req.URL.Path, IdempotencyKey: req.Header.Get("Idempotency-Key"), Form: form})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// sent returns the requests to path (a prefix), in order.
func (r *recorder) sent(method, pathPrefix string) []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []request
	for _, q := range r.reqs {
		if q.Method == method && strings.HasPrefix(q.Path, pathPrefix) {
			out = append(out, q)
		}
	}
	return out
}

// clock is the shared settable test clock.
type clock = storagetest.Clock

// fakeUsage is the in-test UsageSource: per-user calls per period.
type fakeUsage struct {
	mu    sync.Mutex
	calls map[ecoid.ID]map[time.Time]int64
	total int64
	top   []billing.UserCalls
	err   error
}

func newUsage() *fakeUsage { return &fakeUsage{calls: map[ecoid.ID]map[time.Time]int64{}} }

func (u *fakeUsage) set(user ecoid.ID, period time.Time, n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.calls[user] == nil {
		u.calls[user] = map[time.Time]int64{}
	}
	u.calls[user][billing.PeriodStart(period)] = n
}

func (u *fakeUsage) PeriodCalls(_ context.Context, user ecoid.ID, period time.Time) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[user][billing.PeriodStart(period)], u.err
}

func (u *fakeUsage) TotalCalls(_ context.Context, from, to time.Time) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	// The fake reports total scaled by the window in days, so "today" and "this period"
	// differ in a checkable way.
	days := int64(to.Sub(from) / (24 * time.Hour))
	return u.total * (days + 1), u.err
}

func (u *fakeUsage) TopUsers(_ context.Context, _, _ time.Time, n int) ([]billing.UserCalls, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.top[:min(n, len(u.top))], u.err
}

// env is one service under test with everything it talks to.
type env struct {
	svc   *billing.Service
	store billing.Store
	rec   *recorder
	clock *clock
	usage *fakeUsage
	cfg   billing.Config
}

// now is the default test time: 2026-03-10 12:00 UTC.
var testNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const (
	proPrice  = "price_pro_test"
	freePrice = "price_free_test"
	whSecret  = "whsec_test_secret"
)

// newEnv builds a service over a memory store. withStripe connects it to stripe-mock
// (skipping the test when NEXUS_TEST_STRIPE is unset).
func newEnv(t testing.TB, withStripe bool, opts ...func(*billing.Config)) *env {
	t.Helper()
	return newEnvWith(t, memory.NewBillingStore(), withStripe, opts...)
}

func newEnvWith(t testing.TB, store billing.Store, withStripe bool, opts ...func(*billing.Config)) *env {
	t.Helper()
	e := &env{store: store, clock: storagetest.NewClock(testNow), usage: newUsage()}
	e.cfg = billing.Config{
		Prices:     billing.PriceIDs{Free: freePrice, Pro: proPrice},
		SuccessURL: "https://app.example.com/billing/success", CancelURL: "https://app.example.com/billing",
		PortalReturnURL: "https://app.example.com/account",
		Usage:           e.usage, Now: e.clock.Now,
	}
	if withStripe {
		base := testenv.Stripe(t)
		e.rec = &recorder{next: http.DefaultTransport}
		e.cfg.Stripe = billing.NewStripeClient("sk_test_nexus", base, &http.Client{Transport: e.rec, Timeout: 30 * time.Second})
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.svc = billing.NewService(store, e.cfg)
	return e
}

// mockPrice returns the price ID of the subscriptions stripe-mock answers with (read from
// stripe-mock itself, so the tests follow its fixtures).
func mockPrice(t testing.TB) string {
	t.Helper()
	base := testenv.Stripe(t)
	mockPriceOnce.Do(func() {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/subscriptions/sub_probe", nil)
		req.SetBasicAuth("sk_test_nexus", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		var sub struct {
			Items struct {
				Data []struct {
					Price struct{ ID string } `json:"price"`
				} `json:"data"`
			} `json:"items"`
		}
		if json.NewDecoder(resp.Body).Decode(&sub) == nil && len(sub.Items.Data) > 0 {
			mockPriceID = sub.Items.Data[0].Price.ID
		}
	})
	if mockPriceID == "" {
		t.Fatal("stripe-mock's subscriptions carry no price")
	}
	return mockPriceID
}

var (
	mockPriceOnce sync.Once
	mockPriceID   string
)

// onEveryStore runs test on a memory store and on a Postgres one (skipped without
// NEXUS_TEST_POSTGRES).
func onEveryStore(t *testing.T, test func(*testing.T, func(*testing.T) billing.Store)) {
	t.Run("memory", func(t *testing.T) {
		test(t, func(*testing.T) billing.Store { return memory.NewBillingStore() })
	})
	t.Run("postgres", func(t *testing.T) {
		test(t, func(t *testing.T) billing.Store { return postgres.NewBillingStore(pgtest.New(t)) })
	})
}

// user registers a user with a Free row.
func (e *env) user(t testing.TB) ecoid.ID {
	t.Helper()
	u := ecoid.New(ecoid.User)
	if _, err := e.svc.EnsureFreeSubscription(context.Background(), u, strings.ToLower(string(u[8:14]))+"@example.com"); err != nil {
		t.Fatal(err)
	}
	return u
}

// setRow changes a user's row directly in the store.
func (e *env) setRow(t testing.TB, user ecoid.ID, fn func(*billing.Subscription)) billing.Subscription {
	t.Helper()
	row, err := e.store.UpdateSubscription(context.Background(), user, func(s *billing.Subscription) error { fn(s); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func (e *env) row(t testing.TB, user ecoid.ID) billing.Subscription {
	t.Helper()
	row, err := e.store.Subscription(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// stripeEvent builds the JSON of a Stripe event.
func stripeEvent(id, typ string, created time.Time, object any) []byte {
	obj, err := json.Marshal(object)
	if err != nil {
		panic(err)
	}
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2023-10-16","type":%q,"created":%d,"livemode":false,"pending_webhooks":1,"data":{"object":%s}}`,
		id, typ, created.Unix(), obj))
}

// signed returns the Stripe-Signature header for payload at t.
func signed(payload []byte, secret string, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: t}).Header
}

// deliver posts a signed event to the service's webhook handler at the clock's time.
func (e *env) deliver(t testing.TB, payload []byte) (int, map[string]any) {
	t.Helper()
	return e.post(t, payload, signed(payload, whSecret, e.clock.Now()))
}

func (e *env) post(t testing.TB, payload []byte, sig string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "/api/webhooks/stripe", bytes.NewReader(payload))
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	w := newResponse()
	e.svc.WebhookHandler(whSecret).ServeHTTP(w, req)
	var body map[string]any
	_ = json.Unmarshal(w.body.Bytes(), &body)
	return w.status, body
}

// response is a minimal http.ResponseWriter.
type response struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newResponse() *response { return &response{header: http.Header{}} }

func (r *response) Header() http.Header { return r.header }
func (r *response) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}
func (r *response) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}
