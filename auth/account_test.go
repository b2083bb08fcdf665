package auth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/auth/totp"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/mail"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
	"golang.org/x/crypto/bcrypt"
)

const newPassword = "Another-Good-Pass-7"

// lockedClock is the shared test clock, safe for the Service's background mail jobs.
type lockedClock = storagetest.Clock

// inbox is a Mailer that keeps what it is given.
type inbox struct {
	ch   chan mail.Message
	fail error
}

func newInbox() *inbox { return &inbox{ch: make(chan mail.Message, 100)} }

func (b *inbox) Send(_ context.Context, m mail.Message) error {
	if b.fail != nil {
		return b.fail
	}
	b.ch <- m
	return nil
}

func (b *inbox) next(t *testing.T) mail.Message {
	t.Helper()
	select {
	case m := <-b.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail arrived")
		return mail.Message{}
	}
}

func (b *inbox) empty(t *testing.T, svc *auth.Service) {
	t.Helper()
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-b.ch:
		t.Fatalf("unexpected mail to %s: %s", m.To, m.Subject)
	default:
	}
}

var linkRE = regexp.MustCompile(`(https?://\S+)\?token=([A-Za-z0-9_-]+)`)

// tokenIn returns the link's base and token.
func tokenIn(t *testing.T, m mail.Message) (string, string) {
	t.Helper()
	sub := linkRE.FindStringSubmatch(m.Text)
	if sub == nil {
		t.Fatalf("no link in %q", m.Text)
	}
	return sub[1], sub[2]
}

type acctFixture struct {
	svc   *auth.Service
	store auth.Store
	clock *lockedClock
	mail  *inbox
}

