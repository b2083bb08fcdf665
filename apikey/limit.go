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

// GCRA returns the parameters of the generic cell rate algorithm that every limiter
// runs, in microseconds: the emission interval (Period/Count, rounded down) and the
// burst tolerance (interval × Count). Adapters keep per (policy, subject) a theoretical
// arrival time TAT and the latest time seen; a request at now (raised to the latest
// time seen, so time never moves backwards) is allowed when max(TAT, now) + interval −
// now ≤ burst, and then TAT becomes max(TAT, now) + interval. A refused request changes
// nothing but the latest time seen. It returns ErrInvalidLimit for an unusable limit.
func (l Limit) GCRA() (interval, burst int64, err error) {
	period := l.Period.Microseconds()
	if l.Count < 1 || period < 1 || period/int64(l.Count) < 1 {
		return 0, 0, fmt.Errorf("%w: %d per %v", ErrInvalidLimit, l.Count, l.Period)
	}
	interval = period / int64(l.Count)
	return interval, interval * int64(l.Count), nil
}

// Decide runs one GCRA step in memory: given the stored TAT and latest time seen (zero
// for a subject never seen) and the caller's now, all in Unix microseconds, it returns
// whether the request is allowed and the state to store. It is the reference the SQL
// and Lua versions of the adapters follow.
func Decide(interval, burst, tat, seen, now int64) (allowed bool, newTAT, newSeen int64) {
	if seen > now {
		now = seen
	}
	base := tat
	if now > base {
		base = now
	}
	if base+interval-now <= burst {
		return true, base + interval, now
	}
	return false, tat, now
}

// DecisionAt turns the state after a GCRA step (allowed, the stored TAT and the
// effective now, in Unix microseconds) into the Decision that limiters return. All
// adapters use it, so they report the same numbers.
func (l Limit) DecisionAt(allowed bool, tat, now int64) Decision {
	interval, burst, err := l.GCRA()
	if err != nil {
		return Decision{Limit: l.Count}
	}
	ahead := tat - now // how far the TAT is ahead of now
	if ahead < 0 {
		ahead = 0
	}
	d := Decision{
		Allowed:    allowed,
		Limit:      l.Count,
		ResetAfter: time.Duration(ahead) * time.Microsecond,
		ResetAt:    time.UnixMicro(now + ahead).UTC(),
	}
	if free := burst - ahead; free > 0 {
		d.Remaining = int(free / interval)
	}
	if !allowed {
		d.RetryAfter = time.Duration(ahead+interval-burst) * time.Microsecond
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
// backwards, and agree with Decide and DecisionAt. An error means no decision was made
// (the store failed, or ErrInvalidLimit).
type Limiter interface {
	Allow(ctx context.Context, key string, limit Limit) (Decision, error)
}
