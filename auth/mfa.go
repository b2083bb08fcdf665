package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/auth/totp"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Two-factor errors. Their messages never hold a code, a token or a secret.
var (
	// ErrMFADisabled means the Service has no MFAConfig.Key: TOTP cannot be enrolled.
	ErrMFADisabled = errors.New("auth: two-factor authentication is not configured")
	// ErrMFAEnabled means the user's TOTP is already on (enroll twice).
	ErrMFAEnabled = errors.New("auth: two-factor authentication already enabled")
	// ErrMFANotEnabled means the user has no confirmed TOTP (disable without one).
	ErrMFANotEnabled = errors.New("auth: two-factor authentication not enabled")
	// ErrInvalidCode means a TOTP or recovery code is malformed, wrong, or already used,
	// or there is no enrollment to confirm. Servers answer it 400 on confirm and 401 on
	// verify and disable.
	ErrInvalidCode = errors.New("auth: invalid or used code")
	// ErrInvalidMFAToken means an mfa_token is malformed, unknown, expired, used, or
	// presented by another client than the login that received it.
	ErrInvalidMFAToken = errors.New("auth: invalid or expired mfa token")
	// ErrMFARequired is matched (errors.Is) by *MFARequiredError.
	ErrMFARequired = errors.New("auth: second factor required")
)

// MFARequiredError is what Login returns, instead of a session, when the password was
// right and the user has TOTP on: the client must send Token with a code to VerifyMFA
// (or a recovery code to VerifyMFARecovery) before ExpiresAt. No session exists yet.
type MFARequiredError struct {
	UserID    ecoid.ID
	Token     string // the mfa_token; a secret: hand it to the client, never log it
	ExpiresAt time.Time
}

// Error says a second factor is needed; it never includes the token.
func (e *MFARequiredError) Error() string { return ErrMFARequired.Error() }

// Is makes errors.Is(err, ErrMFARequired) true.
func (e *MFARequiredError) Is(target error) bool { return target == ErrMFARequired }

// Defaults of MFAConfig's zero values.
const (
	DefaultMFAIssuer           = "Nexus"
	DefaultMFATokenTTL         = 5 * time.Minute
	DefaultMaxMFAFailures      = 5
	DefaultMFAWindow           = 15 * time.Minute
	RecoveryCodeCount          = 10 // recovery codes ConfirmTOTP returns
	MFAKeySize                 = 32 // bytes of an MFAConfig.Key (AES-256)
	recoveryCodeChars          = 16 // 80 bits
	mfaTokenBytes              = 32
	totpSkew                   = 1 // steps accepted before and after the current one
	sealVersion           byte = 1
)

// MFAConfig configures TOTP two-factor authentication (Config.MFA). The zero value
// leaves it off: Login never asks for a second factor and EnrollTOTP returns
// ErrMFADisabled.
type MFAConfig struct {
	// Key encrypts TOTP secrets at rest with AES-256-GCM; MFAKeySize (32) bytes from a
	// secret store (ParseMFAKey reads the base64 form). Setting it turns TOTP on.
	Key []byte
	// OldKeys still decrypt secrets sealed under earlier keys, for key rotation; new
	// secrets are always sealed with Key.
	OldKeys [][]byte
	// Store keeps enrollments, recovery codes, challenges and attempt counts; nil means
	// Config.Store, which must then implement MFAStore.
	Store MFAStore
	// Issuer is the name authenticator apps show beside the account; default "Nexus".
	Issuer string
	// TokenTTL is how long an mfa_token from Login stays valid; default 5 minutes.
	TokenTTL time.Duration
	// MaxFailures attempts per mfa_token, and per user within Window, are allowed; then
	// VerifyMFA returns a *ThrottledError. The user's count is reset by a success.
	// Defaults 5 and 15 minutes. The token's count lives in Store, the user's in
	// Config.Throttle (as the login throttle's), so with shared stores every instance
	// sees both.
	MaxFailures int
	Window      time.Duration
}

