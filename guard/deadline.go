package guard

import (
	"context"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
)

// DefaultBudget is the deadline Budget gives every store call on the API-key path when it
// is given zero: long enough for a healthy database under load, short enough that a stalled
// one is answered 503 at once instead of holding connections, memory and clients.
const DefaultBudget = 250 * time.Millisecond

// Refunder is an Admission that can give back what it admitted. guard calls Refund for a
// request whose client never got its answer (the client went away while the handler ran,
// or writing the answer failed), so that it costs no quota.
type Refunder interface {
	Refund(ctx context.Context, key apikey.Key, d Decision)
}

// Budget returns a with a deadline of budget (DefaultBudget when zero) on each decision: a
// store that does not answer in time makes Admit fail (ErrQuotaUnavailable or
// ErrLimiterUnavailable, answered 503) instead of waiting. It keeps a's Refund.
func Budget(a Admission, budget time.Duration) Admission {
	if budget <= 0 {
		budget = DefaultBudget
	}
	if r, ok := a.(Refunder); ok {
		return &budgetRefunder{budgeted{a, budget}, r}
	}
	return &budgeted{a, budget}
}

type budgeted struct {
	a      Admission
	budget time.Duration
}

func (b *budgeted) Admit(ctx context.Context, key apikey.Key) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, b.budget)
	defer cancel()
	return b.a.Admit(ctx, key)
}

type budgetRefunder struct {
	budgeted
	r Refunder
}

func (b *budgetRefunder) Refund(ctx context.Context, key apikey.Key, d Decision) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.budget)
	defer cancel()
	b.r.Refund(ctx, key, d)
}

// VerifyBudget returns v with a deadline of budget (DefaultBudget when zero) on each
// verification: a key that is not cached and whose store lookup does not answer in time
// fails with the context's error, which apikey.WriteAuthError answers 503. A cached key
// costs nothing more than a context.
func VerifyBudget(v apikey.Verifier, budget time.Duration) apikey.Verifier {
	if budget <= 0 {
		budget = DefaultBudget
	}
	return verifyBudget{v, budget}
}

type verifyBudget struct {
	v      apikey.Verifier
	budget time.Duration
}

func (b verifyBudget) Verify(ctx context.Context, plain string) (apikey.Key, error) {
	ctx, cancel := context.WithTimeout(ctx, b.budget)
	defer cancel()
	return b.v.Verify(ctx, plain)
}
