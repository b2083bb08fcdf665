package auth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/auth/totp"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
)

var mfaKey = bytes.Repeat([]byte{7}, auth.MFAKeySize)

func withMFA(c *auth.Config) { c.MFA.Key = mfaKey }

// mfaUser is a registered user with TOTP on: its secret and recovery codes.
type mfaUser struct {
	auth.Result
	secret   []byte
	text     string
	recovery []string
}

// code returns the user's TOTP code for the step d steps from now.
func (f *fixture) code(u mfaUser, d int64) string {
	var p totp.Params
	return p.Code(u.secret, p.Step(f.clock.Now())+d)
}

// enable registers email and turns TOTP on; the clock then moves to the next step, so
// the confirmation code's step is behind.
func (f *fixture) enable(t *testing.T, email string) mfaUser {
	t.Helper()
	ctx := context.Background()
	u := mfaUser{Result: f.register(t, email)}
	en, err := f.svc.EnrollTOTP(ctx, client, u.User.ID, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	u.text = en.Secret
	if u.secret, err = totp.DecodeSecret(en.Secret); err != nil {
		t.Fatal(err)
	}
	if u.recovery, err = f.svc.ConfirmTOTP(ctx, client, u.User.ID, f.code(u, 0)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(totp.DefaultPeriod)
	return u
}

// challenge logs u in and returns the mfa token Login answers with.
func (f *fixture) challenge(t *testing.T, c auth.Client, email string) string {
	t.Helper()
	res, err := f.svc.Login(context.Background(), c, email, goodPassword)
	var mr *auth.MFARequiredError
	if !errors.As(err, &mr) || !errors.Is(err, auth.ErrMFARequired) || res.AccessToken != "" || res.RefreshToken != "" {
		t.Fatalf("Login with TOTP on: %+v, %v; want a *MFARequiredError and no tokens", res, err)
	}
	if mr.Token == "" || strings.Contains(err.Error(), mr.Token) || !mr.ExpiresAt.Equal(f.clock.Now().Add(auth.DefaultMFATokenTTL)) {
		t.Fatalf("MFARequiredError %+v / %q", mr, err)
	}
	return mr.Token
}

func liveSessions(t *testing.T, f *fixture, user ecoid.ID) int {
	t.Helper()
	n, err := f.store.RevokeUserSessions(context.Background(), user, "", f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMFAEnrollConfirmLoginVerify(t *testing.T) { eachStore(t, testMFAFlow) }

func testMFAFlow(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, withMFA)
	reg := f.register(t, "ann@example.com")
	en, err := f.svc.EnrollTOTP(ctx, client, reg.User.ID, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if len(en.Secret) != 32 || !strings.HasPrefix(en.URL, "otpauth://totp/Nexus:ann@example.com?") || !strings.Contains(en.URL, "secret="+en.Secret) {
		t.Fatalf("enrollment %+v", en)
	}
	// Pending enrollment: login still opens a session directly.
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); err != nil {
		t.Fatalf("login while enrollment is pending: %v", err)
	}
	if on, _ := f.svc.MFAEnabled(ctx, reg.User.ID); on {
		t.Fatal("MFAEnabled before confirmation")
	}
	u := mfaUser{Result: reg, text: en.Secret}
	u.secret, _ = totp.DecodeSecret(en.Secret)
	for _, bad := range []string{"", "12345", "abcdef", f.code(u, 3)} {
		if _, err := f.svc.ConfirmTOTP(ctx, client, reg.User.ID, bad); !errors.Is(err, auth.ErrInvalidCode) {
			t.Fatalf("ConfirmTOTP(%q): %v, want ErrInvalidCode", bad, err)
		}
	}
	confirmCode := f.code(u, 0)
	codes, err := f.svc.ConfirmTOTP(ctx, client, reg.User.ID, confirmCode)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 19 || c[4] != '-' || seen[c] {
			t.Fatalf("recovery codes %q", codes)
		}
		seen[c] = true
	}
	if len(codes) != auth.RecoveryCodeCount {
		t.Fatalf("%d recovery codes", len(codes))
	}
	if on, _ := f.svc.MFAEnabled(ctx, reg.User.ID); !on {
		t.Fatal("MFAEnabled false after confirmation")
	}
	if _, err := f.svc.EnrollTOTP(ctx, client, reg.User.ID, goodPassword); !errors.Is(err, auth.ErrMFAEnabled) {
		t.Fatalf("enrolling twice: %v, want ErrMFAEnabled", err)
	}
	if _, err := f.svc.ConfirmTOTP(ctx, client, reg.User.ID, confirmCode); !errors.Is(err, auth.ErrMFAEnabled) {
		t.Fatalf("confirming twice: %v", err)
	}

	before := liveSessions(t, f, reg.User.ID)
	token := f.challenge(t, client, "ann@example.com")
	if n := liveSessions(t, f, reg.User.ID); n != 0 {
		t.Fatalf("Login with TOTP on opened %d sessions (before: %d)", n, before)
	}
	// The confirmation code was spent: it cannot finish a login in the same step.
	if _, err := f.svc.VerifyMFA(ctx, client, token, confirmCode); !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("verify with the confirmation code: %v, want ErrInvalidCode", err)
	}
	f.clock.Advance(totp.DefaultPeriod)
	res, err := f.svc.VerifyMFA(ctx, client, token, f.code(u, 0))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := f.svc.Issuer().Verify(res.AccessToken, auth.AccessToken)
	if err != nil || claims.UserID != reg.User.ID || res.User != reg.User || res.RefreshToken == "" {
		t.Fatalf("VerifyMFA result %+v, claims %+v, %v", res.User, claims, err)
	}
	if _, err := f.svc.Refresh(ctx, client, res.RefreshToken); err != nil {
		t.Fatalf("refresh of the MFA session: %v", err)
	}
	// The token is single use.
	f.clock.Advance(totp.DefaultPeriod)
	if _, err := f.svc.VerifyMFA(ctx, client, token, f.code(u, 0)); !errors.Is(err, auth.ErrInvalidMFAToken) {
		t.Fatalf("second verify with one mfa token: %v", err)
	}
	// Entries of one fake instant have no fixed order: look at all of them.
	acts, _ := f.svc.Activities(ctx, reg.User.ID, 0)
	if !slices.ContainsFunc(acts, func(a auth.Activity) bool {
		return a.Action == auth.ActionLogin && a.Success && a.Detail == "with totp"
	}) {
		t.Fatalf("no login with totp among %+v", acts)
	}
}

func TestMFAReplayRefused(t *testing.T) { eachStore(t, testMFAReplay) }

func testMFAReplay(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, withMFA)
	u := f.enable(t, "ann@example.com")
	code := f.code(u, 0)
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), code); err != nil {
		t.Fatal(err)
	}
	// An observer replays the code inside its window, on a login of its own.
	f.clock.Advance(10 * time.Second)
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), code); !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("replayed code: %v, want ErrInvalidCode", err)
	}
	// A code of an earlier step than one used is refused too.
	f.clock.Advance(totp.DefaultPeriod)
	token := f.challenge(t, client, "ann@example.com")
	if _, err := f.svc.VerifyMFA(ctx, client, token, f.code(u, 1)); err != nil {
		t.Fatalf("next step's code (skew +1): %v", err)
	}
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, 0)); !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("a code older than the last used: %v", err)
	}
}

