package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/guard"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

func ping(w http.ResponseWriter, r *http.Request) {
	k, _ := apikey.KeyFrom(r.Context())
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "key": k.Name})
}

// Example is the README's quick start: the lines between the markers are the README's
// snippet, word for word (TestREADMEQuickStart checks it), so the snippet compiles.
func Example() {
	ctx := context.Background()
	// quickstart:begin
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	calls := memory.NewUsageStore() // the request log and the monthly counters
	plans := billing.NewService(memory.NewBillingStore(), billing.Config{})
	tracker := usage.NewTracker(calls, usage.Config{})
	defer tracker.Close(ctx)

	protect := guard.New(guard.Config{
		Keys:      keys,
		Scopes:    []string{"read"},
		Tracker:   tracker,
		Admission: guard.NewLimits(memory.NewLimiter(), calls, plans.QuotaFor),
	})
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/ping", protect(http.HandlerFunc(ping)))
	// quickstart:end

	_, plain, _ := keys.Create(ctx, apikey.CreateParams{
		Owner: ecoid.New(ecoid.User), Name: "ci", Scopes: []string{"read"}, RateLimitPerMinute: 2,
	})
	for range 3 {
		r := httptest.NewRequest("GET", "/api/v1/ping", nil)
		r.Header.Set("Authorization", "ApiKey "+plain)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Header().Get("X-RateLimit-Remaining"), " ", w.Body.String())
	}
	// Output:
	// 200 1 {"key":"ci","ok":true}
	// 200 0 {"key":"ci","ok":true}
	// 429 0 {"error":{"code":"rate_limited","message":"rate limit of 2 requests per minute exceeded; retry after 30 s"}}
}
