package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// TokenPurpose says what a one-time token may do. A token is redeemed only for the
// purpose it was issued for: an email-verification token cannot reset a password.
type TokenPurpose string

// The purposes of one-time tokens.
const (
	PurposeVerifyEmail   TokenPurpose = "verify_email"
	PurposeResetPassword TokenPurpose = "reset_password"
)

// Valid reports whether p is one of the purposes above.
func (p TokenPurpose) Valid() bool { return p == PurposeVerifyEmail || p == PurposeResetPassword }

// Lifetimes of one-time tokens when AccountConfig leaves them zero.
const (
	DefaultVerifyEmailTTL   = 24 * time.Hour
	DefaultResetPasswordTTL = time.Hour
)

// oneTimeTokenBytes is the entropy of a one-time token: 256 bits from crypto/rand.
const oneTimeTokenBytes = 32

// oneTimeTokenLen is the length of its unpadded base64url text.
var oneTimeTokenLen = base64.RawURLEncoding.EncodedLen(oneTimeTokenBytes)

// ErrInvalidOneTimeToken is the one answer to a one-time token that cannot be redeemed:
// malformed, unknown, already used, expired, issued for another purpose, or issued to an
// address the account no longer has. Servers answer it 400 invalid_token.
var ErrInvalidOneTimeToken = errors.New("auth: invalid, used or expired token")

// OneTimeToken is what a store keeps of a one-time token: never the token itself, only
// its SHA-256 hash.
type OneTimeToken struct {
	Hash      []byte // SHA-256 of the token text
	UserID    ecoid.ID
	Purpose   TokenPurpose
	Email     string // the normalised address the token was mailed to
	CreatedAt time.Time
	ExpiresAt time.Time
}

// newOneTimeToken returns a fresh token (256 random bits as unpadded base64url, safe in a
// URL query) and its hash.
func newOneTimeToken() (string, []byte, error) {
	var b [oneTimeTokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("auth: one-time token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	return tok, hashOneTimeToken(tok), nil
}

// parseOneTimeToken checks the shape of a presented token (so garbage never reaches a
// store) and returns its hash; ErrInvalidOneTimeToken for anything but 43 base64url
// characters.
func parseOneTimeToken(tok string) ([]byte, error) {
	if len(tok) != oneTimeTokenLen {
		return nil, ErrInvalidOneTimeToken
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(tok); err != nil {
		return nil, ErrInvalidOneTimeToken
	}
	return hashOneTimeToken(tok), nil
}

func hashOneTimeToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}