func TestMFASkew(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withMFA)
	u := f.enable(t, "ann@example.com")
	for _, d := range []int64{-2, 2, 3} {
		if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, d)); !errors.Is(err, auth.ErrInvalidCode) {
			t.Fatalf("code %+d steps away: %v, want ErrInvalidCode", d, err)
		}
	}
	f.clock.Advance(totp.DefaultPeriod) // the step before is no longer the confirmation's
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, -1)); err != nil {
		t.Fatalf("previous step: %v", err)
	}
	f.clock.Advance(totp.DefaultPeriod)
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, 1)); err != nil {
		t.Fatalf("next step: %v", err)
	}
}

func TestMFABruteForceThrottled(t *testing.T) { eachStore(t, testMFABruteForce) }

func testMFABruteForce(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, withMFA)
	u := f.enable(t, "ann@example.com")
	wrong := func() string { // a well-formed code that is wrong for every accepted step
		for _, c := range []string{"000000", "111111", "222222", "333333"} {
			if c != f.code(u, -1) && c != f.code(u, 0) && c != f.code(u, 1) {
				return c
			}
		}
		panic("unreachable")
	}
	// Per token: five attempts, then 429 even with the right code.
	token := f.challenge(t, client, "ann@example.com")
	for i := range auth.DefaultMaxMFAFailures {
		if _, err := f.svc.VerifyMFA(ctx, client, token, wrong()); !errors.Is(err, auth.ErrInvalidCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	_, err := f.svc.VerifyMFA(ctx, client, token, f.code(u, 0))
	var te *auth.ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, auth.ErrTooManyAttempts) || te.RetryAfter <= 0 {
		t.Fatalf("6th attempt on one token: %v, want a *ThrottledError", err)
	}
	// Per user: new tokens do not buy new guesses within the window.
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, 0)); !errors.As(err, &te) {
		t.Fatalf("a fresh token after 5 failures: %v, want a *ThrottledError", err)
	}
	acts, _ := f.svc.Activities(ctx, u.User.ID, 0) // entries of one fake instant have no order: look at all
	if !slices.ContainsFunc(acts, func(a auth.Activity) bool { return a.Action == auth.ActionMFAThrottled }) {
		t.Fatalf("no mfa_throttled among %+v", acts)
	}
	// The window ends; a success then resets the user's count.
	f.clock.Advance(auth.DefaultMFAWindow)
	for range 4 {
		if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), wrong()); !errors.Is(err, auth.ErrInvalidCode) {
			t.Fatalf("after the window: %v", err)
		}
	}
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, 0)); err != nil {
		t.Fatalf("5th attempt, right code: %v", err)
	}
	f.clock.Advance(totp.DefaultPeriod)
	for range 4 {
		_, _ = f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), wrong())
	}
	if _, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, 0)); err != nil {
		t.Fatalf("a success reset the count, yet: %v", err)
	}
}