// mfa is a Service's resolved MFAConfig.
type mfa struct {
	store   MFAStore
	aead    cipher.AEAD
	keyID   [4]byte
	old     map[[4]byte]cipher.AEAD
	issuer  string
	ttl     time.Duration
	max     int
	window  time.Duration
	params  totp.Params
	enabled bool
}

// newMFA resolves cfg.MFA. An unset Key gives an mfa that is off but still knows the
// store, so that Login refuses users who turned TOTP on rather than skip their code.
func newMFA(cfg Config) (*mfa, error) {
	mc := cfg.MFA
	if mc.Key == nil {
		m := &mfa{store: mc.Store}
		if m.store == nil {
			m.store, _ = cfg.Store.(MFAStore)
		}
		return m, nil
	}
	m := &mfa{store: mc.Store, issuer: mc.Issuer, ttl: mc.TokenTTL, max: mc.MaxFailures, window: mc.Window, old: map[[4]byte]cipher.AEAD{}, enabled: true}
	if m.store == nil {
		ms, ok := cfg.Store.(MFAStore)
		if !ok {
			return nil, errors.New("auth: Config.MFA.Store is nil and Config.Store does not implement MFAStore")
		}
		m.store = ms
	}
	if m.ttl < 0 || m.max < 0 || m.window < 0 {
		return nil, errors.New("auth: negative limits in Config.MFA")
	}
	if m.issuer == "" {
		m.issuer = DefaultMFAIssuer
	}
	if m.ttl == 0 {
		m.ttl = DefaultMFATokenTTL
	}
	if m.max == 0 {
		m.max = DefaultMaxMFAFailures
	}
	if m.window == 0 {
		m.window = DefaultMFAWindow
	}
	var err error
	if m.aead, m.keyID, err = newAEAD(mc.Key); err != nil {
		return nil, err
	}
	for _, k := range mc.OldKeys {
		a, id, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("auth: Config.MFA.OldKeys: %w", err)
		}
		m.old[id] = a
	}
	return m, nil
}

