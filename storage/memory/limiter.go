package memory

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
)

// Limiter is the in-process apikey.Limiter: the GCRA of apikey.Decide over a sharded
// map, one entry of two integers per (policy, subject). A decision takes one lock of
// one of 128 shards and does not allocate (except when a shard's map grows).
//
// Idle entries, whose whole burst is available again, hold nothing a fresh entry would
// not, so they are dropped: a shard sweeps them whenever it has doubled in size since its
// last sweep, and rebuilds its map when a sweep leaves it at a quarter of its peak, so
// memory follows the number of recently active subjects rather than every subject ever
// seen. Sweep drops them on demand. It is safe for concurrent use.
type Limiter struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

const (
	limiterShards = 128
	minSweepLen   = 64
)

type limiterKey struct{ policy, subject string }

type gcraState struct{ tat, seen int64 } // Unix microseconds

type limiterShard struct {
	mu      sync.Mutex
	m       map[limiterKey]gcraState
	sweepAt int // sweep when a new entry makes the map this large
	peak    int // the largest size since the map was built
	_       [32]byte
}

var _ apikey.Limiter = (*Limiter)(nil)

// LimiterOption configures NewLimiter.
type LimiterOption func(*Limiter)

// WithClock makes the limiter read time from now instead of time.Now (for tests).
func WithClock(now func() time.Time) LimiterOption {
	return func(l *Limiter) { l.now = now }
}

// NewLimiter returns an empty in-process limiter.
func NewLimiter(opts ...LimiterOption) *Limiter {
	l := &Limiter{now: time.Now, seed: maphash.MakeSeed()}
	for _, o := range opts {
		o(l)
	}
	for i := range l.shards {
		l.shards[i].m = make(map[limiterKey]gcraState)
		l.shards[i].sweepAt = minSweepLen
	}
	return l
}

// Allow implements apikey.Limiter. It returns apikey.ErrInvalidLimit for an unusable
// limit and no other error; ctx is not used.
func (l *Limiter) Allow(_ context.Context, key string, limit apikey.Limit) (apikey.Decision, error) {
	interval, burst, err := limit.GCRA()
	if err != nil {
		return apikey.Decision{}, err
	}
	now := l.now().UnixMicro()
	k := limiterKey{policy: limit.Policy(), subject: key}
	sh := &l.shards[maphash.String(l.seed, key)%limiterShards]
	sh.mu.Lock()
	st, existed := sh.m[k]
	allowed, tat, seen := apikey.Decide(interval, burst, st.tat, st.seen, now)
	sh.m[k] = gcraState{tat: tat, seen: seen}
	if !existed && len(sh.m) >= sh.sweepAt {
		sh.sweep(seen)
	}
	sh.mu.Unlock()
	return limit.DecisionAt(allowed, tat, seen), nil
}

// sweep drops the idle entries of the shard. The caller holds sh.mu.
func (sh *limiterShard) sweep(now int64) {
	sh.peak = max(sh.peak, len(sh.m))
	for k, st := range sh.m {
		if st.tat <= now {
			delete(sh.m, k)
		}
	}
	n := len(sh.m)
	if sh.peak >= 4*minSweepLen && n <= sh.peak/4 {
		// Go maps never shrink: copy the survivors into a map of their size.
		m := make(map[limiterKey]gcraState, n)
		for k, st := range sh.m {
			m[k] = st
		}
		sh.m, sh.peak = m, n
	}
	sh.sweepAt = max(minSweepLen, 2*n)
}

// Sweep drops every entry that is idle at the limiter's current time and returns how
// many entries remain.
func (l *Limiter) Sweep() int {
	now := l.now().UnixMicro()
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		sh.sweep(now)
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Len returns the number of (policy, subject) entries held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