// TestMFAThrottleSharedByInstances: two services over one store and one ThrottleStore
// (two instances of a server) count a user's failed codes together.
func TestMFAThrottleSharedByInstances(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testMFAThrottleShared(t, memory.NewAuthStore(), memory.NewThrottleStore(0))
	})
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.New(t)
		testMFAThrottleShared(t, postgres.NewAuthStore(db), postgres.NewThrottleStore(db))
	})
}

func testMFAThrottleShared(t *testing.T, store auth.Store, th auth.ThrottleStore) {
	ctx := context.Background()
	f := newFixture(t, withMFA, func(c *auth.Config) { c.Store, c.Throttle = store, th })
	u := f.enable(t, "ann@example.com")
	other, err := auth.NewService(auth.Config{Store: store, Throttle: th, Issuer: f.svc.Issuer(), BcryptCost: 4, Now: f.clock.Now, MFA: auth.MFAConfig{Key: mfaKey}})
	if err != nil {
		t.Fatal(err)
	}
	instances := []*auth.Service{f.svc, other}
	wrong := "000000"
	if wrong == f.code(u, -1) || wrong == f.code(u, 0) || wrong == f.code(u, 1) {
		wrong = "999999"
	}
	for i := range auth.DefaultMaxMFAFailures {
		svc := instances[i%2]
		res, err := svc.Login(ctx, client, "ann@example.com", goodPassword)
		var mr *auth.MFARequiredError
		if !errors.As(err, &mr) {
			t.Fatalf("login on instance %d: %+v, %v", i%2, res, err)
		}
		if _, err := instances[(i+1)%2].VerifyMFA(ctx, client, mr.Token, wrong); !errors.Is(err, auth.ErrInvalidCode) {
			t.Fatalf("wrong code %d on the other instance: %v", i+1, err)
		}
	}
	for _, svc := range instances {
		_, err := svc.Login(ctx, client, "ann@example.com", goodPassword)
		var mr *auth.MFARequiredError
		if !errors.As(err, &mr) {
			t.Fatal(err)
		}
		if _, err := svc.VerifyMFA(ctx, client, mr.Token, f.code(u, 0)); !errors.Is(err, auth.ErrTooManyAttempts) {
			t.Fatalf("right code after 5 failures spread over two instances: %v, want 429", err)
		}
	}
}

