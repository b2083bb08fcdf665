package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/usage"
)

// startApp runs the server's handler over an app the test can reach into (to set plans,
// track records, flush the tracker). args are server flags.
func startApp(t *testing.T, env map[string]string, args ...string) (*services, *testServer) {
	t.Helper()
	return startAppWith(t, env, nil, args...)
}

// startAppWith is startApp with a change to the parsed configuration (a clock, say).
func startAppWith(t *testing.T, env map[string]string, change func(*config), args ...string) (*services, *testServer) {
	t.Helper()
	mailDir, ok := env["NEXUS_MAIL_DIR"]
	if !ok {
		mailDir = t.TempDir()
	}
	cfg, err := parseConfig(append([]string{"-addr", "127.0.0.1:0"}, args...), func(k string) string {
		if k == "NEXUS_MAIL_DIR" {
			return mailDir
		}
		return env[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(&cfg)
	}
	logs := &syncBuffer{}
	a, err := newServices(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler())
	stop := func() error {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := a.shutdown(ctx)
		a.close()
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return a, &testServer{t: t, base: srv.URL, logs: logs, stop: stop, mailDir: mailDir}
}

type usageCurrentJSON struct {
	Plan        string `json:"plan"`
	PeriodStart string `json:"period_start"`
	PeriodEnd   string `json:"period_end"`
	Calls       int64  `json:"calls"`
	Quota       int64  `json:"quota"`
	Remaining   int64  `json:"remaining"`
}

func TestUsageRoutesNeedAUser(t *testing.T) {
	s := startServer(t, authEnv())
	for _, path := range []string{"/api/usage/current", "/api/usage/history", "/api/usage/endpoints", "/api/usage/overage"} {
		var e errorAnswer
		if resp := s.do("GET", path, "", nil, &e); resp.StatusCode != http.StatusUnauthorized || e.Error.Code == "" {
			t.Fatalf("%s without a user: %d %+v", path, resp.StatusCode, e)
		}
		if resp := s.do("POST", path, "", nil, &e); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
}

func TestUsageCurrentHistoryEndpoints(t *testing.T) {
	a, s := startApp(t, authEnv())
	reg := s.register("ann@example.com")
	user := ecoid.MustParse(reg.User.ID)
	h := bearer(reg.AccessToken)

	var cur usageCurrentJSON
	if resp := s.do("GET", "/api/usage/current", "", h, &cur); resp.StatusCode != 200 {
		t.Fatalf("current: %d", resp.StatusCode)
	}
	now := time.Now().UTC()
	start := usage.PeriodStart(now)
	if cur.Plan != "free" || cur.Calls != 0 || cur.Quota != 1000 || cur.Remaining != 1000 ||
		cur.PeriodStart != start.Format(time.DateOnly) || cur.PeriodEnd != usage.PeriodEnd(now).AddDate(0, 0, -1).Format(time.DateOnly) {
		t.Fatalf("current of a new user: %+v", cur)
	}
	for range 3 {
		if res, err := a.quota.Reserve(context.Background(), user); err != nil || !res.Allowed {
			t.Fatal(res, err)
		}
	}
	s.do("GET", "/api/usage/current", "", h, &cur)
	if cur.Calls != 3 || cur.Remaining != 997 {
		t.Fatalf("current after 3 calls: %+v", cur)
	}

	today := usage.DayStart(now)
	track := func(at time.Time, method, endpoint string, status int, latency time.Duration) {
		a.tracker.Track(usage.Record{UserID: user, KeyID: ecoid.New(ecoid.APIKey), Method: method, Endpoint: endpoint,
			Status: status, Latency: latency, Time: at})
	}
	track(today.Add(time.Minute), "GET", "/api/v1/ping", 200, 2*time.Millisecond)
	track(today.Add(2*time.Minute), "GET", "/api/v1/ping", 429, 4*time.Millisecond)
	track(today.AddDate(0, 0, -2), "POST", "/api/v1/items", 201, time.Millisecond)
	track(today.AddDate(0, 0, -10), "GET", "/api/v1/ping", 200, time.Millisecond) // outside 7 days
	if err := a.tracker.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	var hist struct {
		Days []struct {
			Date   string `json:"date"`
			Calls  int64  `json:"calls"`
			Errors int64  `json:"errors"`
		} `json:"days"`
	}
	if resp := s.do("GET", "/api/usage/history", "", h, &hist); resp.StatusCode != 200 || len(hist.Days) != 30 {
		t.Fatalf("history: %d, %d days", resp.StatusCode, len(hist.Days))
	}
	last := hist.Days[29]
	if last.Date != today.Format(time.DateOnly) || last.Calls != 2 || last.Errors != 1 ||
		hist.Days[27].Calls != 1 || hist.Days[28].Calls != 0 || hist.Days[19].Calls != 1 || hist.Days[0].Date != today.AddDate(0, 0, -29).Format(time.DateOnly) {
		t.Fatalf("history: %+v", hist.Days)
	}
	if s.do("GET", "/api/usage/history?days=3", "", h, &hist); len(hist.Days) != 3 || hist.Days[0].Calls != 1 || hist.Days[2].Calls != 2 {
		t.Fatalf("history?days=3: %+v", hist.Days)
	}
	if s.do("GET", "/api/usage/history?days=365", "", h, &hist); len(hist.Days) != 365 {
		t.Fatalf("history?days=365: %d days", len(hist.Days))
	}
	for _, bad := range []string{"0", "366", "-1", "x", "1.5", "", "99999999999999999999"} {
		var e errorAnswer
		resp := s.do("GET", "/api/usage/history?days="+bad, "", h, &e)
		if resp.StatusCode != 400 || e.Error.Code != "invalid_days" {
			t.Fatalf("history?days=%s: %d %+v", bad, resp.StatusCode, e)
		}
		if resp := s.do("GET", "/api/usage/endpoints?days="+bad, "", h, &e); resp.StatusCode != 400 {
			t.Fatalf("endpoints?days=%s: %d", bad, resp.StatusCode)
		}
	}

	var eps struct {
		Endpoints []usageEndpoint `json:"endpoints"`
	}
	if resp := s.do("GET", "/api/usage/endpoints", "", h, &eps); resp.StatusCode != 200 {
		t.Fatalf("endpoints: %d", resp.StatusCode)
	}
	want := []usageEndpoint{
		{Method: "GET", Endpoint: "/api/v1/ping", Calls: 2, ErrorRate: 0.5, AvgLatencyMS: 3, P95LatencyMS: 3.9},
		{Method: "POST", Endpoint: "/api/v1/items", Calls: 1, AvgLatencyMS: 1, P95LatencyMS: 1},
	}
	if len(eps.Endpoints) != 2 || eps.Endpoints[0] != want[0] || eps.Endpoints[1] != want[1] {
		t.Fatalf("endpoints: %+v", eps.Endpoints)
	}
	if s.do("GET", "/api/usage/endpoints?days=30", "", h, &eps); len(eps.Endpoints) != 2 || eps.Endpoints[0].Calls != 3 {
		t.Fatalf("endpoints?days=30: %+v", eps.Endpoints)
	}
	other := s.register("bob@example.com")
	raw := map[string]any{}
	if s.do("GET", "/api/usage/endpoints", "", bearer(other.AccessToken), &raw); raw["endpoints"] == nil {
		t.Fatalf("endpoints of a user without calls must be [], got %v", raw)
	}
}

func TestUsageOverage(t *testing.T) {
	a, s := startApp(t, authEnv())
	pro := s.register("pro@example.com")
	free := s.register("free@example.com")
	proUser := ecoid.MustParse(pro.User.ID)
	// A soft quota of 10 calls at Pro's $0.001 a call, set where plans live: billing.
	terms := billing.Terms{QuotaCalls: 10, OverageMilliCentsPerCall: billing.ProTerms.OverageMilliCentsPerCall}
	if _, err := a.billing.SetEnterprise(context.Background(), proUser, "pro@example.com", terms); err != nil {
		t.Fatal(err)
	}
	var ov map[string]int64
	for i := range 25 {
		res, err := a.quota.Reserve(context.Background(), proUser)
		if err != nil || !res.Allowed {
			t.Fatalf("soft quota refused call %d: %+v %v", i+1, res, err)
		}
	}
	if resp := s.do("GET", "/api/usage/overage", "", bearer(pro.AccessToken), &ov); resp.StatusCode != 200 || ov["calls_over"] != 15 || ov["amount_cents"] != 2 {
		t.Fatalf("overage of 15 calls at $0.001: %d %v", resp.StatusCode, ov) // 1.5 cents, rounded up
	}
	var cur usageCurrentJSON
	if s.do("GET", "/api/usage/current", "", bearer(pro.AccessToken), &cur); cur.Plan != "enterprise" || cur.Calls != 25 || cur.Quota != 10 || cur.Remaining != 0 {
		t.Fatalf("current over a soft quota: %+v", cur)
	}
	if s.do("GET", "/api/usage/overage", "", bearer(free.AccessToken), &ov); ov["calls_over"] != 0 || ov["amount_cents"] != 0 {
		t.Fatalf("overage on free: %v", ov)
	}
}

func TestUsageShutdownFlushesTracker(t *testing.T) {
	a, s := startApp(t, authEnv())
	user := ecoid.New(ecoid.User)
	for i := range 7 {
		a.tracker.Track(usage.Record{UserID: user, Method: "GET", Endpoint: "/x", Status: 200, Time: time.Now().Add(-time.Duration(i) * time.Second)})
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if st := a.tracker.Stats(); st.Flushed != 7 || st.Pending != 0 {
		t.Fatalf("after shutdown: %+v", st)
	}
	n, _ := a.usageStore.TotalCalls(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if n != 7 {
		t.Fatalf("store holds %d rows, want 7", n)
	}
}

// pgDSN returns a DSN for a fresh, migrated schema of its own.
func pgDSN(t *testing.T) string {
	t.Helper()
	db := pgtest.New(t)
	var schema string
	if err := db.QueryRow(`SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	return pgtest.WithSearchPath(testenv.Postgres(t), schema)
}

func TestUsageSurvivesRestartOnPostgres(t *testing.T) {
	dsn := pgDSN(t)
	env := authEnv()
	a, s := startApp(t, env, "-postgres", dsn)
	reg := s.register("ann@example.com")
	user := ecoid.MustParse(reg.User.ID)
	for i := range 12 {
		if res, err := a.quota.Reserve(context.Background(), user); err != nil || !res.Allowed {
			t.Fatal(res, err)
		}
		a.tracker.Track(usage.Record{UserID: user, Method: "GET", Endpoint: "/api/v1/ping", Status: 200 + 300*(i%2),
			Latency: time.Millisecond, Time: time.Now()})
	}
	if err := s.stop(); err != nil { // what SIGTERM runs: the tracker is flushed
		t.Fatal(err)
	}

	_, s2 := startApp(t, env, "-postgres", dsn)
	var login sessionAnswer
	if resp := s2.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, jsonHeader(), &login); resp.StatusCode != 200 {
		t.Fatalf("login after restart: %d", resp.StatusCode)
	}
	var cur usageCurrentJSON
	if s2.do("GET", "/api/usage/current", "", bearer(login.AccessToken), &cur); cur.Calls != 12 || cur.Remaining != 988 {
		t.Fatalf("current after restart: %+v", cur)
	}
	var hist struct {
		Days []usageDay `json:"days"`
	}
	if s2.do("GET", "/api/usage/history?days=1", "", bearer(login.AccessToken), &hist); len(hist.Days) != 1 || hist.Days[0].Calls != 12 || hist.Days[0].Errors != 6 {
		t.Fatalf("history after restart: %+v", hist.Days)
	}
}

func FuzzDaysParam(f *testing.F) {
	for _, s := range []string{"days=30", "days=", "days=0", "days=366", "days=-1", "days=1e3", "days=%00", "x=1", "days=7&days=8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		r := httptest.NewRequest("GET", "/api/usage/history", nil)
		r.URL.RawQuery = query
		n, ok := daysParam(r, 30)
		if ok && (n < 1 || n > 365) {
			t.Fatalf("daysParam(%q) = %d", query, n)
		}
		if !ok && n != 0 {
			t.Fatalf("daysParam(%q) refused with %d", query, n)
		}
	})
}

// meteredKey registers a user and gives them an API key with scope read and the given
// per-minute rate limit.
func meteredKey(s *testServer, email string, perMinute int) (sessionAnswer, generatedAnswer) {
	s.t.Helper()
	reg := s.register(email)
	return reg, s.generate(reg.AccessToken, `{"name":"metered","scopes":["read"],"rate_limit_per_minute":`+strconv.Itoa(perMinute)+`}`)
}

func TestUsageFreeQuotaIsExactOverHTTP(t *testing.T) {
	a, s := startApp(t, authEnv())
	reg, key := meteredKey(s, "ann@example.com", 1_000_000)
	for i := range 990 {
		if resp := s.do("GET", "/api/v1/ping", "", apiKey(key.Key), nil); resp.StatusCode != 200 {
			t.Fatalf("ping %d: %d", i+1, resp.StatusCode)
		}
	}
	// 64 clients race for the last 10 calls of the month.
	var served, refused atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				var e errorAnswer
				resp := s.do("GET", "/api/v1/ping", "", apiKey(key.Key), &e)
				switch {
				case resp.StatusCode == 200:
					served.Add(1)
				case resp.StatusCode == 429 && e.Error.Code == "quota_exceeded":
					refused.Add(1)
				default:
					t.Errorf("ping: %d %+v", resp.StatusCode, e)
				}
			}
		}()
	}
	wg.Wait()
	if served.Load() != 10 || refused.Load() != 118 {
		t.Fatalf("racing for the last 10 calls: %d served, %d refused", served.Load(), refused.Load())
	}
	var e errorAnswer
	resp := s.do("GET", "/api/v1/ping", "", apiKey(key.Key), &e)
	if resp.StatusCode != 429 || e.Error.Code != "quota_exceeded" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the call after the 1,000th: %d %+v", resp.StatusCode, e)
	}
	var cur usageCurrentJSON
	if s.do("GET", "/api/usage/current", "", bearer(reg.AccessToken), &cur); cur.Calls != 1000 || cur.Remaining != 0 || cur.Quota != 1000 {
		t.Fatalf("current: %+v", cur)
	}
	if err := a.tracker.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var hist struct {
		Days []usageDay `json:"days"`
	}
	if s.do("GET", "/api/usage/history?days=1", "", bearer(reg.AccessToken), &hist); len(hist.Days) != 1 || hist.Days[0].Calls != 1119 || hist.Days[0].Errors != 119 {
		t.Fatalf("history: every authenticated request is logged: %+v", hist.Days)
	}
	var eps struct {
		Endpoints []usageEndpoint `json:"endpoints"`
	}
	if s.do("GET", "/api/usage/endpoints", "", bearer(reg.AccessToken), &eps); len(eps.Endpoints) != 1 ||
		eps.Endpoints[0].Endpoint != "/api/v1/ping" || eps.Endpoints[0].Method != "GET" || eps.Endpoints[0].Calls != 1119 {
		t.Fatalf("endpoints: %+v", eps.Endpoints)
	}
}

func TestUsageRateLimitedCallsCostNoQuota(t *testing.T) {
	a, s := startApp(t, authEnv())
	reg, key := meteredKey(s, "ann@example.com", 2)
	codes := map[int]int{}
	for range 5 {
		codes[s.do("GET", "/api/v1/ping", "", apiKey(key.Key), nil).StatusCode]++
	}
	if codes[200] != 2 || codes[429] != 3 {
		t.Fatalf("statuses %v, want 2 served and 3 rate limited", codes)
	}
	if resp := s.do("GET", "/api/v1/ping", "", apiKey("eco_api_nope.secret"), nil); resp.StatusCode != 401 {
		t.Fatalf("a bad key: %d", resp.StatusCode)
	}
	var cur usageCurrentJSON
	if s.do("GET", "/api/usage/current", "", bearer(reg.AccessToken), &cur); cur.Calls != 2 || cur.Remaining != 998 {
		t.Fatalf("current: %+v; rate-limited calls must cost no quota", cur)
	}
	if err := a.tracker.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var hist struct {
		Days []usageDay `json:"days"`
	}
	if s.do("GET", "/api/usage/history?days=1", "", bearer(reg.AccessToken), &hist); hist.Days[0].Calls != 5 || hist.Days[0].Errors != 3 {
		t.Fatalf("history: %+v; want the 5 authenticated requests, the 401 not", hist.Days)
	}
}

func TestUsageTrackedRequestsSurviveRestartOnPostgres(t *testing.T) {
	dsn := pgDSN(t)
	env := authEnv()
	s := startServer(t, env, "-postgres", dsn)
	reg, key := meteredKey(s, "ann@example.com", 1000)
	for range 7 {
		if resp := s.do("GET", "/api/v1/ping", "", apiKey(key.Key), nil); resp.StatusCode != 200 {
			t.Fatalf("ping: %d", resp.StatusCode)
		}
	}
	if err := s.stop(); err != nil { // SIGTERM: graceful shutdown flushes the tracker
		t.Fatal(err)
	}
	s2 := startServer(t, env, "-postgres", dsn)
	var hist struct {
		Days []usageDay `json:"days"`
	}
	if s2.do("GET", "/api/usage/history?days=1", "", bearer(reg.AccessToken), &hist); len(hist.Days) != 1 || hist.Days[0].Calls != 7 {
		t.Fatalf("history after restart: %+v", hist.Days)
	}
	var cur usageCurrentJSON
	if s2.do("GET", "/api/usage/current", "", bearer(reg.AccessToken), &cur); cur.Calls != 7 {
		t.Fatalf("current after restart: %+v", cur)
	}
}

// TestUsageScopeRefusalsCostNoQuota: a key without the route's scope is refused 403 before
// the quota and the rate limit (the order of README's apikey chain), so the refusal is
// logged like every authenticated request but costs neither a call of the month nor a
// slot of the key's rate limit.
func TestUsageScopeRefusalsCostNoQuota(t *testing.T) {
	a, s := startApp(t, authEnv())
	reg := s.register("ann@example.com")
	key := s.generate(reg.AccessToken, `{"name":"write-only","scopes":["write"],"rate_limit_per_minute":2}`)
	for i := range 4 {
		var e errorAnswer
		if resp := s.do("GET", "/api/v1/ping", "", apiKey(key.Key), &e); resp.StatusCode != 403 || e.Error.Code != "insufficient_scope" {
			t.Fatalf("ping %d without the read scope: %d %+v", i+1, resp.StatusCode, e)
		}
	}
	var cur usageCurrentJSON
	if s.do("GET", "/api/usage/current", "", bearer(reg.AccessToken), &cur); cur.Calls != 0 || cur.Remaining != 1000 {
		t.Fatalf("current: %+v; scope refusals must cost no quota", cur)
	}
	if err := a.tracker.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var hist struct {
		Days []usageDay `json:"days"`
	}
	if s.do("GET", "/api/usage/history?days=1", "", bearer(reg.AccessToken), &hist); hist.Days[0].Calls != 4 || hist.Days[0].Errors != 4 {
		t.Fatalf("history: %+v; want the 4 authenticated requests logged", hist.Days)
	}
}
