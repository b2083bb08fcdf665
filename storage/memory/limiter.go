package memory

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
)

// Limiter is the in-process apikey.Limiter: apikey.GCRA.Step over sharded tables, one
// per policy, holding two integers per subject. A decision takes one lock of one of 128
// shards, one map lookup and does not allocate (except when a table grows).
//
// Idle entries, whose whole burst is available again, hold nothing a fresh entry would
// not, so they are dropped: a shard sweeps them whenever it has doubled in size since its
// last sweep, and rebuilds its tables when a sweep leaves it at a quarter of its peak, so
// memory follows the number of recently active subjects rather than every subject ever
// seen. Sweep drops them on demand. It is safe for concurrent use.
type Limiter struct {
	now      func() time.Time // nil: the monotonic clock from base
	base     time.Time        // when the limiter was made, with a monotonic reading
	baseUS   int64            // base in Unix microseconds
	seed     maphash.Seed
	mu       sync.Mutex                              // serializes adding a policy
	policies atomic.Pointer[map[string]*policyTable] // copied on write
}

const (
	limiterShards = 128
	minSweepLen   = 64
)

type policyTable struct {
	shards [limiterShards]limiterShard
}

type gcraState struct{ tat, seen int64 } // Unix microseconds

// limiterShard maps a subject to its slot in states; freed slots are reused.
type limiterShard struct {
	mu      sync.Mutex
	index   map[string]int32
	states  []gcraState
	free    []int32
	sweepAt int // sweep when a new entry makes the index this large
	peak    int // the largest size since the tables were built
	_       [24]byte
}

var _ apikey.Limiter = (*Limiter)(nil)

// Option configures NewLimiter.
type Option func(*Limiter)

// WithClock makes the limiter read time from now instead of the monotonic clock (for
// tests).
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) { l.now = now }
}

// NewLimiter returns an empty in-process limiter.
func NewLimiter(opts ...Option) *Limiter {
	l := &Limiter{base: time.Now(), seed: maphash.MakeSeed()}
	l.baseUS = l.base.UnixMicro()
	for _, o := range opts {
		o(l)
	}
	l.policies.Store(&map[string]*policyTable{})
	return l
}

// nowMicro returns the time in Unix microseconds. The default clock is the wall time at
// NewLimiter plus the monotonic time since: one clock read instead of two, and immune
// to steps of the wall clock.
func (l *Limiter) nowMicro() int64 {
	if l.now != nil {
		return l.now().UnixMicro()
	}
	return l.baseUS + int64(time.Since(l.base)/time.Microsecond)
}

// table returns the table of a policy, creating it on first use.
func (l *Limiter) table(policy string) *policyTable {
	if t, ok := (*l.policies.Load())[policy]; ok {
		return t
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.policies.Load()
	if t, ok := old[policy]; ok {
		return t
	}
	t := &policyTable{}
	for i := range t.shards {
		t.shards[i].index = map[string]int32{}
		t.shards[i].sweepAt = minSweepLen
	}
	m := make(map[string]*policyTable, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[policy] = t
	l.policies.Store(&m)
	return t
}

// Allow implements apikey.Limiter. It returns apikey.ErrInvalidLimit for an unusable
// limit and no other error; ctx is not used.
func (l *Limiter) Allow(_ context.Context, key string, limit apikey.Limit) (apikey.Decision, error) {
	g, err := limit.GCRA()
	if err != nil {
		return apikey.Decision{}, err
	}
	now := l.nowMicro()
	sh := &l.table(limit.Policy()).shards[maphash.String(l.seed, key)%limiterShards]
	sh.mu.Lock()
	i, existed := sh.index[key]
	if !existed {
		i = sh.add(key)
	}
	st := &sh.states[i]
	allowed, tat, seen := g.Step(st.tat, st.seen, now)
	st.tat, st.seen = tat, seen
	if !existed && len(sh.index) >= sh.sweepAt {
		sh.sweep(seen)
	}
	sh.mu.Unlock()
	return g.Decision(allowed, tat, seen), nil
}

// add gives key a zeroed slot. The caller holds sh.mu.
func (sh *limiterShard) add(key string) int32 {
	var i int32
	if n := len(sh.free); n > 0 {
		i, sh.free = sh.free[n-1], sh.free[:n-1]
		sh.states[i] = gcraState{}
	} else {
		i = int32(len(sh.states))
		sh.states = append(sh.states, gcraState{})
	}
	sh.index[key] = i
	return i
}

// sweep drops the idle entries of the shard. The caller holds sh.mu.
func (sh *limiterShard) sweep(now int64) {
	sh.peak = max(sh.peak, len(sh.index))
	for k, i := range sh.index {
		if sh.states[i].tat <= now {
			delete(sh.index, k)
			sh.free = append(sh.free, i)
		}
	}
	n := len(sh.index)
	if sh.peak >= 4*minSweepLen && n <= sh.peak/4 {
		// Go maps never shrink: copy the survivors into tables of their size.
		index := make(map[string]int32, n)
		states := make([]gcraState, 0, n)
		for k, i := range sh.index {
			index[k] = int32(len(states))
			states = append(states, sh.states[i])
		}
		sh.index, sh.states, sh.free, sh.peak = index, states, nil, n
	}
	sh.sweepAt = max(minSweepLen, 2*n)
}

// Sweep drops every entry that is idle at the limiter's current time and returns how
// many entries remain.
func (l *Limiter) Sweep() int {
	now := l.nowMicro()
	n := 0
	l.eachShard(func(sh *limiterShard) {
		sh.sweep(now)
		n += len(sh.index)
	})
	return n
}

// Len returns the number of (policy, subject) entries held.
func (l *Limiter) Len() int {
	n := 0
	l.eachShard(func(sh *limiterShard) { n += len(sh.index) })
	return n
}

func (l *Limiter) eachShard(f func(*limiterShard)) {
	for _, t := range *l.policies.Load() {
		for i := range t.shards {
			sh := &t.shards[i]
			sh.mu.Lock()
			f(sh)
			sh.mu.Unlock()
		}
	}
}
