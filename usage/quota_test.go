package usage_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

func fixedLimit(limit int64, hard bool) usage.LimitFunc {
	return func(context.Context, ecoid.ID) (int64, bool, error) { return limit, hard, nil }
}

func userHeader(r *http.Request) (ecoid.ID, bool) {
	id, err := ecoid.Parse(r.Header.Get("X-User"))
	return id, err == nil
}

func TestQuotaHardCapIsExactUnderConcurrency(t *testing.T) {
	counter := memory.NewUsageStore()
	q := usage.NewQuota(counter, fixedLimit(1000, true), usage.QuotaConfig{})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 { // 1,280 attempts for 1,000 places
				res, err := q.Reserve(context.Background(), testUser)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	cur, err := q.Current(context.Background(), testUser)
	if allowed.Load() != 1000 || err != nil || cur.Calls != 1000 || cur.Remaining != 0 {
		t.Fatalf("allowed %d, current %+v %v; want exactly 1000", allowed.Load(), cur, err)
	}
}

func TestQuotaMiddleware(t *testing.T) {
	now := time.Date(2026, 2, 27, 12, 0, 0, 0, time.UTC)
	counter := memory.NewUsageStore()
	q := usage.NewQuota(counter, fixedLimit(3, true), usage.QuotaConfig{Now: func() time.Time { return now }})
	refuseNext := false
	h := q.Middleware(userHeader)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, ok := usage.ReservationFrom(r.Context())
		if !ok || !res.Allowed {
			t.Errorf("no reservation in the context: %+v", res)
		}
		if refuseNext { // a later limit refuses: the call is given back, once
			if err := usage.ReleaseReservation(r.Context()); err != nil {
				t.Error(err)
			}
			_ = usage.ReleaseReservation(r.Context())
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	call := func(user ecoid.ID) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("X-User", string(user))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := range 3 {
		if rec := call(testUser); rec.Code != http.StatusNoContent {
			t.Fatalf("call %d: %d", i+1, rec.Code)
		}
	}
	rec := call(testUser)
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusTooManyRequests || body.Error.Code != "quota_exceeded" ||
		rec.Header().Get("Retry-After") != "129600" || rec.Header().Get("X-Quota-Limit") != "3" {
		t.Fatalf("4th call: %d %s %v", rec.Code, rec.Body.String(), rec.Header())
	}

	other := ecoid.New(ecoid.User)
	refuseNext = true
	for range 5 { // refused later every time: costs no quota
		call(other)
	}
	refuseNext = false
	for i := range 3 {
		if rec := call(other); rec.Code != http.StatusNoContent {
			t.Fatalf("other user's call %d after released ones: %d", i+1, rec.Code)
		}
	}
	if rec := call(other); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("other user's 4th served call: %d", rec.Code)
	}

	now = now.AddDate(0, 0, 2) // March: a new period
	if rec := call(testUser); rec.Code != http.StatusNoContent {
		t.Fatalf("first call of the next period: %d", rec.Code)
	}
	req := httptest.NewRequest("GET", "/x", nil) // no user: passes uncounted
	rec = httptest.NewRecorder()
	q.Middleware(userHeader)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := usage.ReleaseReservation(r.Context()); !errors.Is(err, usage.ErrNoReservation) {
			t.Errorf("ReleaseReservation without one: %v", err)
		}
		w.WriteHeader(http.StatusOK)
	})).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("request without a user: %d", rec.Code)
	}
}

// failingCounter fails every call.
type failingCounter struct{ usage.Counter }

func (failingCounter) AddCall(context.Context, ecoid.ID, time.Time, int64, bool) (int64, bool, error) {
	return 0, false, errors.New("counter down")
}

func (failingCounter) PeriodCalls(context.Context, ecoid.ID, time.Time) (int64, error) {
	return 0, errors.New("counter down")
}

func (failingCounter) RemoveCall(context.Context, ecoid.ID, time.Time) error {
	return errors.New("counter down")
}

func TestQuotaFailuresAnswer503(t *testing.T) {
	badLimit := func(context.Context, ecoid.ID) (int64, bool, error) { return 0, false, errors.New("no plan") }
	for name, q := range map[string]*usage.Quota{
		"limit":   usage.NewQuota(memory.NewUsageStore(), badLimit, usage.QuotaConfig{}),
		"counter": usage.NewQuota(failingCounter{}, fixedLimit(10, true), usage.QuotaConfig{}),
	} {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("X-User", string(testUser))
		rec := httptest.NewRecorder()
		q.Middleware(userHeader)(http.NotFoundHandler()).ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s failure: %d", name, rec.Code)
		}
		if _, err := q.Current(context.Background(), testUser); err == nil {
			t.Fatalf("%s failure: Current returned no error", name)
		}
	}
	retrier := usage.RetryReleases(failingCounter{}, usage.ReleaseRetryConfig{MaxPending: 1})
	q := usage.NewQuota(retrier, fixedLimit(10, true), usage.QuotaConfig{})
	if err := q.Release(context.Background(), usage.Reservation{Allowed: true, User: testUser}); err != nil {
		t.Fatalf("Release through a failing counter: %v, want it queued for retry", err)
	}
	if err := q.Release(context.Background(), usage.Reservation{Allowed: true, User: testUser}); err == nil {
		t.Fatal("Release beyond a full retry queue returned no error")
	}
	if st := retrier.Stats(); st.Pending != 1 || st.Lost != 1 {
		t.Fatalf("retrier stats %+v", st)
	}
	if err := q.Release(context.Background(), usage.Reservation{}); err != nil {
		t.Fatalf("Release of a refused reservation: %v", err)
	}
}

func TestQuotaSoftAndUnlimited(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	soft := usage.NewQuota(memory.NewUsageStore(), fixedLimit(2, false), usage.QuotaConfig{Now: func() time.Time { return now }})
	for i := range 4 {
		res, err := soft.Reserve(ctx, testUser)
		if err != nil || !res.Allowed || res.Count != int64(i+1) {
			t.Fatalf("soft call %d: %+v %v", i+1, res, err)
		}
	}
	cur, _ := soft.Current(ctx, testUser)
	want := usage.Current{PeriodStart: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Calls: 4, Quota: 2, Remaining: 0}
	if cur != want {
		t.Fatalf("Current = %+v, want %+v", cur, want)
	}
	unlimited := usage.NewQuota(memory.NewUsageStore(), fixedLimit(-1, true), usage.QuotaConfig{})
	res, err := unlimited.Reserve(ctx, testUser)
	if err != nil || !res.Allowed || res.Remaining() != -1 {
		t.Fatalf("unlimited: %+v %v", res, err)
	}
}

func TestPeriodsAndDays(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	local := time.Date(2026, 2, 28, 22, 0, 0, 0, est) // already March 1st in UTC
	if got := usage.PeriodStart(local); !got.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || got.Location() != time.UTC {
		t.Fatalf("PeriodStart = %v", got)
	}
	if got := usage.PeriodEnd(local); !got.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("PeriodEnd = %v", got)
	}
	if got := usage.DayStart(local); !got.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("DayStart = %v", got)
	}
	if !usage.IsError(400) || usage.IsError(399) {
		t.Fatal("IsError boundary")
	}
}

func BenchmarkQuotaReserveMemory(b *testing.B) {
	q := usage.NewQuota(memory.NewUsageStore(), fixedLimit(-1, false), usage.QuotaConfig{})
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		if _, err := q.Reserve(ctx, testUser); err != nil {
			b.Fatal(err)
		}
	}
}