func newAcct(t testing.TB, edit ...func(*auth.Config)) *acctFixture {
	t.Helper()
	clock := storagetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	is, err := auth.NewIssuer(auth.IssuerConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	box := newInbox()
	cfg := auth.Config{
		Store: memory.NewAuthStore(), Issuer: is, BcryptCost: bcrypt.MinCost, Now: clock.Now,
		Account: auth.AccountConfig{Mailer: box, PublicURL: "https://app.example.com/"},
	}
	for _, e := range edit {
		e(&cfg)
	}
	svc, err := auth.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return &acctFixture{svc: svc, store: cfg.Store, clock: clock, mail: box}
}

func (f *acctFixture) register(t testing.TB, email string) auth.Result {
	t.Helper()
	res, err := f.svc.Register(context.Background(), client, email, goodPassword, "Ann Example")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// verifyToken sends a verification mail and returns its token.
func (f *acctFixture) verifyToken(t *testing.T, u auth.User) string {
	t.Helper()
	if err := f.svc.SendVerification(context.Background(), client, u.ID); err != nil {
		t.Fatal(err)
	}
	_, tok := tokenIn(t, f.mail.next(t))
	return tok
}

// resetToken asks for a reset mail and returns its token.
func (f *acctFixture) resetToken(t *testing.T, email string) string {
	t.Helper()
	if err := f.svc.ForgotPassword(context.Background(), client, email); err != nil {
		t.Fatal(err)
	}
	_, tok := tokenIn(t, f.mail.next(t))
	return tok
}

func TestNewServiceChecksAccountConfig(t *testing.T) {
	for name, ac := range map[string]auth.AccountConfig{
		"relative URL":   {PublicURL: "app.example.com"},
		"ftp URL":        {PublicURL: "ftp://app.example.com"},
		"query in URL":   {PublicURL: "https://app.example.com/?a=1"},
		"path no slash":  {VerifyEmailPath: "verify"},
		"path query":     {ResetPasswordPath: "/reset?x=1"},
		"negative TTL":   {ResetPasswordTTL: -time.Second},
		"negative slots": {MailJobs: -1},
	} {
		_, err := auth.NewService(auth.Config{Store: memory.NewAuthStore(), Issuer: newIssuer(t, newClock()), Account: ac})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVerifyEmail(t *testing.T) { eachStore(t, testVerifyEmail) }

func testVerifyEmail(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newAcct(t, st)
	u := f.register(t, "ann@example.com").User
	if u.EmailVerified {
		t.Fatal("registered as verified")
	}
	if err := f.svc.SendVerification(ctx, client, u.ID); err != nil {
		t.Fatal(err)
	}
	m := f.mail.next(t)
	base, tok := tokenIn(t, m)
	if m.To != "ann@example.com" || base != "https://app.example.com/verify-email" {
		t.Fatalf("mail to %q with link %q", m.To, base)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) < 16 {
		t.Fatalf("token %q carries %d bytes, want at least 128 bits", tok, len(raw))
	}
	got, err := f.svc.VerifyEmail(ctx, client, tok)
	if err != nil || !got.EmailVerified || got.ID != u.ID {
		t.Fatalf("VerifyEmail = %+v, %v", got, err)
	}
	if got, _ := f.svc.UserByID(ctx, u.ID); !got.EmailVerified {
		t.Fatal("verification not stored")
	}
	if _, err := f.svc.VerifyEmail(ctx, client, tok); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("second use = %v, want ErrInvalidOneTimeToken", err)
	}
	if err := f.svc.SendVerification(ctx, client, u.ID); !errors.Is(err, auth.ErrAlreadyVerified) {
		t.Fatalf("SendVerification when verified = %v", err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("A", 43), strings.Repeat("*", 43), tok + "A"} {
		if _, err := f.svc.VerifyEmail(ctx, client, bad); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
}

func TestMailDisabled(t *testing.T) {
	f := newAcct(t, func(c *auth.Config) { c.Account.Mailer = nil })
	u := f.register(t, "ann@example.com").User
	if err := f.svc.SendVerification(context.Background(), client, u.ID); !errors.Is(err, auth.ErrMailDisabled) {
		t.Fatalf("SendVerification = %v, want ErrMailDisabled", err)
	}
	if err := f.svc.ForgotPassword(context.Background(), client, "ann@example.com"); err != nil {
		t.Fatalf("ForgotPassword without mail = %v, want nil as always", err)
	}
	if f.svc.MailEnabled() {
		t.Fatal("MailEnabled without a Mailer")
	}
}

func TestOneTimeTokensArePurposeBound(t *testing.T) {
	ctx := context.Background()
	f := newAcct(t)
	u := f.register(t, "ann@example.com").User
	verify := f.verifyToken(t, u)
	if _, err := f.svc.ResetPassword(ctx, client, verify, newPassword); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("a verification token reset the password: %v", err)
	}
	reset := f.resetToken(t, u.Email)
	if _, err := f.svc.VerifyEmail(ctx, client, reset); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("a reset token verified the email: %v", err)
	}
	if _, err := f.svc.VerifyEmail(ctx, client, verify); err != nil {
		t.Fatalf("the verification token no longer works: %v", err)
	}
	if _, err := f.svc.ResetPassword(ctx, client, reset, newPassword); err != nil {
		t.Fatalf("the reset token no longer works: %v", err)
	}
}

func TestOneTimeTokensExpire(t *testing.T) {
	ctx := context.Background()
	f := newAcct(t)
	u := f.register(t, "ann@example.com").User
	verify := f.verifyToken(t, u)
	reset := f.resetToken(t, u.Email)
	_ = f.svc.Close(ctx)
	f.clock.Advance(time.Hour)
	if _, err := f.svc.ResetPassword(ctx, client, reset, newPassword); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("reset token after 1 h = %v, want ErrInvalidOneTimeToken", err)
	}
	f.clock.Advance(23*time.Hour - time.Second)
	if _, err := f.svc.VerifyEmail(ctx, client, verify); err != nil {
		t.Fatalf("verification token before 24 h = %v", err)
	}
	f2 := newAcct(t)
	u2 := f2.register(t, "bob@example.com").User
	late := f2.verifyToken(t, u2)
	_ = f2.svc.Close(ctx)
	f2.clock.Advance(24 * time.Hour)
	if _, err := f2.svc.VerifyEmail(ctx, client, late); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("verification token after 24 h = %v, want ErrInvalidOneTimeToken", err)
	}
}

func TestResetPassword(t *testing.T) { eachStore(t, testResetPassword) }

func testResetPassword(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newAcct(t, st)
	first := f.register(t, "ann@example.com")
	second, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.ForgotPassword(ctx, client, "  ANN@example.com "); err != nil {
		t.Fatal(err)
	}
	m := f.mail.next(t)
	base, tok := tokenIn(t, m)
	if m.To != "ann@example.com" || base != "https://app.example.com/reset-password" {
		t.Fatalf("mail to %q, link %q", m.To, base)
	}
	var pe *auth.PolicyError
	if _, err := f.svc.ResetPassword(ctx, client, tok, "weak"); !errors.As(err, &pe) {
		t.Fatalf("weak password = %v, want a PolicyError", err)
	}
	u, err := f.svc.ResetPassword(ctx, client, tok, newPassword)
	if err != nil {
		t.Fatalf("reset after a weak try = %v (the link must survive a refused password)", err)
	}
	if !u.EmailVerified {
		t.Error("the reset link reached the mailbox, but the email is not verified")
	}
	for i, r := range []auth.Result{first, second} {
		if _, err := f.svc.Refresh(ctx, client, r.RefreshToken); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Errorf("session %d after reset: refresh = %v, want ErrSessionRevoked", i, err)
		}
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("old password after reset = %v", err)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", newPassword); err != nil {
		t.Fatalf("new password after reset = %v", err)
	}
	if _, err := f.svc.ResetPassword(ctx, client, tok, "Yet-Another-Pass-5"); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("reset token reused = %v, want ErrInvalidOneTimeToken", err)
	}
}

func TestResetTokenRedeemsOnceUnderConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, st func(*auth.Config)) {
		f := newAcct(t, st)
		f.register(t, "ann@example.com")
		tok := f.resetToken(t, "ann@example.com")
		const n = 12
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = f.svc.ResetPassword(context.Background(), client, tok, newPassword)
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, auth.ErrInvalidOneTimeToken):
				t.Errorf("concurrent reset: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d concurrent resets with one token succeeded, want 1", ok, n)
		}
	})
}

func TestNewerResetLinkReplacesOlder(t *testing.T) {
	f := newAcct(t)
	f.register(t, "ann@example.com")
	old := f.resetToken(t, "ann@example.com")
	fresh := f.resetToken(t, "ann@example.com")
	if _, err := f.svc.ResetPassword(context.Background(), client, old, newPassword); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("older link = %v", err)
	}
	if _, err := f.svc.ResetPassword(context.Background(), client, fresh, newPassword); err != nil {
		t.Fatal(err)
	}
}

// blockingStore holds every UserByEmail until release is closed.
type blockingStore struct {
	auth.Store
	release chan struct{}
}

func (s *blockingStore) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	<-s.release
	return s.Store.UserByEmail(ctx, email)
}

// blockingMailer holds every Send until release is closed.
type blockingMailer struct {
	*inbox
	release chan struct{}
}

func (m blockingMailer) Send(ctx context.Context, msg mail.Message) error {
	<-m.release
	return m.inbox.Send(ctx, msg)
}

// TestForgotPasswordDoesTheSameWorkForEveryEmail checks the mechanism that keeps
// enumeration by timing out: ForgotPassword answers before looking the address up or
// mailing anything, so its answer cannot depend on whether the account exists. (The
// timing itself is measured by BenchmarkForgotPassword, not asserted.)
func TestForgotPasswordDoesTheSameWorkForEveryEmail(t *testing.T) {
	release := make(chan struct{})
	box := newInbox()
	f := newAcct(t, func(c *auth.Config) {
		c.Store = &blockingStore{Store: c.Store, release: release}
		c.Account.Mailer = blockingMailer{box, release}
	})
	u := auth.User{ID: ecoid.New(ecoid.User), Email: "known@example.com", CreatedAt: f.clock.Now()}
	if err := f.store.CreateUser(context.Background(), u, "h"); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"known@example.com", "unknown@example.com"} {
		done := make(chan error, 1)
		go func() { done <- f.svc.ForgotPassword(context.Background(), client, email) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", email, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ForgotPassword(%s) waited for the account lookup or the mailer", email)
		}
	}
	if err := f.svc.ForgotPassword(context.Background(), client, "not an email"); !errors.Is(err, auth.ErrInvalidEmail) {
		t.Fatalf("bad email = %v", err)
	}
	close(release)
	if m := box.next(t); m.To != "known@example.com" {
		t.Fatalf("mail to %s", m.To)
	}
	box.empty(t, f.svc) // nothing for the unknown address
}

func TestChangePasswordRenew(t *testing.T) { eachStore(t, testChangePasswordRenew) }