// newAEAD makes the AES-256-GCM of key and its 4-byte ID (a hash prefix, so a sealed
// secret names the key that opens it without revealing it).
func newAEAD(key []byte) (cipher.AEAD, [4]byte, error) {
	var id [4]byte
	if len(key) != MFAKeySize {
		return nil, id, fmt.Errorf("auth: an MFA key must be %d bytes", MFAKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, id, fmt.Errorf("auth: MFA key: %w", err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		return nil, id, fmt.Errorf("auth: MFA key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("nexus mfa key id\x00"), key...))
	copy(id[:], sum[:4])
	return a, id, nil
}

// ParseMFAKey decodes an MFA key given as base64 (standard or URL alphabet, padded or
// not) of exactly MFAKeySize bytes, e.g. the output of `openssl rand -base64 32`. Its
// error never repeats the input.
func ParseMFAKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == MFAKeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("auth: an MFA key must be %d bytes in base64", MFAKeySize)
}

// sealAAD binds a sealed secret to its user: a ciphertext copied to another user's row
// does not open.
func sealAAD(userID ecoid.ID) []byte { return []byte("nexus totp secret\x00" + string(userID)) }

// seal encrypts secret for userID: version, key ID, nonce, ciphertext and tag.
func (m *mfa) seal(userID ecoid.ID, secret []byte) []byte {
	out := make([]byte, 0, 1+4+m.aead.NonceSize()+len(secret)+m.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, m.keyID[:]...)
	nonce := make([]byte, m.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return m.aead.Seal(out, nonce, secret, sealAAD(userID))
}

// open decrypts what seal made, with Key or one of OldKeys.
func (m *mfa) open(userID ecoid.ID, sealed []byte) ([]byte, error) {
	ns := m.aead.NonceSize()
	if len(sealed) < 1+4+ns+m.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("auth: sealed TOTP secret: bad format")
	}
	var id [4]byte
	copy(id[:], sealed[1:5])
	a := m.aead
	if id != m.keyID {
		if a = m.old[id]; a == nil {
			return nil, errors.New("auth: sealed TOTP secret: sealed by an unknown key")
		}
	}
	secret, err := a.Open(nil, sealed[5:5+ns], sealed[5+ns:], sealAAD(userID))
	if err != nil {
		return nil, errors.New("auth: sealed TOTP secret: does not open")
	}
	return secret, nil
}

// mfaOn returns the mfa, or ErrMFADisabled when it is not configured.
func (s *Service) mfaOn() (*mfa, error) {
	if s.mfa == nil || !s.mfa.enabled {
		return nil, ErrMFADisabled
	}
	return s.mfa, nil
}

// The actions of two-factor authentication in the activity log.
const (
	ActionMFAEnroll    Action = "mfa_enroll"
	ActionMFAEnable    Action = "mfa_enable"
	ActionMFADisable   Action = "mfa_disable"
	ActionMFAChallenge Action = "mfa_challenge"
	ActionMFAVerify    Action = "mfa_verify"
	ActionMFAThrottled Action = "mfa_throttled"
)

// TOTPEnrollment is what EnrollTOTP returns once: the secret for the user's app, as
// base32 text and as an otpauth:// URL (for a QR code). Neither is shown again.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
}

// EnrollTOTP starts (or restarts) TOTP enrollment after checking the user's password:
// it makes a new secret, stores it encrypted as pending and returns it once. Logins need
// no code until ConfirmTOTP. The password is asked again (OWASP ASVS V3.7.1, NIST SP
// 800-63B §6.1.2.3: binding an authenticator needs the existing one) because whoever
// turns TOTP on decides who can log in: with a stolen access token alone, an attacker
// could otherwise bind a factor of their own and lock the owner out. Wrong passwords are
// throttled per user as DeleteAccount's are (AccountConfig.PasswordPerUser). Errors:
// ErrMFADisabled, ErrMFAEnabled when TOTP is already on, ErrInvalidCredentials for a wrong
// password, a *ThrottledError, ErrNotFound for an unknown user, or a store error.
func (s *Service) EnrollTOTP(ctx context.Context, c Client, userID ecoid.ID, password string) (TOTPEnrollment, error) {
	m, err := s.mfaOn()
	if err != nil {
		return TOTPEnrollment{}, err
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return TOTPEnrollment{}, fmt.Errorf("auth: enroll totp: %w", err)
	}
	if err := s.checkPassword(ctx, c, userID, password, ActionMFAEnroll); err != nil {
		return TOTPEnrollment{}, err
	}
	raw, text := totp.NewSecret()
	err = m.store.PutPendingTOTP(ctx, userID, m.seal(userID, raw), s.clock())
	if errors.Is(err, ErrConflict) {
		return TOTPEnrollment{}, ErrMFAEnabled
	}
	if err != nil {
		return TOTPEnrollment{}, fmt.Errorf("auth: enroll totp: %w", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionMFAEnroll, Success: true})
	return TOTPEnrollment{Secret: text, URL: m.params.URL(m.issuer, u.Email, raw)}, nil
}

// ConfirmTOTP turns TOTP on with a current code of the pending secret and returns
// RecoveryCodeCount new recovery codes (stored hashed, each usable once, replacing any
// earlier ones). The code counts as used. Errors: ErrMFADisabled, ErrMFAEnabled when
// already on, ErrInvalidCode for a wrong code or no pending enrollment, or a store error.
func (s *Service) ConfirmTOTP(ctx context.Context, c Client, userID ecoid.ID, code string) ([]string, error) {
	m, err := s.mfaOn()
	if err != nil {
		return nil, err
	}
	now := s.clock()
	st, err := m.store.TOTP(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: no enrollment to confirm", ErrInvalidCode)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: confirm totp: %w", err)
	}
	if st.Enabled() {
		return nil, ErrMFAEnabled
	}
	step, err := m.check(userID, st, code, now)
	if err != nil {
		s.record(ctx, c, Activity{UserID: userID, Action: ActionMFAEnable, Detail: "wrong code"})
		return nil, err
	}
	codes, hashes := newRecoveryCodes()
	err = m.store.EnableTOTP(ctx, userID, st.Sealed, step, hashes, now)
	switch {
	case errors.Is(err, ErrConflict):
		// Confirmed or re-enrolled meanwhile: this code belongs to a secret no longer pending.
		return nil, fmt.Errorf("%w: enrollment changed", ErrInvalidCode)
	case errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("%w: no enrollment to confirm", ErrInvalidCode)
	case err != nil:
		return nil, fmt.Errorf("auth: confirm totp: %w", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionMFAEnable, Success: true})
	return codes, nil
}

// check parses code and matches it against st's secret within ±1 step; it returns the
// step matched. It does not record the step as used.
func (m *mfa) check(userID ecoid.ID, st TOTPState, code string, now time.Time) (int64, error) {
	digits, err := m.params.ParseCode(code)
	if err != nil {
		return 0, fmt.Errorf("%w: malformed", ErrInvalidCode)
	}
	secret, err := m.open(userID, st.Sealed)
	if err != nil {
		return 0, err
	}
	step, ok := m.params.Match(secret, digits, now, totpSkew)
	if !ok || step <= st.LastStep {
		return 0, ErrInvalidCode
	}
	return step, nil
}

// DisableTOTP turns TOTP off after checking the user's password and a current code (or
// an unused recovery code), and deletes the secret and recovery codes. Attempts count
// against the user's MFA limit. Errors: ErrMFADisabled, ErrMFANotEnabled,
// ErrInvalidCredentials for a wrong password, ErrInvalidCode, a *ThrottledError, or a
// store error.
func (s *Service) DisableTOTP(ctx context.Context, c Client, userID ecoid.ID, password, code string) error {
	m, err := s.mfaOn()
	if err != nil {
		return err
	}
	now := s.clock()
	st, err := m.store.TOTP(ctx, userID)
	if errors.Is(err, ErrNotFound) || (err == nil && !st.Enabled()) {
		return ErrMFANotEnabled
	}
	if err != nil {
		return fmt.Errorf("auth: disable totp: %w", err)
	}
	if err := s.reserveUser(ctx, c, m, userID, now); err != nil {
		return err
	}
	hash, err := s.store.PasswordHash(ctx, userID)
	if err != nil {
		return fmt.Errorf("auth: disable totp: %w", err)
	}
	if _, err := s.hasher.Verify(hash, password); err != nil {
		s.record(ctx, c, Activity{UserID: userID, Action: ActionMFADisable, Detail: "wrong password"})
		return ErrInvalidCredentials
	}
	how, err := s.proveSecondFactor(ctx, m, userID, code, now)
	if err != nil {
		s.record(ctx, c, Activity{UserID: userID, Action: ActionMFADisable, Detail: how})
		return err
	}
	if err := m.store.DeleteTOTP(ctx, userID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("auth: disable totp: %w", err)
	}
	if err := s.throttle.Reset(context.WithoutCancel(ctx), mfaUserKey(userID)); err != nil {
		s.log.Warn("auth: resetting the MFA attempt count failed", "user", userID, "err", err)
	}
	s.record(ctx, c, Activity{UserID: userID, Action: ActionMFADisable, Success: true, Detail: how})
	return nil
}

// proveSecondFactor accepts a TOTP code (six digits) or a recovery code and spends it.
// It returns what was used (or why it failed) for the activity log.
func (s *Service) proveSecondFactor(ctx context.Context, m *mfa, userID ecoid.ID, code string, now time.Time) (string, error) {
	if _, err := m.params.ParseCode(code); err == nil {
		return "totp", s.spendTOTP(ctx, m, userID, code, now)
	}
	return "recovery code", s.spendRecoveryCode(ctx, m, userID, code, now)
}

// spendTOTP checks code against the user's enabled TOTP and records its step as used;
// a step used before (on any instance) is refused.
func (s *Service) spendTOTP(ctx context.Context, m *mfa, userID ecoid.ID, code string, now time.Time) error {
	st, err := m.store.TOTP(ctx, userID)
	if errors.Is(err, ErrNotFound) || (err == nil && !st.Enabled()) {
		return fmt.Errorf("%w: two-factor authentication is off", ErrInvalidCode)
	}
	if err != nil {
		return fmt.Errorf("auth: totp: %w", err)
	}
	step, err := m.check(userID, st, code, now)
	if err != nil {
		return err
	}
	err = m.store.UseTOTPStep(ctx, userID, step)
	switch {
	case errors.Is(err, ErrConflict):
		return fmt.Errorf("%w: code already used", ErrInvalidCode)
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: two-factor authentication is off", ErrInvalidCode)
	case err != nil:
		return fmt.Errorf("auth: totp: %w", err)
	}
	return nil
}

// spendRecoveryCode marks one of the user's recovery codes used, once.
func (s *Service) spendRecoveryCode(ctx context.Context, m *mfa, userID ecoid.ID, code string, now time.Time) error {
	canon, err := ParseRecoveryCode(code)
	if err != nil {
		return err
	}
	err = m.store.UseRecoveryCode(ctx, userID, hashRecoveryCode(canon), now)
	if errors.Is(err, ErrNotFound) {
		return ErrInvalidCode
	}
	if err != nil {
		return fmt.Errorf("auth: recovery code: %w", err)
	}
	return nil
}

// mfaUserKey is the ThrottleStore key of a user's MFA attempts.
func mfaUserKey(userID ecoid.ID) string { return ThrottleKey("mfa-user", string(userID)) }

// reserveUser counts one MFA attempt of the user in the Service's ThrottleStore (shared
// by every instance when Config.Throttle is), or returns a *ThrottledError. A failing
// store fails closed: ErrThrottleUnavailable, no code checked.
func (s *Service) reserveUser(ctx context.Context, c Client, m *mfa, userID ecoid.ID, now time.Time) error {
	r, err := s.throttle.Reserve(ctx, mfaUserKey(userID), AttemptLimit{Max: m.max, Window: m.window}, now)
	if err != nil {
		s.log.Error("auth: mfa throttle failed; code refused", "err", err)
		return fmt.Errorf("%w: %w", ErrThrottleUnavailable, err)
	}
	if !r.OK {
		s.record(ctx, c, Activity{UserID: userID, Action: ActionMFAThrottled, Detail: "too many failed codes"})
		return &ThrottledError{RetryAfter: r.RetryAfter}
	}
	return nil
}

// MFAEnabled reports whether the user has confirmed TOTP (false when the store keeps
// no MFA state).
func (s *Service) MFAEnabled(ctx context.Context, userID ecoid.ID) (bool, error) {
	m := s.mfa
	if m == nil || m.store == nil {
		return false, nil
	}
	st, err := m.store.TOTP(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: mfa enabled: %w", err)
	}
	return st.Enabled(), nil
}

// RecoveryCodesLeft returns how many unused recovery codes the user has.
func (s *Service) RecoveryCodesLeft(ctx context.Context, userID ecoid.ID) (int, error) {
	m, err := s.mfaOn()
	if err != nil {
		return 0, err
	}
	return m.store.RecoveryCodesLeft(ctx, userID)
}

// mfaGate is Login's last step: nil when the user may have a session now (no TOTP, or
// a store without MFA), else a stored challenge as a *MFARequiredError. A user with
// TOTP on while the Service has no MFA key is refused with ErrMFADisabled: removing the
// key from the configuration must not switch the second factor off.
func (s *Service) mfaGate(ctx context.Context, c Client, u User, now time.Time) error {
	m := s.mfa
	if m == nil || m.store == nil {
		return nil
	}
	st, err := m.store.TOTP(ctx, u.ID)
	if errors.Is(err, ErrNotFound) || (err == nil && !st.Enabled()) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth: login: %w", err)
	}
	if !m.enabled {
		s.log.Warn("auth: a user with TOTP on cannot log in: Config.MFA.Key is not set", "user", u.ID)
		return fmt.Errorf("%w: the account requires a second factor", ErrMFADisabled)
	}
	var raw [mfaTokenBytes]byte
	_, _ = rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	ch := MFAChallenge{
		TokenHash: hashMFAToken(raw[:]), UserID: u.ID, IP: c.IP, UserAgent: c.UserAgent,
		CreatedAt: now, ExpiresAt: now.Add(m.ttl),
	}
	if err := m.store.CreateMFAChallenge(ctx, ch); err != nil {
		return fmt.Errorf("auth: login: %w", err)
	}
	s.record(ctx, c, Activity{UserID: u.ID, Email: u.Email, Action: ActionMFAChallenge, Success: true, Detail: "password ok, code required"})
	return &MFARequiredError{UserID: u.ID, Token: token, ExpiresAt: ch.ExpiresAt}
}

