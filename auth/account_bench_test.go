package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/mail"
)

type discardMailer struct{}

func (discardMailer) Send(context.Context, mail.Message) error { return nil }

// BenchmarkForgotPassword measures what a caller of ForgotPassword waits for, for an
// address with an account and one without: both should cost the same, because the
// lookup, the token and the mail happen in the background.
func BenchmarkForgotPassword(b *testing.B) {
	for _, email := range []string{"known@example.com", "unknown@example.com"} {
		b.Run(email[:len(email)-len("@example.com")], func(b *testing.B) {
			f := newAcct(b, func(c *auth.Config) {
				c.Account.Mailer = discardMailer{}
				unlimited := auth.AttemptLimit{Max: 1 << 30, Window: time.Hour}
				c.Account.ForgotPerEmail, c.Account.ForgotPerClient = unlimited, unlimited
			})
			f.register(b, "known@example.com")
			for b.Loop() {
				if err := f.svc.ForgotPassword(context.Background(), client, email); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = f.svc.Close(context.Background())
		})
	}
}