func testChangePasswordRenew(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newAcct(t, st)
	this := f.register(t, "ann@example.com")
	other, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	reset := f.resetToken(t, "ann@example.com")
	claims, err := f.svc.Issuer().Verify(this.AccessToken, auth.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ChangePasswordRenew(ctx, client, claims, "wrong-password", newPassword); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong current password = %v", err)
	}
	var pe *auth.PolicyError
	if _, err := f.svc.ChangePasswordRenew(ctx, client, claims, goodPassword, "weak"); !errors.As(err, &pe) {
		t.Fatalf("weak new password = %v", err)
	}
	tokens, err := f.svc.ChangePasswordRenew(ctx, client, claims, goodPassword, newPassword)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]string{"this": this.RefreshToken, "other": other.RefreshToken} {
		if _, err := f.svc.Refresh(ctx, client, r); !errors.Is(err, auth.ErrSessionRevoked) {
			t.Errorf("%s session's old refresh token = %v, want ErrSessionRevoked", name, err)
		}
	}
	if _, err := f.svc.Refresh(ctx, client, tokens.RefreshToken); err != nil {
		t.Fatalf("the new pair does not refresh: %v", err)
	}
	if _, err := f.svc.ResetPassword(ctx, client, reset, "Third-Good-Pass-3"); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("a reset link from before the change = %v", err)
	}
}

func TestProfileAndSessions(t *testing.T) { eachStore(t, testProfileAndSessions) }

func testProfileAndSessions(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newAcct(t, st)
	ann := f.register(t, "ann@example.com")
	laptop, err := f.svc.Login(ctx, auth.Client{IP: "198.51.100.4", UserAgent: "laptop"}, "ann@example.com", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	bob := f.register(t, "bob@example.com")

	u, err := f.svc.UpdateProfile(ctx, client, ann.User.ID, "  Ann Renamed  ")
	if err != nil || u.FullName != "Ann Renamed" || u.Email != "ann@example.com" {
		t.Fatalf("UpdateProfile = %+v, %v", u, err)
	}
	if _, err := f.svc.UpdateProfile(ctx, client, ann.User.ID, "bad\x00name"); !errors.Is(err, auth.ErrInvalidName) {
		t.Fatalf("control character = %v", err)
	}
	if _, err := f.svc.UpdateProfile(ctx, client, ann.User.ID, strings.Repeat("é", auth.MaxNameLength+1)); !errors.Is(err, auth.ErrInvalidName) {
		t.Fatalf("long name = %v", err)
	}
	for _, spoof := range []string{"Ann‮gnp.exe", "⁦admin⁩", "x‪y"} {
		if _, err := f.svc.UpdateProfile(ctx, client, ann.User.ID, spoof); !errors.Is(err, auth.ErrInvalidName) {
			t.Fatalf("bidirectional control in %q = %v", spoof, err)
		}
	}
	for _, fine := range []string{"محمد‌رضا", "👩‍💻 Ann"} { // ZWNJ in Persian; a ZWJ emoji
		if _, err := f.svc.UpdateProfile(ctx, client, ann.User.ID, fine); err != nil {
			t.Fatalf("UpdateProfile(%q) = %v", fine, err)
		}
	}
	if _, err := f.svc.Register(ctx, client, "eve@example.com", goodPassword, "Eve‮"); !errors.Is(err, auth.ErrInvalidName) {
		t.Fatalf("Register with a bidirectional override = %v", err)
	}

	sessions, err := f.svc.Sessions(ctx, ann.User.ID, ann.SessionID)
	if err != nil || len(sessions) != 2 {
		t.Fatalf("Sessions = %+v, %v", sessions, err)
	}
	for _, s := range sessions {
		if s.Current != (s.ID == ann.SessionID) {
			t.Errorf("session %s current=%v", s.ID, s.Current)
		}
		if s.ID == laptop.SessionID && (s.IP != "198.51.100.4" || s.UserAgent != "laptop") {
			t.Errorf("laptop session %+v", s)
		}
	}
	if err := f.svc.RevokeUserSession(ctx, client, bob.User.ID, laptop.SessionID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("revoking another user's session = %v, want ErrNotFound", err)
	}
	if err := f.svc.RevokeUserSession(ctx, client, ann.User.ID, ecoid.New(ecoid.Session)); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("revoking an unknown session = %v, want ErrNotFound", err)
	}
	if _, err := f.svc.Refresh(ctx, client, laptop.RefreshToken); err != nil {
		t.Fatalf("a refused revocation revoked: %v", err)
	}
	if err := f.svc.RevokeUserSession(ctx, client, ann.User.ID, laptop.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, client, laptop.RefreshToken); !errors.Is(err, auth.ErrSessionRevoked) {
		t.Fatalf("revoked session refreshes: %v", err)
	}
	if sessions, _ := f.svc.Sessions(ctx, ann.User.ID, ann.SessionID); len(sessions) != 1 || sessions[0].ID != ann.SessionID {
		t.Fatalf("live sessions after revoke = %+v", sessions)
	}
}

