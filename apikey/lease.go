package apikey

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Take is Step for a block of up to n requests that a caller will serve over the next
// hold microseconds, for limiters that lease tokens (see LeasedLimiter). With n = 1 and
// hold = 0 it decides exactly as Step does.
//
// Each token k it grants is a GCRA slot whose TAT before it is T(k−1) = base + guard +
// (k−1)·Interval, where base = max(TAT, now); GCRA would allow a request at any time t with
// T(k−1) + Interval − Burst ≤ t ≤ T(k−1). Tokens are granted only while that lower bound
// is at most now, and guard (the gap between base and the first slot) is what it takes
// for T(0) to be at least now + hold, so every granted token may be used at any time in
// [now, now + hold]: served requests then form a sequence GCRA itself would allow, so no
// instance, nor all of them together, ever admits more than the limit. guard costs
// capacity only when the subject is idle (TAT ≤ now + hold), so it trims a full burst by
// hold/Period at most and never the sustained rate. hold is capped at Burst − Interval.
//
// It returns the tokens granted (0 when Step would refuse), the state to store (newTAT
// unchanged when none was granted) and validUntil, the end of the tokens' window
// (T(0) ≥ now + hold).
func (g GCRA) Take(tat, seen, now int64, n int, hold int64) (granted int, newTAT, newSeen, validUntil int64) {
	if seen > now {
		now = seen
	}
	hold = max(0, min(hold, g.Burst-g.Interval))
	base := max(tat, now)
	guard := max(0, hold-(base-now))
	free := g.Burst - (base + guard - now)
	if n < 1 || free < g.Interval {
		return 0, tat, now, 0
	}
	granted = int(min(int64(n), free/g.Interval))
	first := base + guard
	return granted, first + int64(granted)*g.Interval, now, first
}

// TokenGrant is the answer of TokenStore.TakeTokens, in the store's clock (Unix
// microseconds).
type TokenGrant struct {
	Granted    int   // tokens granted; 0: refused
	TAT        int64 // the subject's TAT after the take
	Now        int64 // the store's now of the decision
	ValidUntil int64 // the granted tokens may be used until then (Take's validUntil)
}

// TokenStore is a shared limiter state that grants tokens in blocks: storage/memory and
// storage/postgres implement it; storagetest.RunTokens holds them to it.
type TokenStore interface {
	// TakeTokens runs GCRA.Take for (limit.Policy(), key) atomically, with the store's
	// clock, and stores its state, so that it shares counts with the Limiter of the same
	// store. It returns ErrInvalidLimit for an unusable limit, and the store's error when
	// it fails.
	TakeTokens(ctx context.Context, key string, limit Limit, n int, hold time.Duration) (TokenGrant, error)
}

// LeaseOption configures NewLeasedLimiter.
type LeaseOption func(*LeasedLimiter)

// WithLeaseClock sets the clock that times leases (default time.Now). It must advance at
// the rate of the store's clock; the store's clock decides.
func WithLeaseClock(now func() time.Time) LeaseOption {
	return func(l *LeasedLimiter) { l.now = now }
}

// WithHold sets how long leased tokens stay usable (default 1 s): longer holds mean fewer
// store round trips for subjects well under their limit, at the cost of at most
// hold/Period of a full burst.
func WithHold(d time.Duration) LeaseOption { return func(l *LeasedLimiter) { l.hold = d } }

// WithMaxTokens caps the tokens taken at once (default 256; never more than a tenth of
// the limit's Count, and at least 1).
func WithMaxTokens(n int) LeaseOption { return func(l *LeasedLimiter) { l.maxTokens = n } }

// WithBudget gives each store call a deadline of d (default: the caller's context only):
// a store that does not answer in time fails the decision at once. Decisions served from
// leased tokens never wait.
func WithBudget(d time.Duration) LeaseOption { return func(l *LeasedLimiter) { l.budget = d } }

// LeasedLimiter is a Limiter for many instances that keeps the shared store off most
// decisions and stays exact: it takes tokens from a TokenStore in blocks (GCRA.Take) and
// serves them from memory while they are valid (they never outlive their window, so
// requests served from leases on any number of instances form a sequence GCRA allows:
// never more than the limit). Blocks double while the subject's takes come less than a
// hold apart (see Allow for where they start). A refusal is remembered until the store's RetryAfter
// (the store's TAT only grows, so it would refuse too). Tokens that expire unused are
// lost capacity, never extra: a subject spread over instances may be refused a little
// early, never let through.
//
// What a crash costs: nothing beyond the unused tokens, which expire within the hold.
// Decisions report Remaining as this instance sees it (its unused tokens plus what the
// store had free at the last take). It is safe for concurrent use; memory follows the
// active subjects (idle ones are dropped).
type LeasedLimiter struct {
	store     TokenStore
	now       func() time.Time
	hold      time.Duration
	maxTokens int
	budget    time.Duration

	state sync.Map     // leaseKey → *tokenLease
	added atomic.Int64 // subjects added since the last sweep of idle ones
}

var _ Limiter = (*LeasedLimiter)(nil)

type leaseKey struct{ policy, key string }

