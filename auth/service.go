package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Service errors, besides those of the password, email, token and store parts.
var (
	// ErrInvalidCredentials is the one answer to a failed login, whether the email is
	// unknown or the password wrong.
	ErrInvalidCredentials = errors.New("auth: invalid email or password")
	// ErrRefreshReuse means a retired refresh token was presented again: the session has
	// been revoked. It wraps ErrInvalidToken.
	ErrRefreshReuse = fmt.Errorf("%w: refresh token reused; session revoked", ErrInvalidToken)
	// ErrSessionRevoked means the token's session was logged out or revoked. It wraps
	// ErrInvalidToken.
	ErrSessionRevoked = fmt.Errorf("%w: session revoked", ErrInvalidToken)
	// ErrForbidden means a user lacks the role an action needs on a project.
	ErrForbidden = errors.New("auth: forbidden")
	// ErrInvalidName means a full name is not valid UTF-8, holds a control character or is
	// longer than MaxNameLength.
	ErrInvalidName = errors.New("auth: invalid full name")
	// ErrInvalidRole means a role is not one of the four Role constants.
	ErrInvalidRole = errors.New("auth: invalid role")
)

// MaxNameLength is the longest full name Register accepts, in characters.
const MaxNameLength = 200

// Defaults of Config's zero values. The login throttle follows OWASP's Authentication
// and Credential Stuffing cheat sheets: a hard limit per (email, client network) stops one
// source guessing one account without letting it lock the owner out elsewhere, and a
// softer, higher limit per email caps a guessing attack spread over many addresses.
const (
	DefaultMaxLoginFailures      = 5                // per (email, client network)
	DefaultLoginWindow           = 15 * time.Minute // per (email, client network)
	DefaultMaxEmailLoginFailures = 50               // per email, from every client together
	DefaultEmailLoginWindow      = time.Hour        // per email
	DefaultThrottleKeys          = 100_000          // counters of the in-process store
)

// ErrThrottleUnavailable is wrapped by Login's error when the ThrottleStore fails: the
// password is then not checked at all (the throttle fails closed). Servers answer 503.
var ErrThrottleUnavailable = errors.New("auth: throttle store unavailable")

// Config configures NewService. Store and Issuer are required; every other zero value
// means the documented default.
type Config struct {
	// Store keeps users, sessions, grants and the activity log.
	Store Store
	// Issuer signs and verifies the tokens.
	Issuer *Issuer
	// Policy is the password policy for Register and ChangePassword; the zero Policy
	// means DefaultPolicy(). Use NISTPolicy() for the NIST SP 800-63B profile.
	Policy Policy
	// BcryptCost is the cost of new hashes; zero means DefaultBcryptCost (10). Hashes of
	// another cost still verify and are replaced at the next successful login.
	BcryptCost int
	// Hasher hashes and verifies passwords; nil means Hasher{Cost: BcryptCost}. Tests
	// wrap it to observe the password checks.
	Hasher PasswordHasher
	// Login throttle. Every login attempt is reserved in Throttle before its password is
	// checked, so attempts in flight count and parallel guesses cannot overtake it. A
	// failed attempt stays counted until its window ends; a successful one is given back
	// and clears its client's counter. Two counters apply, and Login returns a
	// *ThrottledError (errors.Is ErrTooManyAttempts) without checking the password when
	// either is full:
	//   - per (email, client network): MaxLoginFailures attempts per LoginWindow, default
	//     5 per 15 minutes. The client network is ClientNetwork(Client.IP): the IPv4
	//     address, or the IPv6 /64.
	//   - per email, from all clients together: MaxEmailLoginFailures attempts per
	//     EmailLoginWindow, default 50 per hour.
	// Unknown emails are counted the same way, so the throttle tells nothing about which
	// emails exist.
	MaxLoginFailures      int
	LoginWindow           time.Duration
	MaxEmailLoginFailures int
	EmailLoginWindow      time.Duration
	// Throttle keeps the throttle's counters. nil means a store in this process holding
	// at most ThrottleKeys counters (default 100,000); a service with several instances
	// gives them one shared store (storage/postgres or storage/redis) so they throttle
	// together.
	Throttle     ThrottleStore
	ThrottleKeys int
	// RefreshGrace is how long after a rotation the replaced refresh token is refused
	// without revoking the session (two tabs refreshing at once). Default 0: presenting a
	// replaced token always counts as reuse and revokes the session.
	RefreshGrace time.Duration
	// OnRegister, when set, runs after a new account has been stored and before Register
	// issues its tokens; the example server creates the user's free billing subscription
	// here. If it returns an error the account is deleted again (so the person can retry)
	// and Register returns that error wrapped. It must be safe for concurrent use.
	OnRegister func(ctx context.Context, u User) error
	// Account configures mail, one-time links and erasure (see AccountConfig).
	Account AccountConfig
	// MFA configures TOTP two-factor authentication; the zero value leaves it off.
	MFA MFAConfig
	// Now is the clock for sessions, throttling and the activity log; default time.Now.
	Now func() time.Time
	// Logger receives operational warnings (a failed activity-log write, a failed rehash);
	// default: discard. Secrets are never logged.
	Logger *slog.Logger
}