func TestAccountActivitiesIncludeFailures(t *testing.T) {
	ctx := context.Background()
	f := newAcct(t, func(c *auth.Config) { c.MaxLoginFailures = 2 })
	ann := f.register(t, "ann@example.com")
	for range 3 {
		_, _ = f.svc.Login(ctx, client, "ann@example.com", "wrong")
	}
	f.register(t, "bob@example.com")
	_, _ = f.svc.Login(ctx, client, "bob@example.com", "wrong")
	acts, err := f.svc.AccountActivities(ctx, ann.User.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	failed := map[auth.Action]int{}
	for _, a := range acts {
		if a.Email != "" && a.Email != "ann@example.com" {
			t.Fatalf("another account's entry: %+v", a)
		}
		if !a.Success {
			failed[a.Action]++
		}
	}
	if failed[auth.ActionLogin] < 2 || failed[auth.ActionLoginThrottled]+failed[auth.ActionLogin] < 3 {
		t.Fatalf("failures in the log: %v (entries %+v)", failed, acts)
	}
	if got, _ := f.svc.AccountActivities(ctx, ann.User.ID, 1); len(got) != 1 {
		t.Fatalf("limit 1 gave %d", len(got))
	}
	for _, bad := range []int{-1, auth.MaxActivityLimit + 1} {
		if _, err := f.svc.AccountActivities(ctx, ann.User.ID, bad); !errors.Is(err, auth.ErrInvalidLimit) {
			t.Errorf("limit %d = %v", bad, err)
		}
	}
}

func TestExportHoldsNoSecrets(t *testing.T) { eachStore(t, testExportHoldsNoSecrets) }

func testExportHoldsNoSecrets(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	mfaKey := bytes.Repeat([]byte{7}, auth.MFAKeySize)
	f := newAcct(t, st, func(c *auth.Config) { c.MFA.Key = mfaKey })
	ann := f.register(t, "ann@example.com")
	login, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := f.svc.EnrollTOTP(ctx, client, ann.User.ID, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := totp.DecodeSecret(enr.Secret)
	if err != nil {
		t.Fatal(err)
	}
	var p totp.Params
	recovery, err := f.svc.ConfirmTOTP(ctx, client, ann.User.ID, p.Code(secret, p.Step(f.clock.Now())))
	if err != nil {
		t.Fatal(err)
	}
	verify := f.verifyToken(t, ann.User)
	reset := f.resetToken(t, "ann@example.com")
	prj := ecoid.New(ecoid.Project)
	if err := f.svc.GrantAccess(ctx, client, ann.User.ID, prj, auth.RoleMember); err != nil {
		t.Fatal(err)
	}
	_ = f.svc.Close(ctx)

	exp, err := f.svc.Export(ctx, ann.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	if exp.User.Email != "ann@example.com" || len(exp.Sessions) != 2 || len(exp.ProjectAccess) != 1 ||
		len(exp.PendingLinks) != 2 || len(exp.Activity) == 0 || !exp.MFA.TOTPEnabled || exp.MFA.RecoveryCodesLeft != len(recovery) {
		t.Fatalf("export incomplete: %+v", exp)
	}
	raw, err := json.Marshal(exp)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := f.store.PasswordHash(ctx, ann.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"password": goodPassword, "password hash": hash, "bcrypt prefix": "$2a$",
		"access token": ann.AccessToken, "refresh token": ann.RefreshToken, "login refresh": login.RefreshToken,
		"verify token": verify, "reset token": reset, "totp secret": enr.Secret, "otpauth URL": enr.URL,
		"totp secret hex": hex.EncodeToString(secret), "mfa key b64": base64.StdEncoding.EncodeToString(mfaKey),
	}
	for i, rc := range recovery {
		secrets["recovery code "+string(rune('a'+i))] = rc
	}
	sessions, _ := f.store.UserSessions(ctx, ann.User.ID)
	toks, _ := f.store.OneTimeTokens(ctx, ann.User.ID)
	var hashes [][]byte
	for _, s := range sessions {
		hashes = append(hashes, s.RefreshHash)
	}
	for _, tk := range toks {
		hashes = append(hashes, tk.Hash)
	}
	for i, h := range hashes {
		secrets["hash hex "+string(rune('a'+i))] = hex.EncodeToString(h)
		secrets["hash b64 "+string(rune('a'+i))] = base64.StdEncoding.EncodeToString(h)
	}
	for name, s := range secrets {
		if strings.Contains(string(raw), s) {
			t.Errorf("export contains the %s", name)
		}
	}
	for _, field := range []string{`"hash":`, `"token":`, `"refresh_hash":`, `"password":`, `"password_hash":`} {
		if strings.Contains(string(raw), field) {
			t.Errorf("export has a field %s", field)
		}
	}
}

func TestDeleteAccount(t *testing.T) { eachStore(t, testDeleteAccount) }

func testDeleteAccount(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	hookErr := error(nil)
	var erased []auth.User
	f := newAcct(t, st, func(c *auth.Config) {
		c.Account.OnErase = func(_ context.Context, u auth.User) error {
			if hookErr != nil {
				return hookErr
			}
			erased = append(erased, u)
			return nil
		}
	})
	ann := f.register(t, "ann@example.com")
	reset := f.resetToken(t, "ann@example.com")
	_ = f.svc.Close(ctx)

	if err := f.svc.DeleteAccount(ctx, client, ann.User.ID, "wrong"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password = %v", err)
	}
	hookErr = errors.New("stripe down")
	if err := f.svc.DeleteAccount(ctx, client, ann.User.ID, goodPassword); !errors.Is(err, hookErr) {
		t.Fatalf("failing hook = %v", err)
	}
	if _, err := f.svc.UserByID(ctx, ann.User.ID); err != nil {
		t.Fatalf("wrong password or a failed hook erased something: %v", err)
	}
	hookErr = nil
	if err := f.svc.DeleteAccount(ctx, client, ann.User.ID, goodPassword); err != nil {
		t.Fatal(err)
	}
	if len(erased) != 1 || erased[0].ID != ann.User.ID {
		t.Fatalf("OnErase ran for %+v", erased)
	}
	// No way back in.
	if _, err := f.svc.Login(ctx, client, "ann@example.com", goodPassword); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("old password = %v", err)
	}
	if _, err := f.svc.Refresh(ctx, client, ann.RefreshToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("old refresh token = %v", err)
	}
	if _, err := f.svc.ResetPassword(ctx, client, reset, newPassword); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Errorf("old reset token = %v", err)
	}
	if _, err := f.svc.UserByID(ctx, ann.User.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("user after erasure = %v", err)
	}
	left, _ := f.store.Activities(ctx, ann.User.ID, 100)
	if len(left) != 1 || left[0].Action != auth.ActionAccountErase || left[0].Email != "" || left[0].IP != "" || left[0].UserAgent != "" {
		t.Errorf("log after erasure = %+v, want one bare erasure record", left)
	}
	again := f.register(t, "ann@example.com")
	if again.User.ID == ann.User.ID || again.User.EmailVerified {
		t.Fatalf("re-registration %+v", again.User)
	}
	acts, _ := f.svc.AccountActivities(ctx, again.User.ID, 100)
	for _, a := range acts {
		if a.UserID == ann.User.ID || a.Action == auth.ActionPasswordResetRequest {
			t.Fatalf("the new account sees the erased one's log: %+v", a)
		}
	}
	if err := f.svc.DeleteAccount(ctx, client, ann.User.ID, goodPassword); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleting an erased account = %v", err)
	}
}

