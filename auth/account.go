package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/safetext"
	"github.com/nexus-ecosystem/nexus/mail"
)

// Account errors.
var (
	// ErrMailDisabled means an action must send mail but the Service has no Mailer.
	ErrMailDisabled = errors.New("auth: mail is not configured")
	// ErrAlreadyVerified means the user's email is verified already.
	ErrAlreadyVerified = errors.New("auth: email already verified")
	// ErrInvalidLimit means a page size is outside 1..MaxActivityLimit.
	ErrInvalidLimit = errors.New("auth: invalid limit")
)

// The actions of the account features in the activity log.
const (
	ActionEmailVerifySend      Action = "email_verify_send"
	ActionEmailVerify          Action = "email_verify"
	ActionPasswordResetRequest Action = "password_reset_request"
	ActionPasswordReset        Action = "password_reset"
	ActionProfileUpdate        Action = "profile_update"
	ActionSessionRevoke        Action = "session_revoke"
	ActionAccountErase         Action = "account_erase"
)

// Account defaults.
const (
	// DefaultPublicURL is where links in mail point when AccountConfig.PublicURL is empty.
	DefaultPublicURL = "http://127.0.0.1:8080"
	// DefaultVerifyEmailPath and DefaultResetPasswordPath are the paths of those links.
	DefaultVerifyEmailPath   = "/verify-email"
	DefaultResetPasswordPath = "/reset-password"
	// DefaultMailJobs bounds the mail deliveries running in the background at once.
	DefaultMailJobs = 64
	// DefaultActivityLimit is the page size of AccountActivities for limit 0; larger
	// than MaxActivityLimit is ErrInvalidLimit.
	DefaultActivityLimit = 50
	MaxActivityLimit     = 1000
	// MaxExportActivities bounds the activity entries Export returns (the newest).
	MaxExportActivities = 100_000
)

// mailTimeout bounds one background delivery.
const mailTimeout = time.Minute

// AccountStore keeps what the account features need besides users and sessions:
// one-time tokens, email verification, profile updates, listings and erasure.
type AccountStore interface {
	// SaveOneTimeToken stores t, replacing any earlier token of the same user and
	// purpose, so at most one of each is outstanding and an older link stops working.
	// It returns ErrNotFound when the user does not exist.
	SaveOneTimeToken(ctx context.Context, t OneTimeToken) error
	// ConsumeOneTimeToken removes the token with this hash and purpose and returns it,
	// atomically: of any number of concurrent calls with one hash, at most one
	// succeeds. It returns ErrNotFound when there is no such token: unknown, already
	// consumed, of another purpose (which it leaves in place), or expired at now (which
	// it removes).
	ConsumeOneTimeToken(ctx context.Context, hash []byte, purpose TokenPurpose, now time.Time) (OneTimeToken, error)
	// DeleteOneTimeTokens removes the user's tokens of purpose, or all of them for "".
	// Removing none is not an error.
	DeleteOneTimeTokens(ctx context.Context, userID ecoid.ID, purpose TokenPurpose) error
	// OneTimeTokens returns the user's outstanding tokens (expired ones included),
	// ordered by purpose; none is not an error.
	OneTimeTokens(ctx context.Context, userID ecoid.ID) ([]OneTimeToken, error)
	// SetEmailVerified marks the user's email verified at at, if and only if the
	// user's email is still email (compared case-insensitively). Verifying a verified
	// email is a no-op that returns nil. It returns ErrNotFound when there is no such
	// user and ErrConflict, changing nothing, when the email differs.
	SetEmailVerified(ctx context.Context, userID ecoid.ID, email string, at time.Time) error
	// UpdateProfile sets the user's full name and returns the user; ErrNotFound when
	// there is no such user.
	UpdateProfile(ctx context.Context, userID ecoid.ID, fullName string, at time.Time) (User, error)
	// UserSessions returns every session of the user, revoked and expired ones
	// included, newest first; none is not an error.
	UserSessions(ctx context.Context, userID ecoid.ID) ([]Session, error)
	// AccountActivities returns, newest first and at most limit (≤ 0: 100), the
	// entries of the user and the entries without a user that name email (a failed
	// login or registration with the address before or without the account, a
	// throttled login). email is normalised.
	AccountActivities(ctx context.Context, userID ecoid.ID, email string, limit int) ([]Activity, error)
	// EraseUser deletes the user's identity, credentials, profile, email verification,
	// sessions, grants, one-time tokens, second factors and MFA challenges, and every
	// activity entry of the user or naming its email, atomically; the email can then register again. It returns
	// ErrNotFound when there is no such user.
	EraseUser(ctx context.Context, userID ecoid.ID) error
}

