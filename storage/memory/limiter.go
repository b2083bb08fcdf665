package memory

import (
	"context"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/internal/coarse"
)

// Limiter is the in-process apikey.Limiter: apikey.GCRA.Step on one small entry per
// (policy, subject), each with its own lock, found through sharded open-addressing
// tables that are read without locks. A decision for a known subject hashes the key
// once (maphash), probes one table, locks and updates one 64-byte entry and reads the
// monotonic clock once; it does not allocate. Two decisions contend only when they are
// for the same subject. The first decision for a new subject takes its shard's lock and
// allocates its entry.
//
// The default clock is coarse (package internal/coarse): the monotonic time since
// NewLimiter, read by a goroutine every millisecond while the limiter is in use (it stops after a second without a
// decision and restarts with the next one). A decision then costs no clock read; time
// as the limiter sees it lags by at most a tick (more when the process is starved), so
// it refuses slightly earlier, never later, and never runs backwards.
//
// Idle entries, whose whole burst is available again, hold nothing a fresh entry would
// not, so they are dropped: a shard sweeps them whenever it has doubled in size since its
// last sweep, and rebuilds its table at the size of the survivors, so memory follows the
// number of recently active subjects rather than every subject ever seen. Sweep drops
// them on demand. It is safe for concurrent use.
type Limiter struct {
	now      func() time.Time // nil: clock
	seed     maphash.Seed
	mu       sync.Mutex                // serializes adding a policy
	policies atomic.Pointer[policySet] // copied on write
	clock    *coarse.Clock
	baseUS   int64 // the wall time at NewLimiter, Unix µs: the clock's time is baseUS + Elapsed
}

// clockTick is how often the default clock moves.
const clockTick = time.Millisecond

const (
	shardBits     = 7
	limiterShards = 1 << shardBits
	minSweepLen   = 64 // a shard sweeps first when it reaches this many entries
	minSlots      = 16
	smallPolicies = 8 // policies found by a scan before the map is asked
)

// policySet is every policy's table; the first few are also in a slice, which a scan
// searches faster than a map for the one or two policies a service usually has.
type policySet struct {
	small  []*policyTable
	byName map[string]*policyTable
}

type policyTable struct {
	name   string
	shards [limiterShards]limiterShard
}

// limiterShard is an open-addressing table (linear probing) of pointers to entries.
// Readers load the table and probe without a lock; mu serializes inserts, sweeps and
// rebuilds. Entries are never removed from a table in place: a sweep marks idle entries
// dead and publishes a new table without them, and a reader that finds a dead entry (in
// a table it loaded before) looks again under mu.
type limiterShard struct {
	mu      sync.Mutex
	table   atomic.Pointer[slotTable]
	live    int // entries in table; under mu
	sweepAt int // sweep before an insert makes live this large; under mu
	_       [32]byte
}

type slotTable struct {
	mask  uint64
	slots []atomic.Pointer[limiterEntry]
}

// gcraState is a GCRA state as a value (TokenStore keeps these), in Unix microseconds.
type gcraState struct{ tat, seen int64 }

// limiterEntry is the GCRA state of one (policy, subject). hash and key never change
// once the entry is published; the rest is guarded by mu.
type limiterEntry struct {
	mu        sync.Mutex
	dead      bool  // swept: no longer in the shard's table
	tat, seen int64 // Unix microseconds
	hash      uint64
	key       string
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
	l := &Limiter{seed: maphash.MakeSeed(), baseUS: time.Now().UnixMicro()}
	l.clock = coarse.New(clockTick) // after baseUS: the limiter's time is then never ahead of the wall clock
	for _, o := range opts {
		o(l)
	}
	l.policies.Store(&policySet{byName: map[string]*policyTable{}})
	return l
}

// nowMicro returns the time in Unix microseconds.
func (l *Limiter) nowMicro() int64 {
	if l.now != nil {
		return l.now().UnixMicro()
	}
	return l.baseUS + int64(l.clock.Elapsed()/time.Microsecond)
}

