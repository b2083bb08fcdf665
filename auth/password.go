package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
)

// MaxPasswordBytes is bcrypt's input limit. A longer password is rejected, never truncated:
// bcrypt would otherwise accept any password that shares its first 72 bytes.
const MaxPasswordBytes = 72

// DefaultBcryptCost is the bcrypt cost used when a configuration leaves it zero.
const DefaultBcryptCost = 10

// Password errors.
var (
	// ErrWeakPassword is matched (errors.Is) by every *PolicyError.
	ErrWeakPassword = errors.New("auth: weak password")
	// ErrPasswordTooLong means a password is over MaxPasswordBytes.
	ErrPasswordTooLong = errors.New("auth: password longer than 72 bytes")
	// ErrPasswordMismatch means a password does not match a hash.
	ErrPasswordMismatch = errors.New("auth: password does not match")
)

// Rule names one password rule, as reported by a PolicyError.
type Rule string

// The rules a Policy can enforce.
const (
	RuleMinLength   Rule = "min_length"  // fewer characters than Policy.MinLength
	RuleMaxBytes    Rule = "max_bytes"   // more than MaxPasswordBytes bytes
	RuleUpper       Rule = "upper"       // no upper-case letter
	RuleLower       Rule = "lower"       // no lower-case letter
	RuleDigit       Rule = "digit"       // no digit
	RuleSymbol      Rule = "symbol"      // no symbol (neither letter, digit nor space)
	RuleBlocklisted Rule = "blocklisted" // on Policy.Blocklist
	RuleInvalidUTF8 Rule = "utf8"        // not valid UTF-8
)

// Policy says what a password must look like. Build one with DefaultPolicy or NISTPolicy
// and adjust the fields; the zero Policy is treated by Config as DefaultPolicy. Whatever
// the policy, a password over MaxPasswordBytes bytes always fails (RuleMaxBytes).
// A Policy is a plain value, safe for concurrent use once built.
type Policy struct {
	MinLength     int      // minimum length in characters (runes)
	RequireUpper  bool     // at least one upper-case letter
	RequireLower  bool     // at least one lower-case letter
	RequireDigit  bool     // at least one digit
	RequireSymbol bool     // at least one character that is not a letter, digit or space
	Blocklist     []string // passwords refused outright, compared case-insensitively
}

// DefaultPolicy is at least 12 characters with an upper- and a lower-case letter, a digit
// and a symbol.
func DefaultPolicy() Policy {
	return Policy{MinLength: 12, RequireUpper: true, RequireLower: true, RequireDigit: true, RequireSymbol: true}
}

// NISTPolicy follows NIST SP 800-63B: at least 15 characters, no composition rules, and a
// blocklist of commonly used and compromised passwords (extend Blocklist with your own).
func NISTPolicy() Policy {
	return Policy{MinLength: 15, Blocklist: append([]string(nil), commonPasswords...)}
}

// commonPasswords are frequent passwords of 15 characters or more, from public breach lists.
var commonPasswords = []string{
	"123456789012345", "1234567890123456", "qwertyuiopasdfgh", "qwertyuiopasdfghjkl",
	"passwordpassword", "password1234567", "password12345678", "iloveyouiloveyou",
	"abcdefghijklmnop", "aaaaaaaaaaaaaaa", "111111111111111", "000000000000000",
	"correcthorsebatterystaple", "letmeinletmein1", "administrator123", "qwerty123456789",
}

// IsZero reports whether p is the zero Policy.
func (p Policy) IsZero() bool {
	return p.MinLength == 0 && !p.RequireUpper && !p.RequireLower && !p.RequireDigit && !p.RequireSymbol && len(p.Blocklist) == 0
}

// PolicyError lists every rule a password failed. It matches ErrWeakPassword with errors.Is.
type PolicyError struct {
	Failed []Rule // in a stable order
	Policy Policy // the policy that was applied, to describe the rules
}

// Error describes every failed rule, e.g. "auth: weak password: at least 12 characters;
// a digit".
func (e *PolicyError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, r := range e.Failed {
		parts[i] = e.Describe(r)
	}
	return "auth: weak password: " + strings.Join(parts, "; ")
}

// Describe returns a short human sentence for one rule.
func (e *PolicyError) Describe(r Rule) string {
	switch r {
	case RuleMinLength:
		return fmt.Sprintf("at least %d characters", e.Policy.MinLength)
	case RuleMaxBytes:
		return fmt.Sprintf("at most %d bytes", MaxPasswordBytes)
	case RuleUpper:
		return "an upper-case letter"
	case RuleLower:
		return "a lower-case letter"
	case RuleDigit:
		return "a digit"
	case RuleSymbol:
		return "a symbol"
	case RuleBlocklisted:
		return "not a commonly used password"
	case RuleInvalidUTF8:
		return "valid UTF-8 text"
	}
	return string(r)
}

// Is makes errors.Is(err, ErrWeakPassword) true.
func (e *PolicyError) Is(target error) bool { return target == ErrWeakPassword }

