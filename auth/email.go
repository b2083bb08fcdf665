package auth

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// MaxEmailBytes is the longest address NormalizeEmail accepts (RFC 5321 path limit).
const MaxEmailBytes = 254

// ErrInvalidEmail means an address is not a plain, valid email address.
var ErrInvalidEmail = errors.New("auth: invalid email address")

// NormalizeEmail parses s with net/mail and returns the address in lower case. Surrounding
// white space is ignored. It returns an error wrapping ErrInvalidEmail for anything that is
// not one bare address: display names ("Ann <ann@example.com>"), angle brackets, comments,
// groups, or an address over MaxEmailBytes bytes.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidEmail)
	}
	if len(s) > MaxEmailBytes {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidEmail, MaxEmailBytes)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", ErrInvalidEmail
	}
	return strings.ToLower(addr.Address), nil
}