// AccountConfig configures the account features of a Service (mail, one-time links,
// erasure). Every zero value means the documented default.
type AccountConfig struct {
	// Mailer sends verification and reset mail. nil: no mail is sent;
	// SendVerification returns ErrMailDisabled and ForgotPassword does nothing visible
	// (it answers as always, so nothing tells a caller that mail is off).
	Mailer mail.Mailer
	// PublicURL is the base of links in mail; default DefaultPublicURL. It must be an
	// absolute http or https URL; a trailing slash is ignored.
	PublicURL string
	// VerifyEmailPath and ResetPasswordPath are the link paths; defaults
	// DefaultVerifyEmailPath and DefaultResetPasswordPath. The link is
	// PublicURL + path + "?token=" + token.
	VerifyEmailPath   string
	ResetPasswordPath string
	// VerifyEmailTTL and ResetPasswordTTL are the token lifetimes; defaults 24 h and 1 h.
	VerifyEmailTTL   time.Duration
	ResetPasswordTTL time.Duration
	// MailJobs bounds background deliveries at once; default DefaultMailJobs. When all
	// are busy, SendVerification waits for one, and ForgotPassword drops its job (and
	// logs it) so that its answer never waits on other deliveries.
	MailJobs int
	// Throttles of the account features, kept in Config.Throttle beside the login
	// throttle (so every instance sharing it counts together); each zero value means the
	// default in brackets. A refused call returns a *ThrottledError (errors.Is
	// ErrTooManyAttempts) before any other work; a failing ThrottleStore refuses the call
	// with ErrThrottleUnavailable.
	//   - ForgotPerEmail [5 per hour] and ForgotPerClient [20 per hour, per
	//     ClientNetwork]: ForgotPassword calls, counted alike for addresses with and
	//     without an account.
	//   - RedeemPerClient [30 per 15 minutes]: VerifyEmail and ResetPassword calls from
	//     one client network; a successful one is given back.
	//   - SendPerUser [5 per hour]: SendVerification calls per user.
	//   - PasswordPerUser [5 per 15 minutes]: current-password checks of
	//     ChangePasswordRenew and DeleteAccount per user (a stolen access token cannot
	//     guess the password); a correct one is given back.
	ForgotPerEmail, ForgotPerClient AttemptLimit
	RedeemPerClient                 AttemptLimit
	SendPerUser                     AttemptLimit
	PasswordPerUser                 AttemptLimit
	// OnErase, when set, runs in DeleteAccount after the password was checked and
	// before anything is erased: the example server revokes the user's API keys and
	// cancels a paid subscription here. If it returns an error nothing is erased and
	// DeleteAccount returns that error wrapped. It must be safe for concurrent use.
	OnErase func(ctx context.Context, u User) error
}

// account is the Service's state for the account features.
type account struct {
	mailer                mail.Mailer
	base                  string // PublicURL without a trailing slash
	verifyPath, resetPath string
	verifyTTL, resetTTL   time.Duration
	onErase               func(context.Context, User) error

	forgotEmail, forgotClient, redeemClient, sendUser, passwordUser AttemptLimit

	jobs    chan struct{} // one slot per running background delivery
	wg      sync.WaitGroup
	mu      sync.Mutex
	closing bool
}