func TestMailFailureIsRecorded(t *testing.T) {
	f := newAcct(t)
	f.mail.fail = errors.New("smtp: 451 try later")
	u := f.register(t, "ann@example.com").User
	if err := f.svc.SendVerification(context.Background(), client, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	acts, _ := f.svc.AccountActivities(context.Background(), u.ID, 10)
	if len(acts) == 0 || acts[0].Action != auth.ActionEmailVerifySend || acts[0].Success {
		t.Fatalf("log %+v, want a failed email_verify_send first", acts)
	}
	if err := f.svc.SendVerification(context.Background(), client, u.ID); err == nil {
		t.Fatal("SendVerification after Close accepted")
	}
}

func throttled(t *testing.T, what string, err error) {
	t.Helper()
	var te *auth.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("%s = %v, want a *ThrottledError", what, err)
	}
}

func TestForgotPasswordIsThrottledAlikeForEveryEmail(t *testing.T) {
	ctx := context.Background()
	f := newAcct(t)
	f.register(t, "known@example.com")
	for _, email := range []string{"known@example.com", "unknown@example.com"} {
		for i := range 5 {
			if err := f.svc.ForgotPassword(ctx, client, email); err != nil {
				t.Fatalf("%s call %d: %v", email, i+1, err)
			}
		}
		throttled(t, "6th forgot for "+email, f.svc.ForgotPassword(ctx, client, email))
	}
	// Per client network: 20 per hour across addresses, IPv6 counted by /64.
	g := newAcct(t)
	v6 := func(host string) auth.Client { return auth.Client{IP: "2001:db8:1:2::" + host} }
	for i := range 20 {
		if err := g.svc.ForgotPassword(ctx, v6(strings.Repeat("a", i%4+1)), "user"+string(rune('a'+i))+"@example.com"); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	throttled(t, "21st forgot from one /64", g.svc.ForgotPassword(ctx, v6("ffff"), "other@example.com"))
	if err := g.svc.ForgotPassword(ctx, auth.Client{IP: "2001:db8:9::1"}, "other@example.com"); err != nil {
		t.Fatalf("another network is throttled too: %v", err)
	}
}

func TestTokenRedemptionIsThrottledPerClient(t *testing.T) {
	ctx := context.Background()
	f := newAcct(t)
	bad := strings.Repeat("A", 43)
	for range 30 {
		if _, err := f.svc.ResetPassword(ctx, client, bad, newPassword); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
			t.Fatal(err)
		}
	}
	_, err := f.svc.VerifyEmail(ctx, client, bad)
	throttled(t, "31st redemption", err)
	if _, err := f.svc.VerifyEmail(ctx, auth.Client{IP: "198.51.100.1"}, bad); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
		t.Fatalf("another client = %v", err)
	}
}