// Client describes who is calling, for sessions and the activity log.
type Client struct {
	IP        string
	UserAgent string
}

// Tokens is a freshly issued access/refresh pair of one session.
type Tokens struct {
	SessionID        ecoid.ID
	AccessToken      string
	RefreshToken     string
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// Result is what Register and Login return: the user and a new session's tokens.
type Result struct {
	User User
	Tokens
}

// Service registers users, logs them in and out, rotates refresh tokens, manages project
// access and writes the activity log. It is safe for concurrent use.
type Service struct {
	store      Store
	issuer     *Issuer
	policy     Policy
	hasher     PasswordHasher
	throttle   ThrottleStore
	clientLim  AttemptLimit // per (email, client network)
	emailLim   AttemptLimit // per email
	grace      time.Duration
	onRegister func(context.Context, User) error
	now        func() time.Time
	log        *slog.Logger
	dummyHash  string
	acct       *account
	mfa        *mfa
}

// NewService checks cfg and returns a Service. It returns an error when Store or Issuer
// is missing, or when BcryptCost or a duration is out of range.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("auth: Config.Store is required")
	}
	if cfg.Issuer == nil {
		return nil, errors.New("auth: Config.Issuer is required")
	}
	if cfg.LoginWindow < 0 || cfg.RefreshGrace < 0 || cfg.MaxLoginFailures < 0 || cfg.ThrottleKeys < 0 ||
		cfg.MaxEmailLoginFailures < 0 || cfg.EmailLoginWindow < 0 {
		return nil, errors.New("auth: negative limits in Config")
	}
	s := &Service{
		store:      cfg.Store,
		issuer:     cfg.Issuer,
		policy:     cfg.Policy,
		hasher:     cfg.Hasher,
		throttle:   cfg.Throttle,
		grace:      cfg.RefreshGrace,
		onRegister: cfg.OnRegister,
		now:        cfg.Now,
		log:        cfg.Logger,
	}
	acct, err := newAccount(cfg.Account)
	if err != nil {
		return nil, err
	}
	s.acct = acct
	if s.policy.IsZero() {
		s.policy = DefaultPolicy()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.hasher == nil {
		s.hasher = Hasher{Cost: cfg.BcryptCost}
	}
	s.clientLim = AttemptLimit{Max: orDefault(cfg.MaxLoginFailures, DefaultMaxLoginFailures), Window: orDefault(cfg.LoginWindow, DefaultLoginWindow)}
	s.emailLim = AttemptLimit{Max: orDefault(cfg.MaxEmailLoginFailures, DefaultMaxEmailLoginFailures), Window: orDefault(cfg.EmailLoginWindow, DefaultEmailLoginWindow)}
	if !s.clientLim.Valid() || !s.emailLim.Valid() {
		return nil, errors.New("auth: login windows must be at least 1µs")
	}
	if s.throttle == nil {
		s.throttle = newLocalThrottle(orDefault(cfg.ThrottleKeys, DefaultThrottleKeys))
	}
	m, err := newMFA(cfg)
	if err != nil {
		return nil, err
	}
	s.mfa = m
	// The dummy hash makes a login with an unknown email cost one bcrypt comparison of
	// the same cost as a real one.
	var pw [18]byte
	_, _ = rand.Read(pw[:])
	h, err := s.hasher.Hash(base64.RawURLEncoding.EncodeToString(pw[:]))
	if err != nil {
		return nil, err
	}
	s.dummyHash = h
	return s, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Issuer returns the token issuer, for middleware such as RequireUser.
func (s *Service) Issuer() *Issuer { return s.issuer }

// Policy returns the password policy in force.
func (s *Service) Policy() Policy { return s.policy }

// clock returns the current time at the precision every store keeps (microseconds, UTC).
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Register creates an account (identity, credentials, profile), logs it, runs OnRegister
// and opens a first session. Errors: one wrapping ErrInvalidEmail, a *PolicyError
// (errors.Is ErrWeakPassword), ErrInvalidName, ErrEmailTaken (of many concurrent
// registrations of one email exactly one succeeds), or a store or hook error.
func (s *Service) Register(ctx context.Context, c Client, email, password, fullName string) (Result, error) {
	now := s.clock()
	norm, err := NormalizeEmail(email)
	if err != nil {
		return Result{}, err
	}
	fullName, err = cleanFullName(fullName)
	if err != nil {
		return Result{}, err
	}
	if err := s.policy.Validate(password); err != nil {
		return Result{}, err
	}
	hash, err := s.hasher.Hash(password)
	if err != nil {
		return Result{}, err
	}
	u := User{ID: ecoid.New(ecoid.User), Email: norm, FullName: fullName, CreatedAt: now}
	if err := s.store.CreateUser(ctx, u, hash); err != nil {
		if errors.Is(err, ErrEmailTaken) {
			s.record(ctx, c, Activity{Email: norm, Action: ActionRegister, Detail: "email taken"})
			return Result{}, ErrEmailTaken
		}
		return Result{}, fmt.Errorf("auth: register: %w", err)
	}
	if s.onRegister != nil {
		if err := s.onRegister(ctx, u); err != nil {
			if derr := s.store.DeleteUser(context.WithoutCancel(ctx), u.ID); derr != nil {
				s.log.Error("auth: cannot delete account after a failed OnRegister", "user", u.ID, "err", derr)
			}
			s.record(ctx, c, Activity{Email: norm, Action: ActionRegister, Detail: "register hook failed"})
			return Result{}, fmt.Errorf("auth: register hook: %w", err)
		}
	}
	s.record(ctx, c, Activity{UserID: u.ID, Email: norm, Action: ActionRegister, Success: true})
	t, err := s.openSession(ctx, c, u.ID, now)
	if err != nil {
		return Result{}, err
	}
	return Result{User: u, Tokens: t}, nil
}

// Login checks the email and password and opens a session. A wrong password and an
// unknown email both return ErrInvalidCredentials after the same password check (one
// Hasher.Verify against a hash of the configured cost), so neither the answer nor its
// timing tells them apart. The attempt is first reserved in the login throttle (see
// Config): when the counter of this email and client network, or that of this email,
// is full, Login returns a *ThrottledError (errors.Is ErrTooManyAttempts) without
// checking the password, and an error wrapping ErrThrottleUnavailable when the
// ThrottleStore fails. A correct password whose hash has another cost, or was made
// before passwords were normalised (see NormalizePassword), is rehashed. When the user
// has TOTP on (see MFAConfig), a correct password opens no session: Login returns a
// *MFARequiredError (errors.Is ErrMFARequired) whose token VerifyMFA takes with a code.
func (s *Service) Login(ctx context.Context, c Client, email, password string) (Result, error) {
	now := s.clock()
	norm, err := NormalizeEmail(email)
	if err != nil {
		return Result{}, ErrInvalidCredentials
	}
	res, err := s.reserveLogin(ctx, c, norm, now)
	if err != nil {
		return Result{}, err
	}
	hash, known := s.dummyHash, false
	u, err := s.store.UserByEmail(ctx, norm)
	switch {
	case err == nil:
		h, err := s.store.PasswordHash(ctx, u.ID)
		switch {
		case err == nil:
			hash, known = h, true
		case !errors.Is(err, ErrNotFound):
			s.releaseLogin(ctx, res, false) // no password was checked
			return Result{}, fmt.Errorf("auth: login: %w", err)
		}
	case !errors.Is(err, ErrNotFound):
		s.releaseLogin(ctx, res, false)
		return Result{}, fmt.Errorf("auth: login: %w", err)
	}
	rehash, verr := s.hasher.Verify(hash, password)
	if !known || verr != nil {
		// The reservations stay: a failed attempt counts until its window ends.
		a := Activity{Email: norm, Action: ActionLogin, Detail: "unknown email"}
		if known {
			a.UserID, a.Detail = u.ID, "wrong password"
		}
		s.record(ctx, c, a)
		return Result{}, ErrInvalidCredentials
	}
	s.releaseLogin(ctx, res, true)
	if rehash {
		if nh, err := s.hasher.Hash(password); err != nil {
			s.log.Warn("auth: rehash failed", "user", u.ID, "err", err)
		} else if err := s.store.SetPasswordHash(ctx, u.ID, nh, now); err != nil {
			s.log.Warn("auth: storing rehashed password failed", "user", u.ID, "err", err)
		}
	}
	if err := s.mfaGate(ctx, c, u, now); err != nil {
		return Result{}, err // a *MFARequiredError when the user has TOTP on
	}
	t, err := s.openSession(ctx, c, u.ID, now)
	if err != nil {
		return Result{}, err
	}
	s.record(ctx, c, Activity{UserID: u.ID, Email: norm, Action: ActionLogin, Success: true})
	return Result{User: u, Tokens: t}, nil
}

// loginReservation is one login attempt counted in both throttle counters.
type loginReservation struct {
	clientKey, emailKey     string
	clientStart, emailStart time.Time
}

// reserveLogin counts one attempt for email from c's network, then for email, and
// returns a *ThrottledError when either counter is full. The client counter comes first
// so that a source already blocked spends nothing of the email's shared budget.
func (s *Service) reserveLogin(ctx context.Context, c Client, email string, now time.Time) (loginReservation, error) {
	r := loginReservation{
		clientKey: ThrottleKey("login-client", email, ClientNetwork(c.IP)),
		emailKey:  ThrottleKey("login-email", email),
	}
	cr, err := s.throttle.Reserve(ctx, r.clientKey, s.clientLim, now)
	if err != nil {
		s.log.Error("auth: login throttle failed; login refused", "err", err)
		return r, fmt.Errorf("%w: %w", ErrThrottleUnavailable, err)
	}
	if !cr.OK {
		s.record(ctx, c, Activity{Email: email, Action: ActionLoginThrottled, Detail: "too many failed attempts from this client"})
		return r, &ThrottledError{RetryAfter: cr.RetryAfter}
	}
	r.clientStart = cr.Start
	er, err := s.throttle.Reserve(ctx, r.emailKey, s.emailLim, now)
	if err == nil && er.OK {
		r.emailStart = er.Start
		return r, nil
	}
	s.release(ctx, r.clientKey, r.clientStart)
	if err != nil {
		s.log.Error("auth: login throttle failed; login refused", "err", err)
		return r, fmt.Errorf("%w: %w", ErrThrottleUnavailable, err)
	}
	s.record(ctx, c, Activity{Email: email, Action: ActionLoginThrottled, Detail: "too many failed attempts for this email"})
	return r, &ThrottledError{RetryAfter: er.RetryAfter}
}

// releaseLogin gives back the attempt of r. After a successful login (ok) the client's
// counter is cleared: its earlier failures were most likely the owner's typing; the
// email's counter only gets this attempt back, as failures from elsewhere stand.
func (s *Service) releaseLogin(ctx context.Context, r loginReservation, ok bool) {
	if ok {
		if err := s.throttle.Reset(context.WithoutCancel(ctx), r.clientKey); err != nil {
			s.log.Warn("auth: login throttle reset failed", "err", err)
		}
	} else {
		s.release(ctx, r.clientKey, r.clientStart)
	}
	s.release(ctx, r.emailKey, r.emailStart)
}

// release gives back one attempt of key reserved in the window opened at start.
func (s *Service) release(ctx context.Context, key string, start time.Time) {
	if err := s.throttle.Release(context.WithoutCancel(ctx), key, start); err != nil {
		s.log.Warn("auth: login throttle release failed", "err", err)
	}
}

// openSession stores a new session and issues its first pair.
func (s *Service) openSession(ctx context.Context, c Client, userID ecoid.ID, now time.Time) (Tokens, error) {
	sid := ecoid.New(ecoid.Session)
	t, refresh, err := s.issuePair(userID, sid)
	if err != nil {
		return Tokens{}, err
	}
	return t, s.createSession(ctx, c, userID, sid, refresh, now)
}

// createSession stores the new session sid whose first refresh token has claims refresh.
func (s *Service) createSession(ctx context.Context, c Client, userID, sid ecoid.ID, refresh Claims, now time.Time) error {
	sess := Session{
		ID: sid, UserID: userID, RefreshHash: hashJTI(refresh.ID),
		CreatedAt: now, RotatedAt: now, ExpiresAt: refresh.ExpiresAt.UTC(),
		IP: c.IP, UserAgent: c.UserAgent,
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return fmt.Errorf("auth: create session: %w", err)
	}
	return nil
}

// issueClient signs the client refresh token of a session a relying party holds; such a
// session has no first-party access token.
func (s *Service) issueClient(userID, sid ecoid.ID, scope string, authTime time.Time) (Tokens, Claims, error) {
	refresh, rc, err := s.issuer.issue(ClientRefreshToken, userID, sid, scope, authTime)
	if err != nil {
		return Tokens{}, Claims{}, err
	}
	return Tokens{SessionID: sid, RefreshToken: refresh, RefreshExpiresAt: rc.ExpiresAt}, rc, nil
}

// issuePair signs an access and a refresh token for the session.
func (s *Service) issuePair(userID, sid ecoid.ID) (Tokens, Claims, error) {
	access, ac, err := s.issuer.Issue(AccessToken, userID, sid)
	if err != nil {
		return Tokens{}, Claims{}, err
	}
	refresh, rc, err := s.issuer.Issue(RefreshToken, userID, sid)
	if err != nil {
		return Tokens{}, Claims{}, err
	}
	return Tokens{
		SessionID: sid, AccessToken: access, RefreshToken: refresh,
		AccessExpiresAt: ac.ExpiresAt, RefreshExpiresAt: rc.ExpiresAt,
	}, rc, nil
}

// Refresh exchanges a refresh token for a new pair of the same session and retires the
// presented one. Errors wrap ErrInvalidToken: a bad or expired token, an access token,
// ErrSessionRevoked for a logged-out session, and ErrRefreshReuse when the token was
// already retired, in which case the whole session is revoked (within RefreshGrace of
// the rotation that retired it, the token is refused but the session kept).
func (s *Service) Refresh(ctx context.Context, c Client, refreshToken string) (Tokens, error) {
	return s.refresh(ctx, c, refreshToken, RefreshToken)
}

// refresh is Refresh for a refresh token of type typ: the new pair is of the same kind (a
// first-party pair, or a client refresh token with the same scope).
func (s *Service) refresh(ctx context.Context, c Client, refreshToken string, typ TokenType) (Tokens, error) {
	claims, err := s.issuer.Verify(refreshToken, typ)
	if err != nil {
		// A refresh token of the other kind, sent to the wrong place: refused, but if it is
		// a retired one, that is reuse all the same, and its session is revoked as it would
		// be where the token belongs.
		other := RefreshToken
		if typ == RefreshToken {
			other = ClientRefreshToken
		}
		if oc, oerr := s.issuer.Verify(refreshToken, other); oerr == nil {
			s.detectReuse(ctx, c, oc)
		}
		return Tokens{}, err
	}
	now := s.clock()
	sess, err := s.sessionOf(ctx, claims)
	if errors.Is(err, ErrSessionRevoked) {
		s.record(ctx, c, Activity{UserID: claims.UserID, Action: ActionRefresh, Detail: "session revoked"})
	}
	if err != nil {
		return Tokens{}, err
	}
	presented := hashJTI(claims.ID)
	if subtle.ConstantTimeCompare(presented, sess.RefreshHash) != 1 {
		return Tokens{}, s.retired(ctx, c, sess, presented, now)
	}
	var t Tokens
	var rc Claims
	if typ == ClientRefreshToken {
		t, rc, err = s.issueClient(sess.UserID, sess.ID, claims.Scope, claims.AuthTime)
	} else {
		t, rc, err = s.issuePair(sess.UserID, sess.ID)
	}
	if err != nil {
		return Tokens{}, err
	}
	err = s.store.RotateSession(ctx, sess.ID, presented, hashJTI(rc.ID), rc.ExpiresAt.UTC(), now)
	if errors.Is(err, ErrConflict) {
		// Revoked or rotated meanwhile: look again to tell which.
		cur, gerr := s.store.Session(ctx, sess.ID)
		if gerr != nil {
			return Tokens{}, fmt.Errorf("auth: refresh: %w", gerr)
		}
		if cur.Revoked() {
			return Tokens{}, ErrSessionRevoked
		}
		return Tokens{}, s.retired(ctx, c, cur, presented, now)
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("auth: refresh: %w", err)
	}
	s.record(ctx, c, Activity{UserID: sess.UserID, Action: ActionRefresh, Success: true})
	return t, nil
}

// sessionOf returns the session of verified token claims when it is the claims' user's
// and not revoked: an error wrapping ErrInvalidToken for an unknown session or another
// user's, ErrSessionRevoked for a revoked one, a store failure wrapped. It does not look
// at expiry (a refresh token's own exp bounds it).
func (s *Service) sessionOf(ctx context.Context, claims Claims) (Session, error) {
	sess, err := s.store.Session(ctx, claims.SessionID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Session{}, fmt.Errorf("%w: unknown session", ErrInvalidToken)
	case err != nil:
		return Session{}, fmt.Errorf("auth: session: %w", err)
	case sess.UserID != claims.UserID:
		return Session{}, fmt.Errorf("%w: session of another user", ErrInvalidToken)
	case sess.Revoked():
		return Session{}, ErrSessionRevoked
	}
	return sess, nil
}

// detectReuse revokes the session of verified refresh-token claims when the token is a
// retired one of it (see retired); a current token, or a store failure, changes nothing.
func (s *Service) detectReuse(ctx context.Context, c Client, claims Claims) {
	sess, err := s.sessionOf(ctx, claims)
	if err != nil {
		return
	}
	if presented := hashJTI(claims.ID); subtle.ConstantTimeCompare(presented, sess.RefreshHash) != 1 {
		_ = s.retired(ctx, c, sess, presented, s.clock())
	}
}

// retired handles a validly signed refresh token of sess that is not its current one.
func (s *Service) retired(ctx context.Context, c Client, sess Session, presented []byte, now time.Time) error {
	if s.grace > 0 && subtle.ConstantTimeCompare(presented, sess.PrevHash) == 1 && now.Sub(sess.RotatedAt) <= s.grace {
		return fmt.Errorf("%w: refresh token superseded", ErrInvalidToken)
	}
	if err := s.store.RevokeSession(ctx, sess.ID, now); err != nil {
		return fmt.Errorf("auth: revoke reused session: %w", err)
	}
	s.log.Warn("auth: refresh token reuse; session revoked", "user", sess.UserID, "session", sess.ID)
	s.record(ctx, c, Activity{UserID: sess.UserID, Action: ActionRefreshReuse, Detail: "session revoked"})
	return ErrRefreshReuse
}

// Logout revokes the session of the verified access-token claims. Logging out a session
// that is already revoked or gone returns nil.
func (s *Service) Logout(ctx context.Context, c Client, claims Claims) error {
	err := s.store.RevokeSession(ctx, claims.SessionID, s.clock())
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("auth: logout: %w", err)
	}
	s.record(ctx, c, Activity{UserID: claims.UserID, Action: ActionLogout, Success: true})
	return nil
}

