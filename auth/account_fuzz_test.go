package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
)

// FuzzRedeemOneTimeToken feeds arbitrary tokens to VerifyEmail and ResetPassword (the
// token of a public route): they never panic, and with no token issued they refuse
// every input with ErrInvalidOneTimeToken.
func FuzzRedeemOneTimeToken(f *testing.F) {
	fx := newAcct(f, func(c *auth.Config) {
		unlimited := auth.AttemptLimit{Max: 1 << 30, Window: 1 << 40}
		c.Account.RedeemPerClient = unlimited
		c.Account.Mailer = discardMailer{}
	})
	fx.register(f, "ann@example.com")
	for _, s := range []string{"", strings.Repeat("A", 43), strings.Repeat("_", 43), "a=b", strings.Repeat("é", 22), "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		ctx := context.Background()
		if _, err := fx.svc.VerifyEmail(ctx, client, token); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
			t.Fatalf("VerifyEmail(%q) = %v", token, err)
		}
		if _, err := fx.svc.ResetPassword(ctx, client, token, newPassword); !errors.Is(err, auth.ErrInvalidOneTimeToken) {
			t.Fatalf("ResetPassword(%q) = %v", token, err)
		}
	})
}
