package usage_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

func ExampleTracker() {
	store := memory.NewUsageStore()
	tracker := usage.NewTracker(store, usage.Config{}) // batches of 100 or every 5s
	user := ecoid.MustParse("eco_usr_0Ub2cYzA9fKq3XwT7mNpLs")
	day := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	for i := range 3 {
		tracker.Track(usage.Record{UserID: user, Endpoint: "/api/v1/ping", Method: "GET",
			Status: 200 + 300*(i/2), Latency: time.Duration(i+1) * time.Millisecond, Time: day})
	}
	if err := tracker.Close(context.Background()); err != nil { // flushes what is buffered
		fmt.Println(err)
	}
	fmt.Printf("%+v\n", tracker.Stats())

	history, _ := store.History(context.Background(), user, day.AddDate(0, 0, -1), 2)
	for _, d := range history {
		fmt.Println(d.Date.Format(time.DateOnly), d.Calls, d.Errors)
	}
	// Output:
	// {Accepted:3 Flushed:3 Retried:0 Dropped:0 Rejected:0 Pending:0 Probes:0}
	// 2026-03-09 0 0
	// 2026-03-10 3 1
}

func ExampleMiddleware() {
	store := memory.NewUsageStore()
	tracker := usage.NewTracker(store, usage.Config{})
	user := ecoid.MustParse("eco_usr_0Ub2cYzA9fKq3XwT7mNpLs")
	// identify would read the API key that authentication put in the context.
	identify := func(*http.Request) (keyID, userID ecoid.ID, ok bool) { return "", user, true }

	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	handler := usage.Middleware(tracker, identify, usage.MiddlewareConfig{})(mux)
	handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/items/42", nil))
	_ = tracker.Close(context.Background())

	stats, _ := store.Endpoints(context.Background(), user, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	fmt.Println(stats[0].Method, stats[0].Endpoint, stats[0].Calls)
	// Output: GET /items/{id} 1
}

func ExampleQuota() {
	counter := memory.NewUsageStore()
	free := func(context.Context, ecoid.ID) (int64, bool, error) { return 2, true, nil } // 2 calls, hard cap
	quota := usage.NewQuota(counter, free, usage.QuotaConfig{})
	user := ecoid.MustParse("eco_usr_0Ub2cYzA9fKq3XwT7mNpLs")
	for range 3 {
		res, _ := quota.Reserve(context.Background(), user)
		fmt.Println(res.Allowed, res.Count, res.Remaining())
	}
	// Output:
	// true 1 1
	// true 2 0
	// false 2 0
}