func newAccount(cfg AccountConfig) (*account, error) {
	a := &account{
		mailer: cfg.Mailer, base: cfg.PublicURL,
		verifyPath: cfg.VerifyEmailPath, resetPath: cfg.ResetPasswordPath,
		verifyTTL: cfg.VerifyEmailTTL, resetTTL: cfg.ResetPasswordTTL,
		onErase: cfg.OnErase,
	}
	if a.base == "" {
		a.base = DefaultPublicURL
	}
	u, err := url.Parse(a.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("auth: AccountConfig.PublicURL %q is not an absolute http(s) URL without query", a.base)
	}
	a.base = strings.TrimRight(a.base, "/")
	for _, p := range []*string{&a.verifyPath, &a.resetPath} {
		if *p == "" {
			continue
		}
		if !strings.HasPrefix(*p, "/") || strings.ContainsAny(*p, "?#") {
			return nil, fmt.Errorf("auth: AccountConfig path %q must start with / and hold no query", *p)
		}
	}
	if a.verifyPath == "" {
		a.verifyPath = DefaultVerifyEmailPath
	}
	if a.resetPath == "" {
		a.resetPath = DefaultResetPasswordPath
	}
	if a.verifyTTL < 0 || a.resetTTL < 0 || cfg.MailJobs < 0 {
		return nil, errors.New("auth: negative durations or limits in AccountConfig")
	}
	if a.verifyTTL == 0 {
		a.verifyTTL = DefaultVerifyEmailTTL
	}
	if a.resetTTL == 0 {
		a.resetTTL = DefaultResetPasswordTTL
	}
	for _, l := range []struct {
		dst *AttemptLimit
		cfg AttemptLimit
		def AttemptLimit
	}{
		{&a.forgotEmail, cfg.ForgotPerEmail, AttemptLimit{Max: 5, Window: time.Hour}},
		{&a.forgotClient, cfg.ForgotPerClient, AttemptLimit{Max: 20, Window: time.Hour}},
		{&a.redeemClient, cfg.RedeemPerClient, AttemptLimit{Max: 30, Window: 15 * time.Minute}},
		{&a.sendUser, cfg.SendPerUser, AttemptLimit{Max: 5, Window: time.Hour}},
		{&a.passwordUser, cfg.PasswordPerUser, AttemptLimit{Max: 5, Window: 15 * time.Minute}},
	} {
		*l.dst = l.cfg
		if l.cfg == (AttemptLimit{}) {
			*l.dst = l.def
		}
		if !l.dst.Valid() {
			return nil, fmt.Errorf("%w in AccountConfig: %+v", ErrInvalidAttemptLimit, l.cfg)
		}
	}
	n := cfg.MailJobs
	if n == 0 {
		n = DefaultMailJobs
	}
	a.jobs = make(chan struct{}, n)
	return a, nil
}

// link is where a mailed token leads.
func (a *account) link(path, token string) string { return a.base + path + "?token=" + token }

// MailEnabled reports whether the Service has a Mailer.
func (s *Service) MailEnabled() bool { return s.acct.mailer != nil }

// errMailBusy means every background slot was busy and the job was dropped.
var errMailBusy = errors.New("auth: every mail slot is busy")

// background runs job in its own goroutine once a slot is free, with a context that
// outlives the request but not mailTimeout. With wait it waits for a slot until ctx
// ends; without, it drops the job when every slot is busy (logged), so the caller never
// waits on other deliveries. Close waits for every job.
func (s *Service) background(ctx context.Context, wait bool, job func(ctx context.Context)) error {
	a := s.acct
	if wait {
		select {
		case a.jobs <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("auth: %w", ctx.Err())
		}
	} else {
		select {
		case a.jobs <- struct{}{}:
		default:
			s.log.Warn("auth: mail dropped: every background slot is busy", "slots", cap(a.jobs))
			return errMailBusy
		}
	}
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		<-a.jobs
		return errors.New("auth: service is closing")
	}
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer func() { <-a.jobs; a.wg.Done() }()
		jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
		defer cancel()
		job(jctx)
	}()
	return nil
}

// Close waits until every mail the Service has accepted to send was handed to the
// Mailer (or failed), or ctx ends; it returns ctx's error then. Calls that would start
// another delivery fail after Close.
func (s *Service) Close(ctx context.Context) error {
	a := s.acct
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: close: %w", ctx.Err())
	}
}

