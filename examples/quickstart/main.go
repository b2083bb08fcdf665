// Command quickstart walks through the Nexus SDK in one process, on in-memory stores,
// and prints what each step does: an EcoID, a user with a session, token rotation with
// reuse detection, an API key checked and rate limited, and usage tracked against a
// monthly quota.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

	// 1. EcoIDs: typed, time-sortable, 30 characters.
	id := ecoid.New(ecoid.Project)
	say("1. ecoid.New(ecoid.Project) = %s (type %s, created %s)", id, id.Type(), id.Time().Format(time.RFC3339))

	// 2. Users and sessions.
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	issuer, err := auth.NewIssuer(auth.IssuerConfig{Secret: secret})
	if err != nil {
		return err
	}
	users, err := auth.NewService(auth.Config{Store: memory.NewAuthStore(), Issuer: issuer})
	if err != nil {
		return err
	}
	client := auth.Client{IP: "127.0.0.1", UserAgent: "quickstart"}
	if _, err := users.Register(ctx, client, "ann@example.com", "weak", "Ann"); errors.Is(err, auth.ErrWeakPassword) {
		say("2. Register with a weak password: %v", err)
	}
	reg, err := users.Register(ctx, client, "Ann@Example.com", "correct Horse 9!", "Ann")
	if err != nil {
		return err
	}
	say("   Register: user %s, email normalised to %s", reg.User.ID, reg.User.Email)
	claims, err := issuer.Verify(reg.AccessToken, auth.AccessToken)
	if err != nil {
		return err
	}
	say("   the access token names user %s and session %s", claims.UserID, claims.SessionID)
	rotated, err := users.Refresh(ctx, client, reg.RefreshToken)
	if err != nil {
		return err
	}
	_, reuse := users.Refresh(ctx, client, reg.RefreshToken)
	say("   Refresh rotates the pair; presenting the old refresh token again: %v", reuse)
	_, afterReuse := users.Refresh(ctx, client, rotated.RefreshToken)
	say("   ... which revoked the session, so the new one fails too: %v", afterReuse != nil)

	// 3. API keys: shown once, stored as a hash, verified through a cache, rate limited.
	keys := apikey.NewService(memory.NewKeyStore(), apikey.Config{})
	defer keys.Close(ctx)
	key, plain, err := keys.Create(ctx, apikey.CreateParams{
		Owner: reg.User.ID, Name: "quickstart", Scopes: []string{"read"}, RateLimitPerMinute: 3,
	})
	if err != nil {
		return err
	}
	say("3. Create: key %s with scopes %v (the plain key is %d characters, shown once)", key.ID, key.Scopes, len(plain))
	verified, err := keys.Verify(ctx, plain)
	if err != nil {
		return err
	}
	say("   Verify: owner %s, status %s", verified.Owner, verified.Status)
	_, err = keys.Verify(ctx, mistype(plain))
	say("   Verify of a mistyped key fails before any lookup: %v", errors.Is(err, apikey.ErrMalformed))
	limiter := memory.NewLimiter()
	for i := 1; i <= 4; i++ {
		d, err := limiter.Allow(ctx, string(key.ID), apikey.PerMinute(verified.RateLimitPerMinute))
		if err != nil {
			return err
		}
		say("   request %d: allowed=%v remaining=%d", i, d.Allowed, d.Remaining)
	}

	// 4. Usage: a non-blocking tracker, and an exact monthly quota.
	store := memory.NewUsageStore()
	tracker := usage.NewTracker(store, usage.Config{})
	quota := usage.NewQuota(store, func(context.Context, ecoid.ID) (int64, bool, error) {
		return 1000, true, nil // the Free plan: 1,000 calls a month, hard cap
	}, usage.QuotaConfig{})
	for i := 0; i < 3; i++ {
		if _, err := quota.Reserve(ctx, reg.User.ID); err != nil {
			return err
		}
		tracker.Track(usage.Record{KeyID: key.ID, UserID: reg.User.ID, Endpoint: "/api/v1/ping",
			Method: "GET", Status: 200, Latency: 2 * time.Millisecond, Time: time.Now()})
	}
	if err := tracker.Close(ctx); err != nil {
		return err
	}
	st := tracker.Stats()
	say("4. Tracker: accepted %d, flushed %d, dropped %d", st.Accepted, st.Flushed, st.Dropped)
	cur, err := quota.Current(ctx, reg.User.ID)
	if err != nil {
		return err
	}
	say("   quota this month: %d calls of %d, %d remaining", cur.Calls, cur.Quota, cur.Remaining)
	eps, err := store.Endpoints(ctx, reg.User.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		return err
	}
	for _, e := range eps {
		say("   %s %s: %d calls", e.Method, e.Endpoint, e.Calls)
	}
	return nil
}

// mistype changes the last character of s, as a typo would.
func mistype(s string) string {
	last := byte('x')
	if s[len(s)-1] == last {
		last = 'y'
	}
	return s[:len(s)-1] + string(last)
}