// VerifyMFA finishes a login that returned a *MFARequiredError: with its token and a
// current TOTP code it opens the session Login would have opened. Each code is accepted
// once (its time step is recorded in the store, so a replay is refused on every
// instance), with one step of clock skew either way. Every attempt counts, before the
// code is checked, against MaxFailures per token and per user. Errors:
// ErrInvalidMFAToken (malformed, unknown, expired, used, or from another client),
// ErrInvalidCode, a *ThrottledError (errors.Is ErrTooManyAttempts), ErrMFADisabled, or a
// store error.
func (s *Service) VerifyMFA(ctx context.Context, c Client, mfaToken, code string) (Result, error) {
	return s.finishMFA(ctx, c, mfaToken, "totp", func(m *mfa, userID ecoid.ID, now time.Time) error {
		return s.spendTOTP(ctx, m, userID, code, now)
	})
}

// VerifyMFARecovery is VerifyMFA with a recovery code instead of a TOTP code; each
// recovery code works once.
func (s *Service) VerifyMFARecovery(ctx context.Context, c Client, mfaToken, recoveryCode string) (Result, error) {
	return s.finishMFA(ctx, c, mfaToken, "recovery code", func(m *mfa, userID ecoid.ID, now time.Time) error {
		return s.spendRecoveryCode(ctx, m, userID, recoveryCode, now)
	})
}