// send delivers m with the Mailer and records the outcome under action.
func (s *Service) send(ctx context.Context, c Client, userID ecoid.ID, action Action, m mail.Message) {
	if err := s.acct.mailer.Send(ctx, m); err != nil {
		s.log.Warn("auth: sending mail failed", "action", action, "user", userID, "err", err)
		s.record(ctx, c, Activity{UserID: userID, Email: m.To, Action: action, Detail: "mail not sent"})
		return
	}
	s.record(ctx, c, Activity{UserID: userID, Email: m.To, Action: action, Success: true})
}

// attempt is one reserved throttle attempt; give it back with giveBack.
type attempt struct {
	key   string
	start time.Time
}

// reserveAttempt counts one attempt on the counter kind/parts under lim, before the work
// it guards. It returns a *ThrottledError (recorded in the activity log under action)
// when the counter is full and an error wrapping ErrThrottleUnavailable when the store
// fails.
func (s *Service) reserveAttempt(ctx context.Context, c Client, a Activity, lim AttemptLimit, kind string, parts ...string) (attempt, error) {
	key := ThrottleKey(kind, parts...)
	r, err := s.throttle.Reserve(ctx, key, lim, s.clock())
	if err != nil {
		s.log.Error("auth: throttle failed; call refused", "kind", kind, "err", err)
		return attempt{}, fmt.Errorf("%w: %w", ErrThrottleUnavailable, err)
	}
	if !r.OK {
		a.Detail = "throttled"
		s.record(ctx, c, a)
		return attempt{}, &ThrottledError{RetryAfter: r.RetryAfter}
	}
	return attempt{key: key, start: r.Start}, nil
}

// giveBack releases a reserved attempt (the call it guarded succeeded).
// checkPassword confirms the user's password before a sensitive change (action), under
// the per-user password throttle: ErrInvalidCredentials for a wrong one (recorded), a
// *ThrottledError past the limit, ErrNotFound for an unknown user. A right password gives
// its attempt back.
func (s *Service) checkPassword(ctx context.Context, c Client, userID ecoid.ID, password string, action Action) error {
	hash, err := s.store.PasswordHash(ctx, userID)
	if err != nil {
		return err
	}
	at, err := s.reserveAttempt(ctx, c, Activity{UserID: userID, Action: action}, s.acct.passwordUser, "password-check", string(userID))
	if err != nil {
		return err
	}
	if _, err := s.hasher.Verify(hash, password); err != nil {
		s.record(ctx, c, Activity{UserID: userID, Action: action, Detail: "wrong password"})
		return ErrInvalidCredentials
	}
	s.giveBack(ctx, at)
	return nil
}

func (s *Service) giveBack(ctx context.Context, a attempt) {
	if a.key != "" {
		s.release(ctx, a.key, a.start)
	}
}

// cleanFullName trims a full name and checks Register's rules for it.
func cleanFullName(fullName string) (string, error) {
	fullName = strings.TrimSpace(fullName)
	if !safetext.Clean(fullName) || utf8.RuneCountInString(fullName) > MaxNameLength {
		return "", fmt.Errorf("%w: at most %d characters of UTF-8, no control or bidirectional-override characters", ErrInvalidName, MaxNameLength)
	}
	return fullName, nil
}

// UpdateProfile sets the user's full name (trimmed; the rules of Register) and returns
// the user. Errors: ErrInvalidName, ErrNotFound, or a store error.
func (s *Service) UpdateProfile(ctx context.Context, c Client, userID ecoid.ID, fullName string) (User, error) {
	name, err := cleanFullName(fullName)
	if err != nil {
		return User{}, err
	}
	u, err := s.store.UpdateProfile(ctx, userID, name, s.clock())
	if err != nil {
		return User{}, fmt.Errorf("auth: update profile: %w", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionProfileUpdate, Success: true})
	return u, nil
}

// SessionInfo is what a user may see of a session: never a token or a hash.
// LastUsedAt is when its refresh token was last used (access tokens are checked without
// the store, so their use is not recorded); CreatedAt when nothing was refreshed yet.
type SessionInfo struct {
	ID         ecoid.ID   `json:"id"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt time.Time  `json:"last_used_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
	Current    bool       `json:"current"`
}

