package auth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"golang.org/x/crypto/bcrypt"
)

const goodPassword = "Correct-Horse-9"

var client = auth.Client{IP: "192.0.2.10", UserAgent: "test/1"}

type fixture struct {
	svc   *auth.Service
	store auth.Store
	clock *fakeClock
}

func newFixture(t testing.TB, edit ...func(*auth.Config)) *fixture {
	t.Helper()
	clock := newClock()
	cfg := auth.Config{Store: memory.NewAuthStore(), Issuer: newIssuer(t, clock), BcryptCost: bcrypt.MinCost, Now: clock.Now}
	for _, e := range edit {
		e(&cfg)
	}
	svc, err := auth.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, store: cfg.Store, clock: clock}
}

// eachStore runs a service test on the memory store and, when NEXUS_TEST_POSTGRES is set,
// on a fresh PostgreSQL schema.
func eachStore(t *testing.T, test func(t *testing.T, useStore func(*auth.Config))) {
	t.Run("memory", func(t *testing.T) { test(t, func(*auth.Config) {}) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.New(t)
		test(t, func(c *auth.Config) { c.Store = postgres.NewAuthStore(db) })
	})
}

func (f *fixture) register(t testing.TB, email string) auth.Result {
	t.Helper()
	res, err := f.svc.Register(context.Background(), client, email, goodPassword, "Ann Example")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestNewServiceChecksConfig(t *testing.T) {
	is := newIssuer(t, newClock())
	for name, cfg := range map[string]auth.Config{
		"no store":       {Issuer: is},
		"no issuer":      {Store: memory.NewAuthStore()},
		"negative grace": {Store: memory.NewAuthStore(), Issuer: is, RefreshGrace: -1},
		"bad cost":       {Store: memory.NewAuthStore(), Issuer: is, BcryptCost: 99},
	} {
		if _, err := auth.NewService(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f := newFixture(t)
	if f.svc.Issuer() == nil || !slices.Equal(policyRules(f.svc.Policy()), policyRules(auth.DefaultPolicy())) {
		t.Error("zero Policy is not DefaultPolicy")
	}
}

func policyRules(p auth.Policy) []bool {
	return []bool{p.MinLength == 12, p.RequireUpper, p.RequireLower, p.RequireDigit, p.RequireSymbol}
}

func TestRegisterLoginRefreshLogout(t *testing.T) { eachStore(t, testRegisterLoginRefreshLogout) }

func testRegisterLoginRefreshLogout(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res := f.register(t, " Ann@Example.com ")
	if res.User.Email != "ann@example.com" || res.User.FullName != "Ann Example" || res.User.ID.Type() != ecoid.User {
		t.Fatalf("registered %+v", res.User)
	}
	claims, err := f.svc.Issuer().Verify(res.AccessToken, auth.AccessToken)
	if err != nil || claims.UserID != res.User.ID || claims.SessionID != res.SessionID {
		t.Fatalf("access token: %+v %v", claims, err)
	}
	if res.AccessExpiresAt.Sub(f.clock.Now()) != 15*time.Minute || res.RefreshExpiresAt.Sub(f.clock.Now()) != 7*24*time.Hour {
		t.Fatalf("expiries %v %v", res.AccessExpiresAt, res.RefreshExpiresAt)
	}
	if u, err := f.svc.UserByEmail(ctx, "ANN@example.com"); err != nil || u != res.User {
		t.Fatalf("UserByEmail: %+v %v", u, err)
	}
	if u, err := f.svc.UserByID(ctx, res.User.ID); err != nil || u != res.User {
		t.Fatalf("UserByID: %+v %v", u, err)
	}
	if _, err := f.svc.UserByEmail(ctx, "not an email"); !errors.Is(err, auth.ErrInvalidEmail) {
		t.Fatalf("UserByEmail(bad): %v", err)
	}

	login, err := f.svc.Login(ctx, client, "ANN@example.com", goodPassword)
	if err != nil || login.User != res.User || login.SessionID == res.SessionID {
		t.Fatalf("Login: %+v %v", login, err)
	}

	f.clock.Advance(time.Minute)
	pair, err := f.svc.Refresh(ctx, client, login.RefreshToken)
	if err != nil || pair.SessionID != login.SessionID || pair.RefreshToken == login.RefreshToken {
		t.Fatalf("Refresh: %+v %v", pair, err)
	}
	if _, err := f.svc.Refresh(ctx, client, pair.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("access token used to refresh: %v", err)
	}
	ac, _ := f.svc.Issuer().Verify(pair.AccessToken, auth.AccessToken)
	if err := f.svc.Logout(ctx, client, ac); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(ctx, client, ac); err != nil {
		t.Fatalf("second logout: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, client, pair.RefreshToken); !errors.Is(err, auth.ErrSessionRevoked) || !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("refresh after logout: %v", err)
	}
	// The first session is untouched by the second's logout.
	if _, err := f.svc.Refresh(ctx, client, res.RefreshToken); err != nil {
		t.Fatalf("other session: %v", err)
	}
}

func TestRegisterErrors(t *testing.T) { eachStore(t, testRegisterErrors) }

func testRegisterErrors(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	f.register(t, "taken@example.com")
	if _, err := f.svc.Register(ctx, client, "TAKEN@example.com", goodPassword, ""); !errors.Is(err, auth.ErrEmailTaken) {
		t.Errorf("taken: %v", err)
	}
	if _, err := f.svc.Register(ctx, client, "Ann <a@example.com>", goodPassword, ""); !errors.Is(err, auth.ErrInvalidEmail) {
		t.Errorf("display name: %v", err)
	}
	var pe *auth.PolicyError
	if _, err := f.svc.Register(ctx, client, "weak@example.com", "weak", ""); !errors.As(err, &pe) || len(pe.Failed) != 4 {
		t.Errorf("weak: %v", err)
	}
	long := strings.Repeat("Aa1!", 19) // 76 bytes
	if _, err := f.svc.Register(ctx, client, "long@example.com", long, ""); !errors.As(err, &pe) || !slices.Contains(pe.Failed, auth.RuleMaxBytes) {
		t.Errorf("over 72 bytes: %v", err)
	}
	if _, err := f.svc.Register(ctx, client, "name@example.com", goodPassword, strings.Repeat("n", 201)); !errors.Is(err, auth.ErrInvalidName) {
		t.Errorf("long name: %v", err)
	}
	for _, name := range []string{"A\x00B", "A\nB", "A\x1bB"} {
		if _, err := f.svc.Register(ctx, client, "ctl@example.com", goodPassword, name); !errors.Is(err, auth.ErrInvalidName) {
			t.Errorf("name %q: %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := f.svc.UserByEmail(ctx, "weak@example.com"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("refused registration stored a user: %v", err)
	}
}

func TestConcurrentRegistrationCreatesOneAccount(t *testing.T) {
	eachStore(t, testConcurrentRegistrationCreatesOneAccount)
}

func testConcurrentRegistrationCreatesOneAccount(t *testing.T, st func(*auth.Config)) {
	f := newFixture(t, st)
	const n = 32
	var ok, taken atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := "race@example.com"
			if i%2 == 1 {
				email = "RACE@example.com"
			}
			_, err := f.svc.Register(context.Background(), client, email, goodPassword, "")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, auth.ErrEmailTaken):
				taken.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || taken.Load() != n-1 {
		t.Fatalf("%d successes, %d ErrEmailTaken; want 1 and %d", ok.Load(), taken.Load(), n-1)
	}
}

func TestOnRegisterHook(t *testing.T) {
	ctx := context.Background()
	var seen []auth.User
	var mu sync.Mutex
	fail := errors.New("billing down")
	var failNext atomic.Bool
	f := newFixture(t, func(c *auth.Config) {
		c.OnRegister = func(_ context.Context, u auth.User) error {
			if failNext.Load() {
				return fail
			}
			mu.Lock()
			seen = append(seen, u)
			mu.Unlock()
			return nil
		}
	})
	res := f.register(t, "hook@example.com")
	if len(seen) != 1 || seen[0] != res.User {
		t.Fatalf("hook saw %+v", seen)
	}
	failNext.Store(true)
	if _, err := f.svc.Register(ctx, client, "second@example.com", goodPassword, ""); !errors.Is(err, fail) {
		t.Fatalf("hook error not returned: %v", err)
	}
	if _, err := f.svc.UserByEmail(ctx, "second@example.com"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("account kept after a failed hook: %v", err)
	}
	failNext.Store(false)
	f.register(t, "second@example.com") // a retry succeeds
}

func TestLoginErrorsAreIndistinguishable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "ann@example.com")
	_, unknown := f.svc.Login(ctx, client, "nobody@example.com", goodPassword)
	_, wrong := f.svc.Login(ctx, client, "ann@example.com", "Wrong-Horse-9")
	_, invalid := f.svc.Login(ctx, client, "not an email", goodPassword)
	_, long := f.svc.Login(ctx, client, "ann@example.com", strings.Repeat("x", 100))
	for _, err := range []error{unknown, wrong, invalid, long} {
		if err != auth.ErrInvalidCredentials {
			t.Errorf("login error %v, want exactly ErrInvalidCredentials", err)
		}
	}
}

func TestLoginThrottle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *auth.Config) { c.MaxLoginFailures = 3; c.LoginWindow = time.Minute })
	f.register(t, "ann@example.com")
	for range 3 {
		if _, err := f.svc.Login(ctx, client, "ann@example.com", "Wrong-Horse-9"); err != auth.ErrInvalidCredentials {
			t.Fatal(err)
		}
	}
	f.clock.Advance(20 * time.Second)
	_, err := f.svc.Login(ctx, client, "Ann@example.com", goodPassword) // even the right password
	var te *auth.ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, auth.ErrTooManyAttempts) || te.RetryAfter != 40*time.Second {
		t.Fatalf("4th attempt: %v", err)
	}
	if !strings.Contains(err.Error(), "retry after 40s") {
		t.Fatalf("message %q", err)
	}
	// Another email is not affected; unknown emails are throttled the same way.
	if _, err := f.svc.Login(ctx, client, "bob@example.com", goodPassword); err != auth.ErrInvalidCredentials {
		t.Fatalf("other email: %v", err)
	}
	f.clock.Advance(40 * time.Second)
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// Success resets the count.
	for range 2 {
		_, _ = f.svc.Login(ctx, client, "ann@example.com", "Wrong-Horse-9")
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); err != nil {
		t.Fatalf("two failures after a success throttled: %v", err)
	}
	acts, _ := f.svc.Activities(ctx, mustUser(t, f, "ann@example.com").ID, 0)
	if !slices.ContainsFunc(acts, func(a auth.Activity) bool { return a.Action == auth.ActionLogin && !a.Success }) {
		t.Fatal("failed logins are not in the activity log")
	}
}

func TestThrottleMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *auth.Config) { c.MaxLoginFailures = 1; c.ThrottleKeys = 4; c.LoginWindow = time.Minute })
	for i := range 6 {
		_, _ = f.svc.Login(ctx, client, fmt.Sprintf("u%d@example.com", i), "x")
		f.clock.Advance(time.Second)
	}
	// u0 and u1 were evicted to make room; u5 is still throttled.
	if _, err := f.svc.Login(ctx, client, "u0@example.com", "x"); err != auth.ErrInvalidCredentials {
		t.Fatalf("evicted key: %v", err)
	}
	if _, err := f.svc.Login(ctx, client, "u5@example.com", "x"); !errors.Is(err, auth.ErrTooManyAttempts) {
		t.Fatalf("recent key: %v", err)
	}
	f.clock.Advance(2 * time.Minute) // everything expires; the next insert sweeps
	_, _ = f.svc.Login(ctx, client, "new@example.com", "x")
	if _, err := f.svc.Login(ctx, client, "u5@example.com", "x"); err != auth.ErrInvalidCredentials {
		t.Fatalf("expired key: %v", err)
	}
}

func mustUser(t *testing.T, f *fixture, email string) auth.User {
	t.Helper()
	u, err := f.svc.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestLoginRehashesOldCost(t *testing.T) { eachStore(t, testLoginRehashesOldCost) }

func testLoginRehashesOldCost(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res := f.register(t, "ann@example.com")
	old, _ := bcrypt.GenerateFromPassword([]byte(goodPassword), bcrypt.MinCost+1)
	if err := f.store.SetPasswordHash(ctx, res.User.ID, string(old), f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); err != nil {
		t.Fatal(err)
	}
	h, _ := f.store.PasswordHash(ctx, res.User.ID)
	if c, _ := bcrypt.Cost([]byte(h)); c != bcrypt.MinCost {
		t.Fatalf("hash cost after login %d, want %d", c, bcrypt.MinCost)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); err != nil {
		t.Fatalf("login with the rehashed password: %v", err)
	}
}

func TestRefreshReuseRevokesSession(t *testing.T) { eachStore(t, testRefreshReuseRevokesSession) }

func testRefreshReuseRevokesSession(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res := f.register(t, "ann@example.com")
	p1, err := f.svc.Refresh(ctx, client, res.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := f.svc.Refresh(ctx, client, p1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	// An attacker replays the first, retired refresh token.
	if _, err := f.svc.Refresh(ctx, client, res.RefreshToken); !errors.Is(err, auth.ErrRefreshReuse) || !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("reuse: %v", err)
	}
	// The whole session is dead, including its newest refresh token.
	if _, err := f.svc.Refresh(ctx, client, p2.RefreshToken); !errors.Is(err, auth.ErrSessionRevoked) {
		t.Fatalf("newest token after reuse: %v", err)
	}
	sess, _ := f.store.Session(ctx, res.SessionID)
	if !sess.Revoked() {
		t.Fatal("session not revoked")
	}
	acts, _ := f.svc.Activities(ctx, res.User.ID, 0)
	if !slices.ContainsFunc(acts, func(a auth.Activity) bool { return a.Action == auth.ActionRefreshReuse }) {
		t.Fatal("reuse is not in the activity log")
	}
}

func TestConcurrentRefreshOfOneTokenRotatesOnce(t *testing.T) {
	eachStore(t, testConcurrentRefreshOfOneTokenRotatesOnce)
}

func testConcurrentRefreshOfOneTokenRotatesOnce(t *testing.T, st func(*auth.Config)) {
	f := newFixture(t, st)
	res := f.register(t, "ann@example.com")
	const n = 8
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.svc.Refresh(context.Background(), client, res.RefreshToken); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() > 1 {
		t.Fatalf("%d refreshes of one token succeeded", ok.Load())
	}
}

func TestRefreshGrace(t *testing.T) { eachStore(t, testRefreshGrace) }

func testRefreshGrace(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st, func(c *auth.Config) { c.RefreshGrace = 10 * time.Second })
	res := f.register(t, "ann@example.com")
	p1, err := f.svc.Refresh(ctx, client, res.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5 * time.Second)
	if _, err := f.svc.Refresh(ctx, client, res.RefreshToken); !errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, auth.ErrRefreshReuse) {
		t.Fatalf("within grace: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, client, p1.RefreshToken); err != nil {
		t.Fatalf("session revoked by a replay within grace: %v", err)
	}
	f.clock.Advance(20 * time.Second)
	if _, err := f.svc.Refresh(ctx, client, res.RefreshToken); !errors.Is(err, auth.ErrRefreshReuse) {
		t.Fatalf("after grace: %v", err)
	}
}

func TestRefreshRejectsForeignAndExpiredTokens(t *testing.T) {
	eachStore(t, testRefreshRejectsForeignAndExpiredTokens)
}

func testRefreshRejectsForeignAndExpiredTokens(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res := f.register(t, "ann@example.com")
	// A validly signed token for a session that does not exist.
	tok, _, _ := f.svc.Issuer().Issue(auth.RefreshToken, res.User.ID, ecoid.New(ecoid.Session))
	if _, err := f.svc.Refresh(ctx, client, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("unknown session: %v", err)
	}
	// A validly signed token naming another user for this session.
	tok, _, _ = f.svc.Issuer().Issue(auth.RefreshToken, ecoid.New(ecoid.User), res.SessionID)
	if _, err := f.svc.Refresh(ctx, client, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("other user: %v", err)
	}
	f.clock.Advance(7*24*time.Hour + auth.DefaultLeeway + time.Second)
	if _, err := f.svc.Refresh(ctx, client, res.RefreshToken); !errors.Is(err, auth.ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
}

func TestChangePasswordRevokesOtherSessions(t *testing.T) {
	eachStore(t, testChangePasswordRevokesOtherSessions)
}

func testChangePasswordRevokesOtherSessions(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res := f.register(t, "ann@example.com")
	other, _ := f.svc.Login(ctx, client, "ann@example.com", goodPassword)
	const next = "Brand-New-Pass-7"
	if err := f.svc.ChangePassword(ctx, client, res.User.ID, res.SessionID, "Wrong-Horse-9", next); err != auth.ErrInvalidCredentials {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, client, res.User.ID, res.SessionID, goodPassword, "weak"); !errors.Is(err, auth.ErrWeakPassword) {
		t.Fatalf("weak new password: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, client, ecoid.New(ecoid.User), "", goodPassword, next); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, client, res.User.ID, res.SessionID, goodPassword, next); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, client, other.RefreshToken); !errors.Is(err, auth.ErrSessionRevoked) {
		t.Fatalf("other session survived a password change: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, client, res.RefreshToken); err != nil {
		t.Fatalf("the kept session: %v", err)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); err != auth.ErrInvalidCredentials {
		t.Fatalf("old password still works: %v", err)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", next); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestProjectAccess(t *testing.T) { eachStore(t, testProjectAccess) }

func testProjectAccess(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	u := f.register(t, "ann@example.com").User
	prj := ecoid.New(ecoid.Project)
	if err := f.svc.CheckAccess(ctx, u.ID, prj, auth.RoleViewer); err != auth.ErrForbidden {
		t.Fatalf("no grant: %v", err)
	}
	if err := f.svc.GrantAccess(ctx, client, u.ID, prj, "root"); !errors.Is(err, auth.ErrInvalidRole) {
		t.Fatalf("bad role: %v", err)
	}
	if err := f.svc.GrantAccess(ctx, client, ecoid.New(ecoid.User), prj, auth.RoleViewer); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := f.svc.GrantAccess(ctx, client, u.ID, prj, auth.RoleMember); err != nil {
		t.Fatal(err)
	}
	for need, want := range map[auth.Role]error{auth.RoleViewer: nil, auth.RoleMember: nil, auth.RoleAdmin: auth.ErrForbidden, auth.RoleOwner: auth.ErrForbidden} {
		if err := f.svc.CheckAccess(ctx, u.ID, prj, need); err != want {
			t.Errorf("member needs %s: %v, want %v", need, err, want)
		}
	}
	if err := f.svc.RevokeAccess(ctx, client, u.ID, prj); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.CheckAccess(ctx, u.ID, prj, auth.RoleViewer); err != auth.ErrForbidden {
		t.Fatalf("after revoke: %v", err)
	}
	if auth.Role("x").Satisfies(auth.Role("x")) || !auth.RoleOwner.Satisfies(auth.RoleAdmin) {
		t.Fatal("Satisfies")
	}
}

// TestActivityLogHasNoSecrets runs every logged action and checks that no password,
// token or hash reaches the log.
func TestActivityLogHasNoSecrets(t *testing.T) { eachStore(t, testActivityLogHasNoSecrets) }

func testActivityLogHasNoSecrets(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res := f.register(t, "ann@example.com")
	_, _ = f.svc.Login(ctx, client, "ann@example.com", "Wrong-Horse-9")
	login, _ := f.svc.Login(ctx, client, "ann@example.com", goodPassword)
	p, _ := f.svc.Refresh(ctx, client, login.RefreshToken)
	_, _ = f.svc.Refresh(ctx, client, login.RefreshToken) // reuse
	ac, _ := f.svc.Issuer().Verify(res.AccessToken, auth.AccessToken)
	_ = f.svc.Logout(ctx, client, ac)
	hash, _ := f.store.PasswordHash(ctx, res.User.ID)
	acts, err := f.svc.Activities(ctx, res.User.ID, 0)
	if err != nil || len(acts) < 6 {
		t.Fatalf("activities: %d %v", len(acts), err)
	}
	secrets := []string{goodPassword, "Wrong-Horse-9", hash, res.AccessToken, res.RefreshToken, login.RefreshToken, p.RefreshToken, ac.ID}
	for _, a := range acts {
		s := fmt.Sprintf("%+v", a)
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Fatalf("activity %s holds a secret", s)
			}
		}
		if a.IP != client.IP || a.UserAgent != client.UserAgent || a.ID.Type() != ecoid.Event || a.At.IsZero() {
			t.Fatalf("activity %+v lacks who/where/when", a)
		}
	}
}