func TestMFAConcurrentVerifyOneCodeOnce(t *testing.T) { eachStore(t, testMFAConcurrentVerify) }

// testMFAConcurrentVerify: a code sent at once on many logins (instances sharing one
// store) opens one session.
func testMFAConcurrentVerify(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, withMFA)
	u := f.enable(t, "ann@example.com")
	code := f.code(u, 0)
	liveSessions(t, f, u.User.ID) // the one of Register
	const n = auth.DefaultMaxMFAFailures
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = f.challenge(t, client, "ann@example.com")
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	start := make(chan struct{})
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = f.svc.VerifyMFA(ctx, client, tokens[i%n], code)
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, auth.ErrInvalidCode), errors.Is(err, auth.ErrTooManyAttempts), errors.Is(err, auth.ErrInvalidMFAToken):
		default:
			t.Fatalf("concurrent verify: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent verifies of one code succeeded, want 1", won, len(errs))
	}
	if s := liveSessions(t, f, u.User.ID); s != 1 {
		t.Fatalf("%d sessions opened, want 1", s)
	}
}

func TestMFARecoveryCodes(t *testing.T) { eachStore(t, testMFARecovery) }

func testMFARecovery(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, withMFA)
	u := f.enable(t, "ann@example.com")
	rc := u.recovery[3]
	typed := strings.ToUpper(strings.ReplaceAll(rc, "-", " "))
	res, err := f.svc.VerifyMFARecovery(ctx, client, f.challenge(t, client, "ann@example.com"), typed)
	if err != nil || res.AccessToken == "" {
		t.Fatalf("recovery code as typed: %v", err)
	}
	if n, _ := f.svc.RecoveryCodesLeft(ctx, u.User.ID); n != auth.RecoveryCodeCount-1 {
		t.Fatalf("left %d", n)
	}
	if _, err := f.svc.VerifyMFARecovery(ctx, client, f.challenge(t, client, "ann@example.com"), rc); !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("recovery code reused: %v, want ErrInvalidCode", err)
	}
	for _, bad := range []string{"", "0000-0000-0000-0000", f.code(u, 0), "not a code"} {
		if _, err := f.svc.VerifyMFARecovery(ctx, client, f.challenge(t, client, "ann@example.com"), bad); !errors.Is(err, auth.ErrInvalidCode) {
			t.Fatalf("VerifyMFARecovery(%q): %v", bad, err)
		}
	}
	// Another user's recovery code does not work for this one.
	other := f.enable(t, "bob@example.com")
	f.clock.Advance(auth.DefaultMFAWindow) // Ann's failures above have used up her window
	if _, err := f.svc.VerifyMFARecovery(ctx, client, f.challenge(t, client, "ann@example.com"), other.recovery[0]); !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("another user's recovery code: %v", err)
	}
}

func TestMFAConcurrentRecoveryCodeOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withMFA)
	u := f.enable(t, "ann@example.com")
	tokens := []string{f.challenge(t, client, "ann@example.com"), f.challenge(t, client, "ann@example.com"), f.challenge(t, client, "ann@example.com")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.svc.VerifyMFARecovery(ctx, client, tok, u.recovery[0]); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("one recovery code opened %d sessions", won)
	}
}

func TestMFATokenBoundToLoginAndClient(t *testing.T) { eachStore(t, testMFATokenBinding) }

