package apikey

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultPolicy is the policy name of a Limit whose Name is empty.
const DefaultPolicy = "default"

// Limit is a rate: at most Count requests per Period, with bursts of up to Count.
// Name is the policy (empty means DefaultPolicy): limiters keep one counter per
// (policy, subject), so two policies never touch each other's counts, and changing
// Count or Period does not reset a subject's count.
type Limit struct {
	Name   string
	Count  int
	Period time.Duration
}

// PerMinute returns a Limit of n requests per minute under the default policy.
func PerMinute(n int) Limit { return Limit{Count: n, Period: time.Minute} }

// ErrInvalidLimit is returned by Limiter.Allow for a Limit with Count < 1, a Period
// under one microsecond, or more than one request per microsecond.
var ErrInvalidLimit = errors.New("apikey: invalid limit")

// Policy returns l.Name, or DefaultPolicy when it is empty.
func (l Limit) Policy() string {
	if l.Name == "" {
		return DefaultPolicy
	}
	return l.Name
}

// GCRA is the generic cell rate algorithm that every limiter runs for a Limit, in
// integer microseconds so that Go, SQL and Lua compute the same numbers. Adapters keep
// per (policy, subject) a theoretical arrival time TAT and the latest time seen; Step is
// one decision and Decision reports it.
type GCRA struct {
	Count    int   // the Limit's Count
	Interval int64 // Period/Count in microseconds, rounded down
	Burst    int64 // Interval × Count: how far the TAT may run ahead of now
}

// GCRA returns the algorithm's parameters for l, or ErrInvalidLimit for a Limit with
// Count < 1, a Period under one microsecond, or more than one request per microsecond.
func (l Limit) GCRA() (GCRA, error) {
	period := l.Period.Microseconds()
	if l.Count < 1 || period < 1 || period/int64(l.Count) < 1 {
		return GCRA{}, fmt.Errorf("%w: %d per %v", ErrInvalidLimit, l.Count, l.Period)
	}
	interval := period / int64(l.Count)
	return GCRA{Count: l.Count, Interval: interval, Burst: interval * int64(l.Count)}, nil
}

// Step runs one decision: given the stored TAT and latest time seen (both zero for a
// subject never seen) and the caller's now, in Unix microseconds, it returns whether the
// request is allowed and the state to store. now is first raised to the latest time seen,
// so time never moves backwards. The request is allowed when max(TAT, now) + Interval −
// now ≤ Burst, and then TAT becomes max(TAT, now) + Interval; a refused request changes
// nothing but the latest time seen. The SQL and Lua versions of the adapters follow it.
func (g GCRA) Step(tat, seen, now int64) (allowed bool, newTAT, newSeen int64) {
	if seen > now {
		now = seen
	}
	base := max(tat, now)
	if base+g.Interval-now <= g.Burst {
		return true, base + g.Interval, now
	}
	return false, tat, now
}

// Decision turns the state after a Step (allowed, the stored TAT and the effective now,
// in Unix microseconds) into the Decision that limiters return. All adapters use it, so
// they report the same numbers.
func (g GCRA) Decision(allowed bool, tat, now int64) Decision {
	ahead := max(tat-now, 0) // how far the TAT is ahead of now
	d := Decision{
		Allowed:    allowed,
		Limit:      g.Count,
		ResetAfter: time.Duration(ahead) * time.Microsecond,
		ResetAt:    time.UnixMicro(now + ahead).UTC(),
	}
	if free := g.Burst - ahead; free > 0 && g.Interval > 0 {
		d.Remaining = int(free / g.Interval)
	}
	if !allowed {
		d.RetryAfter = time.Duration(ahead+g.Interval-g.Burst) * time.Microsecond
	}
	return d
}

// Decision is a limiter's answer.
type Decision struct {
	// Allowed reports whether the request may proceed; a refused request consumed
	// nothing.
	Allowed bool
	// Limit is the Count of the Limit applied.
	Limit int
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// ResetAt is when the subject's whole burst is available again; ResetAfter is the
	// same as a duration from the limiter's now.
	ResetAt    time.Time
	ResetAfter time.Duration
	// RetryAfter is, for a refused request, how long until one request will be allowed;
	// zero when allowed.
	RetryAfter time.Duration
}

// Limiter decides whether a request by a subject (such as a key ID) is allowed under a
// Limit. Implementations must be safe for concurrent use, exact under concurrency (of M
// concurrent requests under a burst of N, exactly min(M, N) are allowed), key their
// state by (limit.Policy(), key) and never by the limit's values, never let time run
// backwards, and agree with GCRA.Step and GCRA.Decision. An error means no decision was made
// (the store failed, or ErrInvalidLimit).
type Limiter interface {
	Allow(ctx context.Context, key string, limit Limit) (Decision, error)
}
