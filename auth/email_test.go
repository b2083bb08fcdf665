package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
)

func TestNormalizeEmail(t *testing.T) {
	good := map[string]string{
		"ann@example.com":         "ann@example.com",
		"  Ann.Lee@Example.COM  ": "ann.lee@example.com",
		"a+tag@sub.example.org":   "a+tag@sub.example.org",
	}
	for in, want := range good {
		if got, err := auth.NormalizeEmail(in); err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", "   ", "ann", "ann@", "@example.com", "Ann <ann@example.com>", "<ann@example.com>",
		"ann@example.com (comment)", "a@b.com, c@d.com", "group: a@b.com;", "ann@exa mple.com",
		strings.Repeat("a", 250) + "@b.co", "x\u202e@example.com", "ann@exa\u2066mple.com", "a\u0085@b.co",
		"x@[127.0.0.1]", "x@[IPv6:::1]", `"a@b"@[10.0.0.1]`,
	}
	for _, in := range bad {
		if got, err := auth.NormalizeEmail(in); !errors.Is(err, auth.ErrInvalidEmail) {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want ErrInvalidEmail", in, got, err)
		}
	}
	max := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 bytes
	if got, err := auth.NormalizeEmail(max); err != nil || len(got) != 254 {
		t.Errorf("254-byte address: %v", err)
	}
}