// table returns the table of a policy, creating it on first use.
func (l *Limiter) table(policy string) *policyTable {
	ps := l.policies.Load()
	for _, t := range ps.small {
		if t.name == policy {
			return t
		}
	}
	if len(ps.byName) > len(ps.small) {
		if t, ok := ps.byName[policy]; ok {
			return t
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.policies.Load()
	if t, ok := old.byName[policy]; ok {
		return t
	}
	t := &policyTable{name: policy}
	for i := range t.shards {
		t.shards[i].sweepAt = minSweepLen
	}
	ps = &policySet{small: old.small, byName: make(map[string]*policyTable, len(old.byName)+1)}
	for k, v := range old.byName {
		ps.byName[k] = v
	}
	ps.byName[policy] = t
	if len(ps.small) < smallPolicies {
		ps.small = append(ps.small[:len(ps.small):len(ps.small)], t)
	}
	l.policies.Store(ps)
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
	h := maphash.String(l.seed, key)
	sh := &l.table(limit.Policy()).shards[h>>(64-shardBits)]
	return sh.decide(g, sh.find(h, key), h, key, now), nil
}

// decide runs one GCRA step on the entry of (h, key): e, as find returned it, or, when
// that is nil or was swept since, the live entry that insert returns.
func (sh *limiterShard) decide(g apikey.GCRA, e *limiterEntry, h uint64, key string, now int64) apikey.Decision {
	for {
		if e == nil {
			e = sh.insert(h, key, now)
		}
		e.mu.Lock()
		if !e.dead {
			break
		}
		e.mu.Unlock() // swept after it was found: look again
		e = nil
	}
	allowed, tat, seen := g.Step(e.tat, e.seen, now)
	e.tat, e.seen = tat, seen
	e.mu.Unlock()
	return g.Decision(allowed, tat, seen)
}

// find returns the entry of (h, key) in the shard's current table, or nil. It takes no
// lock; the entry may be dead by the time the caller locks it.
func (sh *limiterShard) find(h uint64, key string) *limiterEntry {
	t := sh.table.Load()
	if t == nil {
		return nil
	}
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		// Terminates: a table is never more than 3/4 full.
		if e := t.slots[i].Load(); e == nil || e.hash == h && e.key == key {
			return e
		}
	}
}

// insert returns the live entry of (h, key), adding it if it is missing.
func (sh *limiterShard) insert(h uint64, key string, now int64) *limiterEntry {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.find(h, key); e != nil {
		return e // added meanwhile; the current table holds no dead entry
	}
	if sh.live+1 >= sh.sweepAt {
		sh.sweep(now) // before the insert, which would be idle by this measure
	}
	t := sh.table.Load()
	if t == nil || 4*(sh.live+1) > 3*len(t.slots) {
		t = sh.rebuild(2 * (sh.live + 1))
	}
	e := &limiterEntry{hash: h, key: key}
	t.put(e)
	sh.live++
	return e
}

// put stores e in the first free slot of its probe sequence. The caller holds the
// shard's lock and has made room.
func (t *slotTable) put(e *limiterEntry) {
	i := e.hash & t.mask
	for t.slots[i].Load() != nil {
		i = (i + 1) & t.mask
	}
	t.slots[i].Store(e)
}

// rebuild publishes a table of at least n slots (a power of two) holding the shard's
// entries that are not dead, and returns it. The caller holds sh.mu.
func (sh *limiterShard) rebuild(n int) *slotTable {
	size := minSlots
	if n > minSlots {
		size = 1 << bits.Len(uint(n-1))
	}
	t := &slotTable{mask: uint64(size - 1), slots: make([]atomic.Pointer[limiterEntry], size)}
	if old := sh.table.Load(); old != nil {
		for i := range old.slots {
			if e := old.slots[i].Load(); e != nil && !e.dead {
				t.put(e)
			}
		}
	}
	sh.table.Store(t)
	return t
}

// sweep drops the idle entries of the shard and, when any went, publishes a table sized
// for the survivors. The caller holds sh.mu.
func (sh *limiterShard) sweep(now int64) {
	t := sh.table.Load()
	if t == nil {
		return
	}
	dropped := 0
	for i := range t.slots {
		e := t.slots[i].Load()
		if e == nil {
			continue
		}
		e.mu.Lock()
		if e.tat <= now {
			e.dead = true // written under sh.mu too, so rebuild may read it
			dropped++
		}
		e.mu.Unlock()
	}
	sh.live -= dropped
	if dropped > 0 {
		sh.rebuild(2 * sh.live)
	}
	sh.sweepAt = max(minSweepLen, 2*sh.live)
}

// Sweep drops every entry that is idle at the limiter's current time and returns how
// many entries remain.
func (l *Limiter) Sweep() int {
	now := l.nowMicro()
	n := 0
	l.eachShard(func(sh *limiterShard) {
		sh.sweep(now)
		n += sh.live
	})
	return n
}

// Len returns the number of (policy, subject) entries held.
func (l *Limiter) Len() int {
	n := 0
	l.eachShard(func(sh *limiterShard) { n += sh.live })
	return n
}

func (l *Limiter) eachShard(f func(*limiterShard)) {
	for _, t := range l.policies.Load().byName {
		for i := range t.shards {
			sh := &t.shards[i]
			sh.mu.Lock()
			f(sh)
			sh.mu.Unlock()
		}
	}
}