type tokenLease struct {
	mu      sync.Mutex
	count   int           // the Limit.Count the tokens were taken under
	period  time.Duration // and its Period
	left    int           // unused tokens
	expires time.Time     // local time when left becomes invalid
	refused time.Time     // local time until which the store would refuse
	block   int           // the last block asked for
	last    TokenGrant    // the last answer, for Decision numbers
	lastAt  time.Time     // local time of the request that got it
	taking  chan struct{} // closed when the take in flight ends
}

// NewLeasedLimiter returns a LeasedLimiter over store.
func NewLeasedLimiter(store TokenStore, opts ...LeaseOption) *LeasedLimiter {
	l := &LeasedLimiter{store: store, now: time.Now, hold: time.Second, maxTokens: 256}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Allow implements Limiter.
func (l *LeasedLimiter) Allow(ctx context.Context, key string, limit Limit) (Decision, error) {
	g, err := limit.GCRA()
	if err != nil {
		return Decision{}, err
	}
	st := l.lease(leaseKey{limit.Policy(), key})
	for {
		now := l.now()
		st.mu.Lock()
		if st.count != limit.Count || st.period != limit.Period { // a new limit: old tokens do not apply
			st.count, st.period, st.left, st.refused, st.block = limit.Count, limit.Period, 0, time.Time{}, 1
		}
		if st.left > 0 && now.Before(st.expires) {
			st.left--
			d := st.decision(g, true, now)
			st.mu.Unlock()
			return d, nil
		}
		st.left = 0 // expired unused, if any
		if now.Before(st.refused) {
			d := st.decision(g, false, now)
			st.mu.Unlock()
			return d, nil
		}
		if wait := st.taking; wait != nil {
			st.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Decision{}, fmt.Errorf("apikey: leased limiter: %w", ctx.Err())
			}
		}
		// Blocks double while takes come less than a hold apart, stay while they come
		// less than four holds apart, and start over otherwise. A limit of fewer than
		// 100 a period starts at one token taken without a hold (exactly a Step, so
		// leasing costs its burst nothing until requests come fast); a larger one starts
		// at two, held, which trims a full burst by hold/Period at most (under 2% with
		// the defaults).
		initial := 1
		if limit.Count >= 100 {
			initial = 2
		}
		switch gap := now.Sub(st.lastAt); {
		case st.lastAt.IsZero() || gap >= 4*l.hold:
			st.block = initial
		case gap < l.hold:
			st.block = min(2*st.block, l.maxTokens)
		}
		want := max(1, min(st.block, l.maxTokens, limit.Count/10))
		hold := l.hold
		if want == 1 {
			hold = 0
		}
		done := make(chan struct{})
		st.taking = done
		st.mu.Unlock()

		sent := l.now()
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if l.budget > 0 {
			tctx, cancel = context.WithTimeout(ctx, l.budget)
		}
		grant, err := l.store.TakeTokens(tctx, key, limit, want, hold)
		cancel()

		st.mu.Lock()
		st.taking = nil
		close(done)
		if err != nil {
			st.mu.Unlock()
			return Decision{}, err
		}
		st.last, st.lastAt = grant, sent
		if grant.Granted == 0 {
			d := g.Decision(false, grant.TAT, grant.Now)
			st.refused = sent.Add(d.RetryAfter)
			st.mu.Unlock()
			return d, nil
		}
		// The window is measured from when the request was sent: the store decided
		// after that, so the tokens are never used past their end.
		st.left = grant.Granted - 1
		st.expires = sent.Add(time.Duration(grant.ValidUntil-grant.Now) * time.Microsecond)
		st.refused = time.Time{}
		d := st.decision(g, true, l.now())
		st.mu.Unlock()
		return d, nil
	}
}

// decision reports the state as this instance sees it, with st.mu held.
func (st *tokenLease) decision(g GCRA, allowed bool, now time.Time) Decision {
	storeNow := st.last.Now + now.Sub(st.lastAt).Microseconds()
	d := g.Decision(allowed, st.last.TAT, max(storeNow, st.last.Now))
	if allowed {
		d.RetryAfter = 0
		d.Remaining = min(g.Count, d.Remaining+st.left)
	} else {
		d.Remaining = 0
		d.RetryAfter = max(st.refused.Sub(now), time.Microsecond)
	}
	return d
}

// lease returns the state of k, creating it, and now and then drops idle subjects.
func (l *LeasedLimiter) lease(k leaseKey) *tokenLease {
	if v, ok := l.state.Load(k); ok {
		return v.(*tokenLease)
	}
	v, loaded := l.state.LoadOrStore(k, &tokenLease{block: 1})
	if !loaded && l.added.Add(1) >= 4096 {
		l.added.Store(0)
		l.dropIdle()
	}
	return v.(*tokenLease)
}

// dropIdle forgets subjects with nothing held or remembered for a minute.
func (l *LeasedLimiter) dropIdle() {
	now := l.now()
	l.state.Range(func(k, v any) bool {
		st := v.(*tokenLease)
		st.mu.Lock()
		idle := st.taking == nil && !now.Before(st.expires) && !now.Before(st.refused) && now.Sub(st.lastAt) > time.Minute
		st.mu.Unlock()
		if idle {
			l.state.CompareAndDelete(k, st)
		}
		return true
	})
}