// ChangePassword replaces the user's password after checking the current one, and
// revokes every other session of the user (keep, usually the caller's session, stays).
// Errors: ErrInvalidCredentials for a wrong current password, a *PolicyError for a weak
// new one, ErrNotFound for an unknown user, or a store error.
func (s *Service) ChangePassword(ctx context.Context, c Client, userID, keep ecoid.ID, current, next string) error {
	now := s.clock()
	hash, err := s.store.PasswordHash(ctx, userID)
	if err != nil {
		return fmt.Errorf("auth: change password: %w", err)
	}
	if _, err := s.hasher.Verify(hash, current); err != nil {
		s.record(ctx, c, Activity{UserID: userID, Action: ActionPasswordChange, Detail: "wrong current password"})
		return ErrInvalidCredentials
	}
	if err := s.policy.Validate(next); err != nil {
		return err
	}
	nh, err := s.hasher.Hash(next)
	if err != nil {
		return err
	}
	if err := s.store.SetPasswordHash(ctx, userID, nh, now); err != nil {
		return fmt.Errorf("auth: change password: %w", err)
	}
	if _, err := s.store.RevokeUserSessions(ctx, userID, keep, now); err != nil {
		return fmt.Errorf("auth: change password: revoke sessions: %w", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionPasswordChange, Success: true})
	return nil
}

