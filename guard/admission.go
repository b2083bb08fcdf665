package guard

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/internal/coarse"
	"github.com/nexus-ecosystem/nexus/usage"
)

// Admission decides whether an authenticated request may be served under the owner's
// monthly quota and the key's rate limit, as one all-or-nothing decision: when it
// refuses, it has consumed nothing (no call of the month, no rate-limit slot); when it
// admits, it has counted the call and taken the slot. Implementations must be safe for
// concurrent use. NewLimits returns the default one; another may combine both limits in
// one store round trip, or lease them in batches.
type Admission interface {
	// Admit decides for one request made with key (key.Owner is the user whose quota
	// counts). A refusal is a Decision with Allowed false, not an error; an error means
	// the decision could not be made (it wraps ErrQuotaUnavailable or
	// ErrLimiterUnavailable).
	Admit(ctx context.Context, key apikey.Key) (Decision, error)
}

// Refusal names the limit that refused a request.
type Refusal uint8

// The limits that can refuse a request.
const (
	NotRefused    Refusal = iota // the request was admitted
	RateLimited                  // the key's rate limit refused it: 429 rate_limited
	QuotaExceeded                // the owner's monthly quota refused it: 429 quota_exceeded
)

// Decision is the outcome of Admit.
type Decision struct {
	Allowed bool
	Refused Refusal // which limit refused; NotRefused when Allowed
	// RateLimit and Rate are the rate limit applied and the limiter's decision, for the
	// rate-limit headers. Rate.Limit is 0 when the rate limit was not consulted (the
	// quota refused first); then no rate-limit header is sent.
	RateLimit apikey.Limit
	Rate      apikey.Decision
	// Quota is the state of the owner's monthly quota.
	Quota QuotaState
}

// QuotaState describes the owner's quota at the decision.
type QuotaState struct {
	Limit   int64 // calls per period; negative: unlimited
	HardCap bool  // calls over Limit are refused (else they are served and billed)
	Used    int64 // calls counted this period, this one included when admitted
	// RetryAfter is the time until the period ends (when a hard cap lets calls in again).
	RetryAfter time.Duration
}

// Errors that Admit wraps when it cannot decide.
var (
	// ErrQuotaUnavailable: the plan's quota or the call counter did not answer.
	ErrQuotaUnavailable = errors.New("guard: quota unavailable")
	// ErrLimiterUnavailable: the rate limiter did not answer.
	ErrLimiterUnavailable = errors.New("guard: rate limiter unavailable")
)

// coarseNow is the default clock of Limits: the time of a coarse clock, an atomic load
// per decision rather than a clock read.
func coarseNow() func() time.Time { return coarse.New(coarse.HotPathTick).Now }

// Option configures NewLimits.
type Option func(*Limits)

// WithClock sets the clock that picks the quota period (default: the wall clock read
// through a coarse clock that moves every 10 ms, so a call in the first 10 ms of a month
// may count in the month before).
func WithClock(now func() time.Time) Option { return func(l *Limits) { l.now = now } }

// WithPolicy names the rate-limit policy (default apikey.DefaultPolicy): routes with
// their own policy keep their own counts.
func WithPolicy(name string) Option { return func(l *Limits) { l.policy = name } }

// Limits is the default Admission: a usage.Counter for the monthly quota, whose limit
// comes from quota (billing.Service.QuotaFor gives the plan's terms), and an
// apikey.Limiter for each key's own per-minute limit (Key.RateLimitPerMinute, or
// apikey.DefaultRateLimitPerMinute when it is not positive). It is safe for concurrent
// use.
//
// It needs no refund path: under a hard cap it first reads the period's count (a refused
// request stops there, before the rate limit), then takes the rate-limit slot (a refused
// request has counted nothing yet), and only then counts the call, atomically under the
// cap. A soft or unlimited quota never refuses, so it skips the read: the rate limit
// decides and the call is counted. The one window left is two requests racing for the last
// call of a hard cap: both pass the read, both take a slot, and the counter admits one;
// the other is refused with quota_exceeded having used a rate-limit slot. The cap itself
// stays exact, and from then on every request of that owner is refused by the quota
// before the rate limit, so the lost slot never turns into a refusal of its own.
type Limits struct {
	limiter apikey.Limiter
	counter usage.Counter
	quota   usage.LimitFunc
	now     func() time.Time
	policy  string
	periods periods
}

var _ Admission = (*Limits)(nil)

// periods holds the bounds of the quota period last used, so that a request computes no
// calendar dates: the month changes once a month, and then the bounds are computed once.
type periods struct{ cur atomic.Pointer[period] }

// period is one quota period, [start, end), with its bounds in Unix nanoseconds.
type period struct {
	start, end time.Time
	from, to   int64
}

// at returns the period that holds now.
func (p *periods) at(now time.Time) *period {
	n := now.UnixNano()
	if c := p.cur.Load(); c != nil && c.from <= n && n < c.to {
		return c
	}
	start, end := usage.PeriodStart(now), usage.PeriodEnd(now)
	c := &period{start: start, end: end, from: start.UnixNano(), to: end.UnixNano()}
	p.cur.Store(c)
	return c
}

// NewLimits returns the default Admission over limiter, counter and quota.
func NewLimits(limiter apikey.Limiter, counter usage.Counter, quota usage.LimitFunc, opts ...Option) *Limits {
	l := &Limits{limiter: limiter, counter: counter, quota: quota, now: coarseNow(), policy: apikey.DefaultPolicy}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Admit implements Admission.
func (l *Limits) Admit(ctx context.Context, key apikey.Key) (Decision, error) {
	limit, hard, err := l.quota(ctx, key.Owner)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: limit of %s: %w", ErrQuotaUnavailable, key.Owner, err)
	}
	now := l.now()
	p := l.periods.at(now)
	period := p.start
	capped := hard && limit >= 0
	d := Decision{Quota: QuotaState{Limit: limit, HardCap: hard, RetryAfter: p.end.Sub(now)}}
	if capped {
		used, err := l.counter.PeriodCalls(ctx, key.Owner, period)
		if err != nil {
			return Decision{}, fmt.Errorf("%w: counter: %w", ErrQuotaUnavailable, err)
		}
		if used >= limit {
			d.Quota.Used, d.Refused = used, QuotaExceeded
			return d, nil
		}
	}
	n := key.RateLimitPerMinute
	if n <= 0 {
		n = apikey.DefaultRateLimitPerMinute
	}
	d.RateLimit = apikey.Limit{Name: l.policy, Count: n, Period: time.Minute}
	d.Rate, err = l.limiter.Allow(ctx, string(key.ID), d.RateLimit)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %w", ErrLimiterUnavailable, err)
	}
	if !d.Rate.Allowed {
		d.Refused = RateLimited
		return d, nil
	}
	used, added, err := l.counter.AddCall(ctx, key.Owner, period, limit, capped)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: counter: %w", ErrQuotaUnavailable, err)
	}
	d.Quota.Used = used
	if !added {
		d.Refused = QuotaExceeded
		return d, nil
	}
	d.Allowed = true
	return d, nil
}