func (s *Service) finishMFA(ctx context.Context, c Client, mfaToken, how string, prove func(*mfa, ecoid.ID, time.Time) error) (Result, error) {
	m, err := s.mfaOn()
	if err != nil {
		return Result{}, err
	}
	now := s.clock()
	raw, err := parseMFAToken(mfaToken)
	if err != nil {
		return Result{}, err
	}
	th := hashMFAToken(raw)
	ch, err := m.store.ReserveMFAAttempt(ctx, th, m.max, now)
	switch {
	case errors.Is(err, ErrNotFound):
		return Result{}, ErrInvalidMFAToken
	case errors.Is(err, ErrConflict):
		s.record(ctx, c, Activity{UserID: ch.UserID, Action: ActionMFAThrottled, Detail: "too many codes for one mfa token"})
		return Result{}, &ThrottledError{RetryAfter: ch.ExpiresAt.Sub(now)}
	case err != nil:
		return Result{}, fmt.Errorf("auth: mfa verify: %w", err)
	}
	if ch.IP != c.IP || ch.UserAgent != c.UserAgent {
		s.record(ctx, c, Activity{UserID: ch.UserID, Action: ActionMFAVerify, Detail: "mfa token from another client"})
		return Result{}, fmt.Errorf("%w: another client", ErrInvalidMFAToken)
	}
	if err := s.reserveUser(ctx, c, m, ch.UserID, now); err != nil {
		return Result{}, err
	}
	if err := prove(m, ch.UserID, now); err != nil {
		s.record(ctx, c, Activity{UserID: ch.UserID, Action: ActionMFAVerify, Detail: "wrong or used " + how})
		return Result{}, err
	}
	if err := m.store.DeleteMFAChallenge(ctx, th); errors.Is(err, ErrNotFound) {
		return Result{}, fmt.Errorf("%w: used", ErrInvalidMFAToken) // another proof won
	} else if err != nil {
		return Result{}, fmt.Errorf("auth: mfa verify: %w", err)
	}
	if err := s.throttle.Reset(context.WithoutCancel(ctx), mfaUserKey(ch.UserID)); err != nil {
		s.log.Warn("auth: resetting the MFA attempt count failed", "user", ch.UserID, "err", err)
	}
	u, err := s.store.UserByID(ctx, ch.UserID)
	if err != nil {
		return Result{}, fmt.Errorf("auth: mfa verify: %w", err)
	}
	t, err := s.openSession(ctx, c, u.ID, now)
	if err != nil {
		return Result{}, err
	}
	s.record(ctx, c, Activity{UserID: u.ID, Action: ActionMFAVerify, Success: true, Detail: how})
	s.record(ctx, c, Activity{UserID: u.ID, Email: u.Email, Action: ActionLogin, Success: true, Detail: "with " + how})
	return Result{User: u, Tokens: t}, nil
}