func TestPasswordChecksAreThrottledPerUser(t *testing.T) {
	ctx := context.Background()
	f := newAcct(t)
	ann := f.register(t, "ann@example.com")
	claims, _ := f.svc.Issuer().Verify(ann.AccessToken, auth.AccessToken)
	for range 3 {
		if err := f.svc.DeleteAccount(ctx, client, ann.User.ID, "guess"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := f.svc.ChangePasswordRenew(ctx, client, claims, "guess", newPassword); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	throttled(t, "6th password check", f.svc.DeleteAccount(ctx, client, ann.User.ID, goodPassword))
	if _, err := f.svc.UserByID(ctx, ann.User.ID); err != nil {
		t.Fatalf("a throttled erasure erased: %v", err)
	}
}

func TestSendVerificationIsThrottledPerUser(t *testing.T) {
	f := newAcct(t)
	u := f.register(t, "ann@example.com").User
	for range 5 {
		f.verifyToken(t, u)
	}
	throttled(t, "6th verification mail", f.svc.SendVerification(context.Background(), client, u.ID))
}

// TestResetKeepsTheSecondFactor: a reset link proves the mailbox, not the second factor,
// so a user with TOTP on still needs a code after resetting the password.
func TestResetKeepsTheSecondFactor(t *testing.T) {
	ctx := context.Background()
	f := newAcct(t, func(c *auth.Config) { c.MFA.Key = bytes.Repeat([]byte{9}, auth.MFAKeySize) })
	ann := f.register(t, "ann@example.com")
	enr, err := f.svc.EnrollTOTP(ctx, client, ann.User.ID, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := totp.DecodeSecret(enr.Secret)
	var p totp.Params
	if _, err := f.svc.ConfirmTOTP(ctx, client, ann.User.ID, p.Code(secret, p.Step(f.clock.Now()))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ResetPassword(ctx, client, f.resetToken(t, "ann@example.com"), newPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", newPassword); !errors.Is(err, auth.ErrMFARequired) {
		t.Fatalf("login after reset = %v, want ErrMFARequired", err)
	}
	if on, _ := f.svc.MFAEnabled(ctx, ann.User.ID); !on {
		t.Fatal("reset turned TOTP off")
	}
}
