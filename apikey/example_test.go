package apikey_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

func Example() {
	ctx := context.Background()
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	defer keys.Close(ctx)

	owner := ecoid.New(ecoid.User)
	key, plain, err := keys.Create(ctx, apikey.CreateParams{
		Owner: owner, Name: "ci", Scopes: []string{"read"}, RateLimitPerMinute: 2,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(plain), key.RateLimitPerMinute) // shown once; only its SHA-256 is stored

	// A protected route: authenticate, check the scope, apply the key's own limit.
	limiter := memory.NewLimiter()
	ping := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := apikey.KeyFrom(r.Context())
		fmt.Fprintf(w, "hello %s", k.Name)
	})
	h := apikey.Authenticate(keys, apikey.AuthOptions{})(
		apikey.RequireScopes("read")(
			apikey.RateLimit(limiter, apikey.RateLimitOptions{})(ping)))

	for i := 0; i < 3; i++ {
		req := httptest.NewRequest("GET", "/api/v1/ping", nil)
		req.Header.Set("Authorization", "ApiKey "+plain)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("X-RateLimit-Remaining"), rec.Header().Get("RateLimit-Policy"))
	}
	// Output:
	// 80 2
	// 200 1 "default";q=2;w=60
	// 200 0 "default";q=2;w=60
	// 429 0 "default";q=2;w=60
}

func ExampleParse() {
	_, err := apikey.Parse("eco_api_0Ub2cYzA9fKq3XwT7mNpLs.not-a-secret")
	fmt.Println(err)
	// Output: apikey: malformed key: length 43, want 80
}

func ExampleService_Rotate() {
	ctx := context.Background()
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	defer keys.Close(ctx)
	owner := ecoid.New(ecoid.User)
	key, old, _ := keys.Create(ctx, apikey.CreateParams{Owner: owner, Name: "deploy"})

	fresh, _ := keys.Rotate(ctx, owner, key.ID, 0) // no grace: the old secret dies now
	_, errOld := keys.Verify(ctx, old)
	k, errNew := keys.Verify(ctx, fresh)
	fmt.Println(errOld, errNew, k.ID == key.ID)
	// Output: apikey: invalid key <nil> true
}

func ExampleLimit_GCRA() {
	g, _ := apikey.PerMinute(3).GCRA()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	var tat, seen int64
	for i := 0; i < 4; i++ {
		var allowed bool
		allowed, tat, seen = g.Step(tat, seen, start)
		d := g.Decision(allowed, tat, seen)
		fmt.Println(d.Allowed, d.Remaining, d.RetryAfter)
	}
	// Output:
	// true 2 0s
	// true 1 0s
	// true 0 0s
	// false 0 20s
}