// UserByID returns the user or an error wrapping ErrNotFound.
func (s *Service) UserByID(ctx context.Context, id ecoid.ID) (User, error) {
	return s.store.UserByID(ctx, id)
}

// UserByEmail normalises email and returns its user, an error wrapping ErrInvalidEmail,
// or one wrapping ErrNotFound.
func (s *Service) UserByEmail(ctx context.Context, email string) (User, error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	return s.store.UserByEmail(ctx, norm)
}

// GrantAccess gives the user role on the project, replacing an earlier role. It returns
// ErrInvalidRole for an unknown role and ErrNotFound for an unknown user.
func (s *Service) GrantAccess(ctx context.Context, c Client, userID, projectID ecoid.ID, role Role) error {
	if !role.Valid() {
		return fmt.Errorf("%w: %q", ErrInvalidRole, role)
	}
	if err := s.store.GrantAccess(ctx, Grant{UserID: userID, ProjectID: projectID, Role: role, GrantedAt: s.clock()}); err != nil {
		return fmt.Errorf("auth: grant access: %w", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionAccessGrant, Success: true, Detail: string(projectID) + " " + string(role)})
	return nil
}

// RevokeAccess removes the user's role on the project; revoking nothing returns nil.
func (s *Service) RevokeAccess(ctx context.Context, c Client, userID, projectID ecoid.ID) error {
	if err := s.store.RevokeAccess(ctx, userID, projectID); err != nil {
		return fmt.Errorf("auth: revoke access: %w", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionAccessRevoke, Success: true, Detail: string(projectID)})
	return nil
}