func sessionInfo(s Session, current ecoid.ID) SessionInfo {
	in := SessionInfo{
		ID: s.ID, CreatedAt: s.CreatedAt, LastUsedAt: s.RotatedAt, ExpiresAt: s.ExpiresAt,
		IP: s.IP, UserAgent: s.UserAgent, Current: s.ID == current,
	}
	if s.Revoked() {
		t := s.RevokedAt
		in.RevokedAt = &t
	}
	return in
}

// Sessions returns the user's live sessions (neither revoked nor expired), newest first;
// the one whose ID is current is marked Current.
func (s *Service) Sessions(ctx context.Context, userID, current ecoid.ID) ([]SessionInfo, error) {
	all, err := s.store.UserSessions(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("auth: sessions: %w", err)
	}
	now := s.clock()
	out := []SessionInfo{}
	for _, sess := range all {
		if !sess.Revoked() && now.Before(sess.ExpiresAt) {
			out = append(out, sessionInfo(sess, current))
		}
	}
	return out, nil
}

// RevokeUserSession revokes one of the user's sessions: its refresh token stops working at
// once (its access token at its expiry). It returns ErrNotFound for a session that does
// not exist or belongs to another user; revoking a revoked session returns nil.
func (s *Service) RevokeUserSession(ctx context.Context, c Client, userID, sessionID ecoid.ID) error {
	sess, err := s.store.Session(ctx, sessionID)
	if errors.Is(err, ErrNotFound) || (err == nil && sess.UserID != userID) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("auth: revoke session: %w", err)
	}
	if err := s.store.RevokeSession(ctx, sessionID, s.clock()); err != nil {
		return fmt.Errorf("auth: revoke session: %w", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionSessionRevoke, Success: true, Detail: string(sessionID)})
	return nil
}

// AccountActivities returns the user's own activity log, newest first: the user's
// entries, failures included, and the entries that name the user's email without a user
// (throttled logins, failed logins or registrations with the address). limit 0 means
// DefaultActivityLimit; outside 0..MaxActivityLimit it returns ErrInvalidLimit.
func (s *Service) AccountActivities(ctx context.Context, userID ecoid.ID, limit int) ([]Activity, error) {
	if limit < 0 || limit > MaxActivityLimit {
		return nil, fmt.Errorf("%w: %d is outside 1..%d", ErrInvalidLimit, limit, MaxActivityLimit)
	}
	if limit == 0 {
		limit = DefaultActivityLimit
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("auth: activities: %w", err)
	}
	return s.store.AccountActivities(ctx, userID, u.Email, limit)
}

// ChangePasswordRenew is ChangePassword for a signed-in session: it checks the current
// password, sets the new one, revokes every session of the user, this one included, and
// returns the first pair of a new session, so whoever held any earlier refresh token is
// out. Outstanding password-reset links stop working. Wrong current passwords are
// throttled per user (AccountConfig.PasswordPerUser). Errors are ChangePassword's, or a
// *ThrottledError.
func (s *Service) ChangePasswordRenew(ctx context.Context, c Client, claims Claims, current, next string) (Tokens, error) {
	at, err := s.reserveAttempt(ctx, c, Activity{UserID: claims.UserID, Action: ActionPasswordChange}, s.acct.passwordUser, "password-check", string(claims.UserID))
	if err != nil {
		return Tokens{}, err
	}
	if err := s.ChangePassword(ctx, c, claims.UserID, "", current, next); err != nil {
		if !errors.Is(err, ErrInvalidCredentials) {
			s.giveBack(ctx, at) // the password was right (or never checked)
		}
		return Tokens{}, err
	}
	s.giveBack(ctx, at)
	if err := s.store.DeleteOneTimeTokens(ctx, claims.UserID, PurposeResetPassword); err != nil {
		return Tokens{}, fmt.Errorf("auth: change password: %w", err)
	}
	return s.openSession(ctx, c, claims.UserID, s.clock())
}
