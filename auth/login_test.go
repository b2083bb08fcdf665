package auth_test

import (
	"context"
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/nexus-ecosystem/nexus/auth"
)

// TestLoginUnknownEmailDoesTheSameWork asserts the mechanism behind Login's timing
// parity (issue 10.14; the wall-clock comparison is BenchmarkLogin): an unknown email
// and a wrong password each cost exactly one password check against a bcrypt hash of the
// configured cost, so their timing cannot tell them apart.
func TestLoginUnknownEmailDoesTheSameWork(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, bcrypt.MinCost + 2} {
		h := &countingHasher{Hasher: auth.Hasher{Cost: cost}}
		f := newFixture(t, withHasher(h), func(c *auth.Config) { c.MaxLoginFailures = 1000 })
		f.register(t, "ann@example.com")
		for _, email := range []string{"ann@example.com", "nobody@example.com", "ann@example.com", "nobody@example.com"} {
			before := h.verifies.Load()
			if _, err := f.svc.Login(context.Background(), client, email, "Wrong-Horse-9"); err != auth.ErrInvalidCredentials {
				t.Fatal(err)
			}
			if n := h.verifies.Load() - before; n != 1 {
				t.Fatalf("cost %d, %s: %d password checks, want 1", cost, email, n)
			}
		}
		h.mu.Lock()
		costs := slices.Clone(h.costs)
		h.mu.Unlock()
		if len(costs) != 4 || slices.ContainsFunc(costs, func(c int) bool { return c != cost }) {
			t.Fatalf("costs of the hashes compared: %v, want four of %d", costs, cost)
		}
	}
}

// BenchmarkLogin measures the timing parity: a wrong password and an unknown email
// should report about the same ns/op (the same bcrypt work, see
// TestLoginUnknownEmailDoesTheSameWork).
func BenchmarkLogin(b *testing.B) {
	for _, c := range []struct{ name, email string }{
		{"WrongPassword", "ann@example.com"}, {"UnknownEmail", "nobody@example.com"},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, func(cfg *auth.Config) {
				cfg.BcryptCost = 6
				cfg.MaxLoginFailures, cfg.MaxEmailLoginFailures = 1<<30, 1<<30
			})
			f.register(b, "ann@example.com")
			ctx := context.Background()
			for b.Loop() {
				if _, err := f.svc.Login(ctx, client, c.email, "Wrong-Horse-9"); err != auth.ErrInvalidCredentials {
					b.Fatal(err)
				}
			}
		})
	}
}