// parseMFAToken decodes an mfa_token: mfaTokenBytes bytes in unpadded base64url.
func parseMFAToken(s string) ([]byte, error) {
	if len(s) != base64.RawURLEncoding.EncodedLen(mfaTokenBytes) {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidMFAToken)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != mfaTokenBytes {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidMFAToken)
	}
	return raw, nil
}

func hashMFAToken(raw []byte) []byte {
	h := sha256.Sum256(raw)
	return h[:]
}

// recoveryAlphabet is Crockford's base32: digits and lower-case letters without i, l,
// o and u, so codes survive being read aloud or copied by hand.
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newRecoveryCodes returns RecoveryCodeCount codes as shown to the user
// ("xxxx-xxxx-xxxx-xxxx", 80 random bits each) and the hashes to store.
func newRecoveryCodes() (codes []string, hashes [][]byte) {
	for range RecoveryCodeCount {
		var raw [recoveryCodeChars]byte
		_, _ = rand.Read(raw[:])
		var b strings.Builder
		canon := make([]byte, recoveryCodeChars)
		for i, r := range raw {
			canon[i] = recoveryAlphabet[r&31] // 256 is a multiple of 32: no bias
			if i > 0 && i%4 == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(canon[i])
		}
		codes = append(codes, b.String())
		hashes = append(hashes, hashRecoveryCode(string(canon)))
	}
	return codes, hashes
}

