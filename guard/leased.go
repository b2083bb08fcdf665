package guard

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/usage"
)

// Leased is an Admission for many instances on one database that keeps the store off the
// hot path: the monthly quota comes from a usage.LeasedCounter (blocks of calls leased in
// one statement, exact under a hard cap across any number of instances) and the rate
// limit from an apikey.LeasedLimiter (GCRA tokens leased in one statement, never more
// than the limit across instances). Most decisions touch neither store.
//
// It decides all or nothing the simple way: the call is taken from the quota first (a
// refusal there stops before the rate limit), then the rate limit decides, and a refused
// request gives its call back to the lease it came from, in memory, so a refusal costs
// no quota and no rate-limit slot, and the give-back cannot fail on a store. It also
// implements Refunder: a request whose client never got its answer gives the call back
// the same way. It is safe for concurrent use.
type Leased struct {
	limiter apikey.Limiter
	counter *usage.LeasedCounter
	quota   usage.LimitFunc
	now     func() time.Time
	policy  string
	periods periods
}

var (
	_ Admission = (*Leased)(nil)
	_ Refunder  = (*Leased)(nil)
)

// NewLeased returns a Leased admission over limiter (an *apikey.LeasedLimiter, or any
// Limiter), counter and quota (a cached plan lookup, such as billing.TermsCache.QuotaFor:
// an uncached one costs a store round trip per request). It takes the same options as
// NewLimits.
func NewLeased(limiter apikey.Limiter, counter *usage.LeasedCounter, quota usage.LimitFunc, opts ...Option) *Leased {
	l := &Limits{now: coarseNow(), policy: apikey.DefaultPolicy}
	for _, o := range opts {
		o(l)
	}
	return &Leased{limiter: limiter, counter: counter, quota: quota, now: l.now, policy: l.policy}
}

// Admit implements Admission.
func (l *Leased) Admit(ctx context.Context, key apikey.Key) (Decision, error) {
	limit, hard, err := l.quota(ctx, key.Owner)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: limit of %s: %w", ErrQuotaUnavailable, key.Owner, err)
	}
	now := l.now()
	p := l.periods.at(now)
	period := p.start
	capped := hard && limit >= 0
	d := Decision{Quota: QuotaState{Limit: limit, HardCap: hard, RetryAfter: p.end.Sub(now)}}
	used, added, err := l.counter.AddCall(ctx, key.Owner, period, limit, capped)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: counter: %w", ErrQuotaUnavailable, err)
	}
	d.Quota.Used = used
	if !added {
		d.Refused = QuotaExceeded
		return d, nil
	}
	n := key.RateLimitPerMinute
	if n <= 0 {
		n = apikey.DefaultRateLimitPerMinute
	}
	d.RateLimit = apikey.Limit{Name: l.policy, Count: n, Period: time.Minute}
	d.Rate, err = l.limiter.Allow(ctx, string(key.ID), d.RateLimit)
	if err != nil || !d.Rate.Allowed {
		l.giveBack(ctx, key, period)
		if err != nil {
			return Decision{}, fmt.Errorf("%w: %w", ErrLimiterUnavailable, err)
		}
		d.Refused, d.Quota.Used = RateLimited, max(0, used-1)
		return d, nil
	}
	d.Allowed = true
	return d, nil
}

// Refund implements Refunder: the call goes back to this instance's lease.
func (l *Leased) Refund(ctx context.Context, key apikey.Key, d Decision) {
	if d.Allowed {
		l.giveBack(ctx, key, l.now())
	}
}

// giveBack returns a call taken for a request that was then refused or never delivered.
// The LeasedCounter puts it back into its lease, or queues it for retry when the store
// it must go to fails (and logs a release it had to drop), so its error needs nothing
// more here.
func (l *Leased) giveBack(ctx context.Context, key apikey.Key, period time.Time) {
	_ = l.counter.RemoveCall(context.WithoutCancel(ctx), key.Owner, period)
}
