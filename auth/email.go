package auth

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/nexus-ecosystem/nexus/internal/safetext"
	"golang.org/x/text/unicode/norm"
)

// MaxEmailBytes is the longest address NormalizeEmail accepts (RFC 5321 path limit).
const MaxEmailBytes = 254

// ErrInvalidEmail means an address is not a plain, valid email address.
var ErrInvalidEmail = errors.New("auth: invalid email address")

// NormalizeEmail parses s with net/mail and returns the address in Unicode Normalization
// Form C and lower case, so that an address typed with precomposed or combining accents
// (katé as é or as e + U+0301) names one account: NFC is what RFC 6532 §3.1 asks of
// internationalised addresses, and NFKC would merge addresses that mail servers keep
// apart. Surrounding white space is ignored. It returns an error wrapping
// ErrInvalidEmail for anything that is not one bare address: display names ("Ann
// <ann@example.com>"), angle brackets, comments, groups, a domain literal
// ("ann@[192.0.2.1]": mail to it goes to whatever host the address names, not to one the
// domain's MX records name), or an address over MaxEmailBytes bytes.
func NormalizeEmail(s string) (string, error) {
	s = norm.NFC.String(strings.TrimSpace(s))
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidEmail)
	}
	if len(s) > MaxEmailBytes {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidEmail, MaxEmailBytes)
	}
	if !safetext.Clean(s) {
		return "", fmt.Errorf("%w: control or bidirectional-override characters", ErrInvalidEmail)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", ErrInvalidEmail
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 && strings.HasPrefix(s[at+1:], "[") {
		return "", fmt.Errorf("%w: a domain literal, not a domain name", ErrInvalidEmail)
	}
	// Lower-casing can undo NFC (a few capitals lower to a letter and a combining mark
	// that then compose), so normalise once more.
	out := norm.NFC.String(strings.ToLower(addr.Address))
	if len(out) > MaxEmailBytes {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidEmail, MaxEmailBytes)
	}
	return out, nil
}