// CheckAccess returns nil when the user's role on the project satisfies need (owner >
// admin > member > viewer), ErrForbidden when it does not or there is no grant, and a
// store error otherwise.
func (s *Service) CheckAccess(ctx context.Context, userID, projectID ecoid.ID, need Role) error {
	g, err := s.store.Access(ctx, userID, projectID)
	if errors.Is(err, ErrNotFound) {
		return ErrForbidden
	}
	if err != nil {
		return fmt.Errorf("auth: check access: %w", err)
	}
	if !g.Role.Satisfies(need) {
		return ErrForbidden
	}
	return nil
}

// Activities returns the user's newest activity-log entries first, at most limit
// (≤ 0 means 100).
func (s *Service) Activities(ctx context.Context, userID ecoid.ID, limit int) ([]Activity, error) {
	return s.store.Activities(ctx, userID, limit)
}

// record appends to the activity log; a failure is logged, never returned, so that the
// log cannot turn a login into an error.
func (s *Service) record(ctx context.Context, c Client, a Activity) {
	a.ID = ecoid.New(ecoid.Event)
	a.IP, a.UserAgent = c.IP, c.UserAgent
	a.At = s.clock()
	if err := s.store.LogActivity(context.WithoutCancel(ctx), a); err != nil {
		s.log.Warn("auth: activity log write failed", "action", a.Action, "err", err)
	}
}

// hashJTI is what sessions store instead of refresh tokens.
func hashJTI(jti string) []byte {
	h := sha256.Sum256([]byte(jti))
	return h[:]
}
