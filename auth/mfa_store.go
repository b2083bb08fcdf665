package auth

import (
	"context"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// MaxMFAChallenges is how many live MFA challenges (logins waiting for a code) an
// MFAStore keeps per user; a new one beyond it replaces the oldest.
const MaxMFAChallenges = 10

// TOTPState is a user's TOTP enrollment as an MFAStore keeps it.
type TOTPState struct {
	UserID ecoid.ID
	// Sealed is the secret encrypted by the Service (AES-256-GCM, bound to UserID); the
	// store keeps it as opaque bytes and never sees the secret.
	Sealed    []byte
	CreatedAt time.Time // when this enrollment began
	EnabledAt time.Time // when it was confirmed; zero while pending
	// LastStep is the last TOTP time step accepted; codes of this step or an earlier one
	// are refused (replay). -1 before any.
	LastStep int64
}

// Enabled reports whether the enrollment has been confirmed, so logins need a code.
func (t TOTPState) Enabled() bool { return !t.EnabledAt.IsZero() }

// MFAChallenge is the second step of a login whose password was right: the user must
// present a code with the challenge's token before ExpiresAt, from the same client.
// Only the SHA-256 of the token is stored.
type MFAChallenge struct {
	TokenHash []byte
	UserID    ecoid.ID
	IP        string // client of the login
	UserAgent string //
	Attempts  int    // verifications tried with this token, successful or not
	CreatedAt time.Time
	ExpiresAt time.Time
}

// MFAStore keeps TOTP enrollments, recovery codes and MFA login challenges (the per-user
// count of MFA attempts lives in the Service's ThrottleStore). storage/memory and storage/postgres implement it on their
// AuthStore. Every method is safe for concurrent use, and every method documented as
// atomic stays so across processes sharing the store.
type MFAStore interface {
	// PutPendingTOTP stores sealed as the user's unconfirmed TOTP secret created at at,
	// replacing an earlier pending one (and its LastStep). It returns ErrConflict,
	// changing nothing, when the user's TOTP is enabled, and ErrNotFound when there is no
	// such user.
	PutPendingTOTP(ctx context.Context, userID ecoid.ID, sealed []byte, at time.Time) error
	// TOTP returns the user's enrollment, pending or enabled, or ErrNotFound.
	TOTP(ctx context.Context, userID ecoid.ID) (TOTPState, error)
	// EnableTOTP confirms the user's pending enrollment if, and only if, its secret is
	// still sealed (a re-enrollment in between wins): EnabledAt becomes at, LastStep step,
	// and the user's recovery codes are replaced by recoveryHashes, all unused. It returns
	// ErrNotFound when no enrollment exists and ErrConflict, changing nothing, when it is
	// already enabled or holds another secret. It is atomic.
	EnableTOTP(ctx context.Context, userID ecoid.ID, sealed []byte, step int64, recoveryHashes [][]byte, at time.Time) error
	// DeleteTOTP removes the user's enrollment, recovery codes and challenges. It returns ErrNotFound when there is no enrollment.
	DeleteTOTP(ctx context.Context, userID ecoid.ID) error
	// UseTOTPStep records step as the user's last accepted time step if, and only if, the
	// TOTP is enabled and step > LastStep (compare-and-set): of concurrent calls with one
	// step exactly one returns nil. It returns ErrConflict when step ≤ LastStep (a replay)
	// and ErrNotFound when the user has no enabled TOTP.
	UseTOTPStep(ctx context.Context, userID ecoid.ID, step int64) error
	// UseRecoveryCode marks the user's unused recovery code with this hash as used at at.
	// It returns ErrNotFound when there is no such unused code; of concurrent calls with
	// one code exactly one returns nil.
	UseRecoveryCode(ctx context.Context, userID ecoid.ID, hash []byte, at time.Time) error
	// RecoveryCodesLeft returns how many unused recovery codes the user has (0 when none).
	RecoveryCodesLeft(ctx context.Context, userID ecoid.ID) (int, error)

	// CreateMFAChallenge stores c with Attempts 0, deletes the user's challenges expired
	// at c.CreatedAt and, beyond MaxMFAChallenges live ones, the oldest, so that someone
	// who knows the password cannot fill the store by logging in (concurrent logins may
	// leave a few more until the next one). It returns ErrNotFound when the user does not
	// exist.
	CreateMFAChallenge(ctx context.Context, c MFAChallenge) error
	// ReserveMFAAttempt counts one attempt against the challenge with tokenHash and
	// returns it with the new count, if now is before its ExpiresAt and fewer than max
	// attempts were counted. It returns ErrNotFound when there is no such challenge or it
	// has expired, and the challenge with ErrConflict, counting nothing, when max attempts
	// were counted. Of concurrent calls at most max succeed. It is atomic.
	ReserveMFAAttempt(ctx context.Context, tokenHash []byte, max int, now time.Time) (MFAChallenge, error)
	// DeleteMFAChallenge removes the challenge; it returns ErrNotFound when it is gone, so
	// of concurrent calls exactly one returns nil.
	DeleteMFAChallenge(ctx context.Context, tokenHash []byte) error
}