func testMFATokenBinding(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, withMFA)
	ann := f.enable(t, "ann@example.com")
	bob := f.enable(t, "bob@example.com")
	// Bob's valid code does not finish Ann's login, and Ann's token never yields Bob.
	annToken := f.challenge(t, client, "ann@example.com")
	if _, err := f.svc.VerifyMFA(ctx, client, annToken, f.code(bob, 0)); !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("Ann's token with Bob's code: %v", err)
	}
	res, err := f.svc.VerifyMFA(ctx, client, f.challenge(t, client, "bob@example.com"), f.code(bob, 0))
	if err != nil || res.User.ID != bob.User.ID {
		t.Fatalf("Bob's own login: %+v, %v", res.User, err)
	}
	// Another client (address or browser) cannot use the token.
	tok := f.challenge(t, client, "ann@example.com")
	for _, c := range []auth.Client{{IP: "203.0.113.9", UserAgent: client.UserAgent}, {IP: client.IP, UserAgent: "evil/1"}} {
		if _, err := f.svc.VerifyMFA(ctx, c, tok, f.code(ann, 0)); !errors.Is(err, auth.ErrInvalidMFAToken) {
			t.Fatalf("token from client %+v: %v, want ErrInvalidMFAToken", c, err)
		}
	}
	// Expired.
	f.clock.Advance(auth.DefaultMFATokenTTL)
	if _, err := f.svc.VerifyMFA(ctx, client, tok, f.code(ann, 0)); !errors.Is(err, auth.ErrInvalidMFAToken) {
		t.Fatalf("expired token: %v", err)
	}
	for _, bad := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("A", 42) + "B", base64.StdEncoding.EncodeToString(make([]byte, 32))} {
		if _, err := f.svc.VerifyMFA(ctx, client, bad, f.code(ann, 0)); !errors.Is(err, auth.ErrInvalidMFAToken) {
			t.Fatalf("token %q: %v", bad, err)
		}
	}
}

func TestMFADisable(t *testing.T) { eachStore(t, testMFADisable) }

func testMFADisable(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, withMFA)
	u := f.enable(t, "ann@example.com")
	id := u.User.ID
	if err := f.svc.DisableTOTP(ctx, client, id, "Wrong-Password-1", f.code(u, 0)); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := f.svc.DisableTOTP(ctx, client, id, goodPassword, "000000"); !errors.Is(err, auth.ErrInvalidCode) && f.code(u, 0) != "000000" {
		t.Fatalf("wrong code: %v", err)
	}
	if err := f.svc.DisableTOTP(ctx, client, id, goodPassword, f.code(u, 0)); err != nil {
		t.Fatal(err)
	}
	if on, _ := f.svc.MFAEnabled(ctx, id); on {
		t.Fatal("still enabled")
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); err != nil {
		t.Fatalf("login after disable: %v", err)
	}
	if err := f.svc.DisableTOTP(ctx, client, id, goodPassword, f.code(u, 0)); !errors.Is(err, auth.ErrMFANotEnabled) {
		t.Fatalf("disable twice: %v", err)
	}
	// With a recovery code instead of a TOTP code.
	f.clock.Advance(totp.DefaultPeriod)
	v := f.enable(t, "bob@example.com")
	if err := f.svc.DisableTOTP(ctx, client, v.User.ID, goodPassword, v.recovery[9]); err != nil {
		t.Fatalf("disable with a recovery code: %v", err)
	}
	if n, _ := f.svc.RecoveryCodesLeft(ctx, v.User.ID); n != 0 {
		t.Fatalf("recovery codes after disable: %d", n)
	}
}