// ParseRecoveryCode reads a recovery code as a person may type it: case-insensitive,
// spaces and hyphens anywhere, and Crockford's look-alikes (i and l for 1, o for 0). It
// returns the canonical 16 characters, or an error wrapping ErrInvalidCode that does not
// repeat the input.
func ParseRecoveryCode(s string) (string, error) {
	if len(s) > 4*recoveryCodeChars {
		return "", fmt.Errorf("%w: malformed recovery code", ErrInvalidCode)
	}
	out := make([]byte, 0, recoveryCodeChars)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '-' {
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch c {
		case 'i', 'l':
			c = '1'
		case 'o':
			c = '0'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 || len(out) == recoveryCodeChars {
			return "", fmt.Errorf("%w: malformed recovery code", ErrInvalidCode)
		}
		out = append(out, c)
	}
	if len(out) != recoveryCodeChars {
		return "", fmt.Errorf("%w: malformed recovery code", ErrInvalidCode)
	}
	return string(out), nil
}

// hashRecoveryCode is what the store keeps of a canonical recovery code. 80 random bits
// make a fast hash safe here (no guessing them from a stolen table).
func hashRecoveryCode(canon string) []byte {
	h := sha256.Sum256([]byte("nexus recovery code\x00" + canon))
	return h[:]
}
