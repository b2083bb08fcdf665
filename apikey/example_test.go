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

// Two instances over one store: OnChange on the one that revokes tells the other, which
// drops the key from its cache at once instead of trusting it for CacheTTL. In a real
// deployment OnChange publishes the ID (Postgres NOTIFY, Redis pub/sub) and each listener
// calls Invalidate, or PurgeCache after a reconnect.
func ExampleConfig_onChange() {
	ctx := context.Background()
	store := memory.NewKeyStore()
	var b *apikey.Service
	a := apikey.NewService(store, apikey.Config{OnChange: func(_ context.Context, id ecoid.ID) { b.Invalidate(id) }})
	b = apikey.NewService(store, apikey.Config{})
	defer a.Close(ctx)
	defer b.Close(ctx)

	owner := ecoid.New(ecoid.User)
	key, plain, _ := a.Create(ctx, apikey.CreateParams{Owner: owner, Name: "ci"})
	_, err := b.Verify(ctx, plain) // b caches the key
	fmt.Println(err)
	_ = a.Revoke(ctx, owner, key.ID)
	_, err = b.Verify(ctx, plain)
	fmt.Println(err)
	// Output:
	// <nil>
	// apikey: key revoked
}

func ExampleService_ListPage() {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Second); return now } // one caller at a time here
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{Now: clock})
	defer keys.Close(ctx)
	owner := ecoid.New(ecoid.User)
	for _, name := range []string{"a", "b", "c"} {
		keys.Create(ctx, apikey.CreateParams{Owner: owner, Name: name})
	}
	p := apikey.ListParams{Limit: 2}
	for {
		page, _ := keys.ListPage(ctx, owner, p)
		for _, k := range page.Keys {
			fmt.Print(k.Name, " ")
		}
		fmt.Println("| more:", page.Next != "")
		if page.Next == "" {
			break
		}
		p.After = page.Next
	}
	// Output:
	// a b | more: true
	// c | more: false
}
