package auth_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
	"golang.org/x/crypto/bcrypt"
)

func TestDefaultPolicy(t *testing.T) {
	p := auth.DefaultPolicy()
	cases := []struct {
		pw     string
		failed []auth.Rule
	}{
		{"Correct-Horse-9", nil},
		{"Ünïcode-Pässword-1", nil},
		{"short", []auth.Rule{auth.RuleMinLength, auth.RuleUpper, auth.RuleDigit, auth.RuleSymbol}},
		{"alllowercaseletters", []auth.Rule{auth.RuleUpper, auth.RuleDigit, auth.RuleSymbol}},
		{"ALLUPPER1234!", []auth.Rule{auth.RuleLower}},
		{"NoDigitsHere!!", []auth.Rule{auth.RuleDigit}},
		{"NoSymbols12345", []auth.Rule{auth.RuleSymbol}},
		{"Spaces Are Not 1", []auth.Rule{auth.RuleSymbol}},
		{"Aa1!" + strings.Repeat("x", 69), []auth.Rule{auth.RuleMaxBytes}},
		{"Aa1!" + strings.Repeat("x", 68), nil}, // exactly 72 bytes
		{"Aa1!xxxxxxxx\xff", []auth.Rule{auth.RuleInvalidUTF8}},
		{"", []auth.Rule{auth.RuleMinLength, auth.RuleUpper, auth.RuleLower, auth.RuleDigit, auth.RuleSymbol}},
	}
	for _, c := range cases {
		err := p.Validate(c.pw)
		if c.failed == nil {
			if err != nil {
				t.Errorf("Validate(%q) = %v, want nil", c.pw, err)
			}
			continue
		}
		var pe *auth.PolicyError
		if !errors.As(err, &pe) || !errors.Is(err, auth.ErrWeakPassword) {
			t.Fatalf("Validate(%q) = %v, want *PolicyError", c.pw, err)
		}
		if !slices.Equal(pe.Failed, c.failed) {
			t.Errorf("Validate(%q) failed %v, want %v", c.pw, pe.Failed, c.failed)
		}
		for _, r := range pe.Failed {
			if !strings.Contains(err.Error(), pe.Describe(r)) {
				t.Errorf("message %q does not describe %s", err, r)
			}
		}
	}
	err := p.Validate("short")
	if want := "auth: weak password: at least 12 characters; an upper-case letter; a digit; a symbol"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
}

func TestNISTPolicy(t *testing.T) {
	p := auth.NISTPolicy()
	if err := p.Validate("just fifteen chars"); err != nil {
		t.Errorf("long lowercase passphrase refused: %v", err)
	}
	var pe *auth.PolicyError
	if err := p.Validate("fourteen chars"); !errors.As(err, &pe) || !slices.Equal(pe.Failed, []auth.Rule{auth.RuleMinLength}) {
		t.Errorf("14 characters: %v", err)
	}
	if err := p.Validate("PasswordPassword"); !errors.As(err, &pe) || !slices.Equal(pe.Failed, []auth.Rule{auth.RuleBlocklisted}) {
		t.Errorf("blocklisted (case-insensitive): %v", err)
	}
	if pe.Describe(auth.RuleBlocklisted) == "" || pe.Describe("custom") != "custom" {
		t.Error("Describe")
	}
	if p.IsZero() || !(auth.Policy{}).IsZero() {
		t.Error("IsZero")
	}
}

func TestHasher(t *testing.T) {
	h := auth.Hasher{Cost: bcrypt.MinCost}
	hash, err := h.Hash("Correct-Horse-9")
	if err != nil {
		t.Fatal(err)
	}
	if rehash, err := h.Verify(hash, "Correct-Horse-9"); err != nil || rehash {
		t.Fatalf("Verify = %v, %v", rehash, err)
	}
	if _, err := h.Verify(hash, "Correct-Horse-8"); !errors.Is(err, auth.ErrPasswordMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
	// A hash of another cost verifies and asks for a rehash.
	if rehash, err := (auth.Hasher{Cost: bcrypt.MinCost + 1}).Verify(hash, "Correct-Horse-9"); err != nil || !rehash {
		t.Fatalf("other cost: rehash=%v err=%v", rehash, err)
	}
	if _, err := h.Verify("not a hash", "x"); err == nil || errors.Is(err, auth.ErrPasswordMismatch) {
		t.Fatalf("malformed hash: %v", err)
	}
	if _, err := (auth.Hasher{Cost: 99}).Hash("x"); err == nil {
		t.Fatal("cost 99 accepted")
	}
}

// bcrypt compares only the first 72 bytes: a longer password must never verify against
// the hash of its prefix, nor be hashed.
func TestHasherRefusesOver72Bytes(t *testing.T) {
	h := auth.Hasher{Cost: bcrypt.MinCost}
	prefix := strings.Repeat("a", 72)
	if _, err := h.Hash(prefix + "b"); !errors.Is(err, auth.ErrPasswordTooLong) {
		t.Fatalf("Hash(73 bytes) = %v", err)
	}
	raw, _ := bcrypt.GenerateFromPassword([]byte(prefix), bcrypt.MinCost)
	if bcrypt.CompareHashAndPassword(raw, []byte(prefix+"anything")) != nil {
		t.Skip("bcrypt no longer truncates; the guard is still correct")
	}
	if _, err := h.Verify(string(raw), prefix+"anything"); !errors.Is(err, auth.ErrPasswordTooLong) {
		t.Fatalf("Verify(80 bytes against the 72-byte prefix) = %v, want ErrPasswordTooLong", err)
	}
}

func TestDefaultCostIs10(t *testing.T) {
	if testing.Short() {
		t.Skip("bcrypt cost 10")
	}
	hash, err := auth.Hasher{}.Hash("Correct-Horse-9")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost([]byte(hash)); c != 10 {
		t.Fatalf("default cost %d", c)
	}
}
