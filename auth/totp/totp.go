// Package totp computes and checks one-time passwords: HOTP (RFC 4226) and TOTP
// (RFC 6238), with the standard library only.
//
// The zero Params are what every authenticator app speaks and what Nexus uses: SHA-1,
// 6 digits, 30-second steps, a base32 secret of 20 random bytes. Params.Match reports the
// time step a code matched, so that a caller can refuse a second use of one step (RFC 6238
// section 5.2); the package itself keeps no state and is safe for concurrent use.
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strings"
	"time"
)

// Errors of the parsers. Messages never repeat the input, which may be a secret.
var (
	// ErrInvalidCode means a code is not Digits ASCII digits (spaces and one hyphen
	// between groups aside).
	ErrInvalidCode = errors.New("totp: invalid code")
	// ErrInvalidSecret means a secret is not base32 or is shorter than MinSecretBytes.
	ErrInvalidSecret = errors.New("totp: invalid secret")
)

// Defaults of the zero Params, and the size of secrets NewSecret makes.
const (
	DefaultDigits = 6
	DefaultPeriod = 30 * time.Second
	// SecretBytes is the size of a secret from NewSecret: 160 bits, the HMAC-SHA-1 block
	// size RFC 4226 section 4 recommends.
	SecretBytes = 20
	// MinSecretBytes is the shortest secret DecodeSecret accepts (RFC 4226: 128 bits).
	MinSecretBytes = 16
	// MaxSecretBytes bounds DecodeSecret's input so a hostile secret cannot cost much.
	MaxSecretBytes = 128
)

// Algorithm is the HMAC hash of RFC 6238 section 1.2.
type Algorithm int

// The algorithms. SHA1 is the zero value and the only one common apps support.
const (
	SHA1 Algorithm = iota
	SHA256
	SHA512
)

// String returns the name an otpauth URL uses: SHA1, SHA256 or SHA512.
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return "SHA1"
}

func (a Algorithm) new() func() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	}
	return sha1.New
}

// Params are the parameters of a TOTP. The zero value means SHA-1, 6 digits, 30 s.
type Params struct {
	// Digits is the code length, 6 to 8; 0 means DefaultDigits (6).
	Digits int
	// Period is the time step X of RFC 6238; 0 means DefaultPeriod (30 s).
	Period time.Duration
	// Algorithm is the HMAC hash; the zero value is SHA1.
	Algorithm Algorithm
}

func (p Params) digits() int {
	if p.Digits < 6 || p.Digits > 8 {
		return DefaultDigits
	}
	return p.Digits
}

func (p Params) period() time.Duration {
	if p.Period <= 0 {
		return DefaultPeriod
	}
	return p.Period
}

// Step returns the time step T of RFC 6238 section 4.2 that t falls in (T0 = 0). Times
// before 1970 give negative steps.
func (p Params) Step(t time.Time) int64 {
	sec := int64(p.period() / time.Second)
	if sec < 1 {
		sec = 1
	}
	u := t.Unix()
	s := u / sec
	if u < 0 && u%sec != 0 {
		s-- // floor, not truncation towards zero
	}
	return s
}

// Code returns the code of step (RFC 4226 HOTP with the step as counter), zero-padded
// to Digits digits.
func (p Params) Code(secret []byte, step int64) string {
	return hotp(p.Algorithm.new(), secret, uint64(step), p.digits())
}

// Match reports whether code is the code of the step of t or of one of the skew steps
// before or after it (skew < 0 counts as 0), and which step it matched. Every candidate is
// compared in constant time, so the answer's timing does not say which step matched or
// how much of the code was right. When two steps share a code the later one is reported,
// so that refusing steps up to it also refuses the other.
func (p Params) Match(secret []byte, code string, t time.Time, skew int) (step int64, ok bool) {
	if skew < 0 {
		skew = 0
	}
	now := p.Step(t)
	var found int64
	matched := 0
	for d := -int64(skew); d <= int64(skew); d++ {
		want := p.Code(secret, now+d)
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		if eq == 1 {
			found = now + d
		}
		matched |= eq
	}
	return found, matched == 1
}

// hotp is RFC 4226 section 5.3: HMAC, dynamic truncation, modulo 10^digits.
func hotp(h func() hash.Hash, key []byte, counter uint64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(h, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// b32 is the unpadded RFC 4648 base32 that authenticator apps read.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns SecretBytes random bytes from crypto/rand and their unpadded base32
// form, the text a user types into an authenticator app.
func NewSecret() (raw []byte, text string) {
	raw = make([]byte, SecretBytes)
	_, _ = rand.Read(raw) // never fails (Go 1.24+)
	return raw, b32.EncodeToString(raw)
}

// EncodeSecret returns the unpadded base32 form of secret.
func EncodeSecret(secret []byte) string { return b32.EncodeToString(secret) }

// DecodeSecret reads a base32 secret as apps print it: case-insensitive, spaces and
// hyphens ignored, padding optional. It returns an error wrapping ErrInvalidSecret for
// anything else, or for a secret shorter than MinSecretBytes or longer than
// MaxSecretBytes.
func DecodeSecret(s string) ([]byte, error) {
	if len(s) > 2*MaxSecretBytes {
		return nil, fmt.Errorf("%w: too long", ErrInvalidSecret)
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '=':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
	raw, err := b32.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base32", ErrInvalidSecret)
	}
	if len(raw) < MinSecretBytes || len(raw) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalidSecret, len(raw), MinSecretBytes, MaxSecretBytes)
	}
	return raw, nil
}

// ParseCode reads a code a person typed: Digits ASCII digits, optionally split into
// groups by spaces or one hyphen ("123 456", "123-456"). It returns the bare digits, or
// an error wrapping ErrInvalidCode.
func (p Params) ParseCode(s string) (string, error) {
	n := p.digits()
	if len(s) > 2*n+8 {
		return "", fmt.Errorf("%w: too long", ErrInvalidCode)
	}
	var buf [8]byte
	got, hyphens := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if got == n {
				return "", fmt.Errorf("%w: more than %d digits", ErrInvalidCode, n)
			}
			buf[got] = c
			got++
		case c == ' ':
		case c == '-' && hyphens == 0 && got > 0:
			hyphens++
		default:
			return "", fmt.Errorf("%w: want %d digits", ErrInvalidCode, n)
		}
	}
	if got != n {
		return "", fmt.Errorf("%w: want %d digits", ErrInvalidCode, n)
	}
	return string(buf[:n]), nil
}

// URL returns the otpauth:// key URI authenticator apps import (Google Authenticator's
// Key Uri Format): otpauth://totp/Issuer:account?secret=…&issuer=…&algorithm=…&digits=…&period=….
// It holds the secret: show it once, never log it.
func (p Params) URL(issuer, account string, secret []byte) string {
	label := escape(account)
	if issuer != "" {
		label = escape(issuer) + ":" + label
	}
	q := url.Values{}
	q.Set("secret", EncodeSecret(secret))
	if issuer != "" {
		q.Set("issuer", issuer)
	}
	q.Set("algorithm", p.Algorithm.String())
	q.Set("digits", fmt.Sprint(p.digits()))
	q.Set("period", fmt.Sprint(int64(p.period()/time.Second)))
	// Spaces as %20, not +: the format is a URI and some apps keep a literal +.
	return "otpauth://totp/" + label + "?" + strings.ReplaceAll(q.Encode(), "+", "%20")
}

// escape percent-encodes a label part, including the ':' that separates issuer and
// account.
func escape(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}