// TestMFAKeyRemovedFailsClosed: a service started without the MFA key over a store where
// a user has TOTP on refuses that user's login instead of skipping the second factor.
func TestMFAKeyRemovedFailsClosed(t *testing.T) {
	ctx := context.Background()
	store := memory.NewAuthStore()
	f := newFixture(t, withMFA, func(c *auth.Config) { c.Store = store })
	u := f.enable(t, "ann@example.com")
	f.register(t, "bob@example.com")
	off, err := auth.NewService(auth.Config{Store: store, Issuer: f.svc.Issuer(), BcryptCost: 4, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := off.Login(ctx, client, "ann@example.com", goodPassword)
	if !errors.Is(err, auth.ErrMFADisabled) || res.AccessToken != "" {
		t.Fatalf("login of a TOTP user without the key: %+v, %v; want ErrMFADisabled", res, err)
	}
	if on, _ := off.MFAEnabled(ctx, u.User.ID); !on {
		t.Fatal("MFAEnabled false without the key")
	}
	if _, err := off.Login(ctx, client, "bob@example.com", goodPassword); err != nil {
		t.Fatalf("a user without TOTP: %v", err)
	}
}

func TestMFAOffByDefault(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	res := f.register(t, "ann@example.com")
	if _, err := f.svc.EnrollTOTP(ctx, client, res.User.ID, goodPassword); !errors.Is(err, auth.ErrMFADisabled) {
		t.Fatalf("EnrollTOTP without a key: %v", err)
	}
	if _, err := f.svc.VerifyMFA(ctx, client, "x", "123456"); !errors.Is(err, auth.ErrMFADisabled) {
		t.Fatalf("VerifyMFA without a key: %v", err)
	}
	if on, err := f.svc.MFAEnabled(ctx, res.User.ID); on || err != nil {
		t.Fatalf("MFAEnabled: %v %v", on, err)
	}
}

// TestLoginWithoutTOTPUnchanged: with MFA configured, a user who never enrolled logs in
// exactly as before: one session, tokens, the same activity.
func TestLoginWithoutTOTPUnchanged(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withMFA)
	reg := f.register(t, "ann@example.com")
	res, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword)
	if err != nil || res.User != reg.User || res.AccessToken == "" {
		t.Fatalf("Login: %+v, %v", res, err)
	}
	acts, _ := f.svc.Activities(ctx, reg.User.ID, 0) // entries of one fake instant have no order: look at all
	if !slices.ContainsFunc(acts, func(a auth.Activity) bool {
		return a.Action == auth.ActionLogin && a.Success && a.Detail == ""
	}) || slices.ContainsFunc(acts, func(a auth.Activity) bool { return a.Action == auth.ActionMFAChallenge }) {
		t.Fatalf("activity %+v", acts)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", "Wrong-Password-1"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestMFASecretNeverLeaks runs every MFA step with a debug logger and checks that the
// secret appears nowhere after EnrollTOTP returned it: logs, activity, errors, results,
// or the store (which holds it only encrypted, bound to its user).
func TestMFASecretNeverLeaks(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	store := memory.NewAuthStore()
	f := newFixture(t, withMFA, func(c *auth.Config) {
		c.Store = store
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	u := f.enable(t, "ann@example.com")
	var seen []string
	keep := func(v any, err error) {
		b, _ := json.Marshal(v)
		seen = append(seen, string(b))
		if err != nil {
			seen = append(seen, err.Error())
		}
	}
	tok := f.challenge(t, client, "ann@example.com")
	keep(f.svc.VerifyMFA(ctx, client, tok, "000000"))
	keep(f.svc.VerifyMFA(ctx, auth.Client{IP: "x"}, tok, f.code(u, 0)))
	keep(f.svc.VerifyMFA(ctx, client, tok, f.code(u, 0)))
	keep(f.svc.Login(ctx, client, "ann@example.com", goodPassword))
	keep(f.svc.EnrollTOTP(ctx, client, u.User.ID, goodPassword))
	keep(f.svc.ConfirmTOTP(ctx, client, u.User.ID, f.code(u, 0)))
	keep(nil, f.svc.DisableTOTP(ctx, client, u.User.ID, "wrong", f.code(u, 0)))
	acts, _ := f.svc.Activities(ctx, u.User.ID, 0)
	keep(acts, nil)
	st, err := store.TOTP(ctx, u.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	all := logs.String() + strings.Join(seen, "\n")
	for _, secret := range []string{u.text, strings.ToLower(u.text), string(u.secret), base64.StdEncoding.EncodeToString(u.secret)} {
		if strings.Contains(all, secret) {
			t.Fatalf("the TOTP secret appears after enrollment:\n%s", all)
		}
	}
	if bytes.Contains(st.Sealed, u.secret) || bytes.Contains(st.Sealed, []byte(u.text)) {
		t.Fatal("the store holds the secret in the clear")
	}
	// A sealed secret copied to another user's row does not open there.
	other := f.register(t, "mallory@example.com")
	if err := store.PutPendingTOTP(ctx, other.User.ID, st.Sealed, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ConfirmTOTP(ctx, client, other.User.ID, f.code(u, 0)); err == nil {
		t.Fatal("a secret sealed for Ann confirmed Mallory's enrollment")
	}
}

func TestMFAKeyRotation(t *testing.T) {
	ctx := context.Background()
	store := memory.NewAuthStore()
	f := newFixture(t, withMFA, func(c *auth.Config) { c.Store = store })
	u := f.enable(t, "ann@example.com")
	newKey := bytes.Repeat([]byte{9}, auth.MFAKeySize)
	cfg := func(old [][]byte) auth.Config {
		return auth.Config{Store: store, Issuer: f.svc.Issuer(), BcryptCost: 4, Now: f.clock.Now, MFA: auth.MFAConfig{Key: newKey, OldKeys: old}}
	}
	rotated, err := auth.NewService(cfg([][]byte{mfaKey}))
	if err != nil {
		t.Fatal(err)
	}
	f.svc = rotated
	if _, err := rotated.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, 0)); err != nil {
		t.Fatalf("a secret under the old key: %v", err)
	}
	without, err := auth.NewService(cfg(nil))
	if err != nil {
		t.Fatal(err)
	}
	f.svc = without
	f.clock.Advance(totp.DefaultPeriod)
	_, err = without.VerifyMFA(ctx, client, f.challenge(t, client, "ann@example.com"), f.code(u, 0))
	if err == nil || errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("a secret under a dropped key: %v, want a configuration error", err)
	}
}

func TestNewServiceChecksMFAConfig(t *testing.T) {
	is := newIssuer(t, newClock())
	for name, mc := range map[string]auth.MFAConfig{
		"short key":      {Key: make([]byte, 16)},
		"empty key":      {Key: []byte{}},
		"bad old key":    {Key: mfaKey, OldKeys: [][]byte{{1}}},
		"negative ttl":   {Key: mfaKey, TokenTTL: -1},
		"store not mfa":  {Key: mfaKey, Store: nil},
		"negative fails": {Key: mfaKey, MaxFailures: -1},
	} {
		var st auth.Store = memory.NewAuthStore()
		if name == "store not mfa" {
			st = struct{ auth.Store }{st} // hides the MFA methods
		}
		_, err := auth.NewService(auth.Config{Store: st, Issuer: is, MFA: mc})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseMFAKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if got, err := auth.ParseMFAKey(" " + enc.EncodeToString(key) + "\n"); err != nil || !bytes.Equal(got, key) {
			t.Fatalf("ParseMFAKey: %v", err)
		}
	}
	for _, bad := range []string{"", "c2hvcnQ=", base64.StdEncoding.EncodeToString(make([]byte, 33)), "not base64 at all, not at all!!"} {
		_, err := auth.ParseMFAKey(bad)
		if err == nil || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Fatalf("ParseMFAKey(%q): %v", bad, err)
		}
	}
}

func TestParseRecoveryCode(t *testing.T) {
	for in, want := range map[string]string{
		"abcd-efgh-jkmn-pqrs":             "abcdefghjkmnpqrs",
		"ABCD EFGH JKMN PQRS":             "abcdefghjkmnpqrs",
		"0o1i-l000-0000-0000":             "0011100000000000",
		" abcdefghjkmnpqrs ":              "abcdefghjkmnpqrs",
		"a-b-c-d-e-f-g-h-j-k-m-n-p-q-r-s": "abcdefghjkmnpqrs",
	} {
		if got, err := auth.ParseRecoveryCode(in); err != nil || got != want {
			t.Errorf("ParseRecoveryCode(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "abcd", "abcd-efgh-jkmn-pqrsx", "abcd-efgh-jkmn-pqru", "abcd_efgh_jkmn_pqrs", "ａbcd-efgh-jkmn-pqrs", strings.Repeat("-", 100)} {
		if got, err := auth.ParseRecoveryCode(bad); !errors.Is(err, auth.ErrInvalidCode) || got != "" {
			t.Errorf("ParseRecoveryCode(%q) = %q, %v", bad, got, err)
		}
	}
}

// FuzzParseRecoveryCode: no panic; an accepted code is 16 characters of the alphabet,
// canonical (parsing it again gives itself), and the error never echoes the input.
func FuzzParseRecoveryCode(f *testing.F) {
	for _, s := range []string{"abcd-efgh-jkmn-pqrs", "ABCD EFGH JKMN PQRS", "0o1i-l000-0000-0000", "", "u"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := auth.ParseRecoveryCode(in)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidCode) || got != "" || (len(in) > 3 && strings.Contains(err.Error(), in)) {
				t.Fatalf("ParseRecoveryCode(%q) = %q, %v", in, got, err)
			}
			return
		}
		if len(got) != 16 || strings.Trim(got, "0123456789abcdefghjkmnpqrstvwxyz") != "" {
			t.Fatalf("ParseRecoveryCode(%q) = %q", in, got)
		}
		if again, err := auth.ParseRecoveryCode(got); err != nil || again != got {
			t.Fatalf("not canonical: %q", got)
		}
	})
}

// FuzzVerifyMFA sends arbitrary tokens and codes to VerifyMFA and VerifyMFARecovery: no
// panic, never a session, only the documented errors.
func FuzzVerifyMFA(f *testing.F) {
	fx := newFixture(f, withMFA)
	ctx := context.Background()
	res := fx.register(f, "ann@example.com")
	if _, err := fx.svc.EnrollTOTP(ctx, client, res.User.ID, goodPassword); err != nil {
		f.Fatal(err)
	}
	f.Add(strings.Repeat("A", 43), "123456")
	f.Add("", "")
	f.Add("x", "abcd-efgh-jkmn-pqrs")
	f.Fuzz(func(t *testing.T, token, code string) {
		for _, verify := range []func(context.Context, auth.Client, string, string) (auth.Result, error){fx.svc.VerifyMFA, fx.svc.VerifyMFARecovery} {
			r, err := verify(ctx, client, token, code)
			if err == nil || r.AccessToken != "" {
				t.Fatalf("verify(%q, %q) succeeded", token, code)
			}
			if !errors.Is(err, auth.ErrInvalidMFAToken) && !errors.Is(err, auth.ErrInvalidCode) && !errors.Is(err, auth.ErrTooManyAttempts) {
				t.Fatalf("verify(%q, %q): %v", token, code, err)
			}
		}
	})
}

// Enrolment asks for the password: a stolen access token alone cannot bind a second
// factor. Wrong passwords bind nothing and are throttled per user.
func TestEnrollTOTPNeedsThePassword(t *testing.T) {
	f := newFixture(t, withMFA)
	ctx := context.Background()
	reg := f.register(t, "ann@example.com")
	for range 5 {
		if _, err := f.svc.EnrollTOTP(ctx, client, reg.User.ID, "Wrong-Horse-9"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("EnrollTOTP with a wrong password: %v, want ErrInvalidCredentials", err)
		}
	}
	if info, err := f.svc.Export(ctx, reg.User.ID); err != nil || info.MFA.TOTPPending || info.MFA.TOTPEnabled {
		t.Fatalf("a wrong password left an enrolment: %+v %v", info.MFA, err)
	}
	var te *auth.ThrottledError
	if _, err := f.svc.EnrollTOTP(ctx, client, reg.User.ID, goodPassword); !errors.As(err, &te) {
		t.Fatalf("sixth attempt in the window: %v, want a *ThrottledError", err)
	}
}