// NormalizePassword returns password in Unicode Normalization Form KC, as NIST SP
// 800-63B §5.1.1.2 asks of verifiers that accept Unicode: the same password typed on
// keyboards or input methods that compose characters differently (é as one code point
// or as e and a combining accent, a full-width digit, a ligature) is then one password.
// NFKC rather than NFC because NIST names NFKC or NFKD, and because compatibility
// variants (full-width forms from CJK input methods) are what users cannot see apart;
// the few distinct passwords it merges cost no measurable strength. Hasher applies it
// in Hash and Verify, Policy in Validate. Invalid UTF-8 is returned unchanged in its
// invalid parts; the result can be longer than password.
func NormalizePassword(password string) string { return norm.NFKC.String(password) }

// Validate checks password, after NormalizePassword, against p and returns nil or a
// *PolicyError naming every rule that failed, not just the first. Lengths are those of
// the normalised form, which is what gets hashed.
func (p Policy) Validate(password string) error {
	var failed []Rule
	if !utf8.ValidString(password) {
		failed = append(failed, RuleInvalidUTF8)
	}
	password = NormalizePassword(password)
	if utf8.RuneCountInString(password) < p.MinLength {
		failed = append(failed, RuleMinLength)
	}
	if len(password) > MaxPasswordBytes {
		failed = append(failed, RuleMaxBytes)
	}
	var upper, lower, digit, symbol bool
	for _, r := range password {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsLetter(r), unicode.IsSpace(r):
		default:
			symbol = true
		}
	}
	if p.RequireUpper && !upper {
		failed = append(failed, RuleUpper)
	}
	if p.RequireLower && !lower {
		failed = append(failed, RuleLower)
	}
	if p.RequireDigit && !digit {
		failed = append(failed, RuleDigit)
	}
	if p.RequireSymbol && !symbol {
		failed = append(failed, RuleSymbol)
	}
	for _, b := range p.Blocklist {
		if strings.EqualFold(b, password) {
			failed = append(failed, RuleBlocklisted)
			break
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &PolicyError{Failed: failed, Policy: p}
}

// PasswordHasher hashes and verifies passwords; Hasher is the bcrypt implementation the
// Service uses unless Config.Hasher names another. Implementations are safe for
// concurrent use.
type PasswordHasher interface {
	// Hash returns a new hash of password, or ErrPasswordTooLong.
	Hash(password string) (string, error)
	// Verify returns nil when password matches hash, ErrPasswordMismatch (or
	// ErrPasswordTooLong) when it does not, and needsRehash when it matched but the
	// hash should be replaced by Hash(password).
	Verify(hash, password string) (needsRehash bool, err error)
}

var _ PasswordHasher = Hasher{}

// Hasher hashes and verifies passwords with bcrypt, after NormalizePassword. The zero
// Hasher uses DefaultBcryptCost. It is safe for concurrent use.
type Hasher struct {
	// Cost is the bcrypt cost (bcrypt.MinCost..bcrypt.MaxCost); zero means 10.
	Cost int
}

func (h Hasher) cost() int {
	if h.Cost == 0 {
		return DefaultBcryptCost
	}
	return h.Cost
}

// Hash returns the bcrypt hash of NormalizePassword(password). It returns
// ErrPasswordTooLong when that is over MaxPasswordBytes and an error for a cost outside
// bcrypt's range. It does not apply a Policy; call Policy.Validate first.
func (h Hasher) Hash(password string) (string, error) {
	password = NormalizePassword(password)
	if len(password) > MaxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), h.cost())
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(b), nil
}

// Verify reports whether password matches hash. It compares NormalizePassword(password)
// first; when that fails and the password was not already normalised, it compares the
// password as given, which is how hashes made before normalisation match, and reports
// such a match as needing a rehash (so each login costs the same for a known and an
// unknown email: the comparisons depend on the password only). It returns
// ErrPasswordMismatch when neither matches, ErrPasswordTooLong for a password over
// MaxPasswordBytes (bcrypt would compare only its first 72 bytes, so it is refused
// before any comparison), and another error for a malformed hash. needsRehash is also
// true when the password matched a hash of a cost other than h's: store a new hash.
func (h Hasher) Verify(hash, password string) (needsRehash bool, err error) {
	normalized := NormalizePassword(password)
	err = h.compare(hash, normalized)
	if err == nil {
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return false, fmt.Errorf("auth: verify password: %w", err)
		}
		return cost != h.cost(), nil
	}
	if normalized != password && (errors.Is(err, ErrPasswordMismatch) || errors.Is(err, ErrPasswordTooLong)) {
		if h.compare(hash, password) == nil {
			return true, nil
		}
	}
	return false, err
}

// compare is one bcrypt comparison, refusing passwords bcrypt would truncate.
func (h Hasher) compare(hash, password string) error {
	if len(password) > MaxPasswordBytes {
		return ErrPasswordTooLong
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		return ErrPasswordMismatch
	}
	if err != nil {
		return fmt.Errorf("auth: verify password: %w", err)
	}
	return nil
}
