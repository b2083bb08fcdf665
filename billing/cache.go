package billing

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/coarse"
)

// TermsLoader reads a user's current plan and terms from the source of truth;
// Service.PlanTerms is one.
type TermsLoader func(ctx context.Context, user ecoid.ID) (PlanID, Terms, error)

// TermsCacheConfig configures a TermsCache. The zero value is the documented default.
type TermsCacheConfig struct {
	// Size is the most users kept; default 10,000. When full, an arbitrary entry of the
	// same shard makes room (random eviction: cheap, and fair enough for a cache whose
	// misses cost one store read).
	Size int
	// TTL is how long an entry is used before it is read again; default 1 minute,
	// negative: until invalidated. It is a safety net only: plan changes are meant to
	// reach the cache through Invalidate (Config.OnPlanChange, the fan-out) within a
	// second, and Purge when that stream of invalidations had a gap.
	TTL time.Duration
	// Now is the clock; default: the wall clock read through a coarse clock that moves
	// every 10 ms (an atomic load per Get instead of a clock read), so an entry lives up
	// to 10 ms past its TTL.
	Now func() time.Time
}

// TermsCache keeps users' plans and terms in memory for the hot path (the usage quota
// asks for them on every API call), in front of a TermsLoader. It is bounded, safe for
// concurrent use, and never caches a value read before an invalidation that happened
// while the read was in flight. Errors are not cached.
//
// A hit takes no lock and writes no shared memory: the entries are in a sync.Map, whose
// reads are lock-free, which is the case it is made for (written once, read many times).
// The cache had 32 shards of a map behind a read lock before; a read lock is a shared
// atomic counter, and on the API route, where every request reads the same few users,
// that counter's cache line moved between cores on every call (3% of the route's CPU
// in the parallel benchmark of examples/server).
//
// Invalidation: Invalidate and Purge bump a generation before they delete; a load
// stores its answer, then reads the generation again and takes its entry back out if
// the generation moved since the load began. Either the invalidation's delete comes
// after the store (and removes it), or the load sees the new generation (and removes its
// own entry): an answer older than an invalidation is never left behind.
type TermsCache struct {
	load    TermsLoader
	ttl     time.Duration
	now     func() time.Time
	max     int64
	gen     atomic.Uint64
	size    atomic.Int64 // entries in m
	entries sync.Map     // ecoid.ID → *termsEntry
}

type termsEntry struct {
	plan    PlanID
	terms   Terms
	expires int64 // UnixNano; 0: never
}

// NewTermsCache returns a cache over load configured by cfg (see TermsCacheConfig).
func NewTermsCache(load TermsLoader, cfg TermsCacheConfig) *TermsCache {
	if cfg.Size <= 0 {
		cfg.Size = 10_000
	}
	if cfg.TTL == 0 {
		cfg.TTL = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = coarse.New(coarse.HotPathTick).Now
	}
	return &TermsCache{load: load, ttl: cfg.TTL, now: cfg.Now, max: int64(cfg.Size)}
}

// Get returns the user's effective plan and terms, from memory when a fresh entry is
// there, else from the loader (and remembers the answer).
func (c *TermsCache) Get(ctx context.Context, user ecoid.ID) (PlanID, Terms, error) {
	var now int64
	if v, ok := c.entries.Load(user); ok {
		e := v.(*termsEntry)
		if e.expires == 0 {
			return e.plan, e.terms, nil
		}
		if now = c.now().UnixNano(); now < e.expires {
			return e.plan, e.terms, nil
		}
	}
	gen := c.gen.Load()
	plan, terms, err := c.load(ctx, user)
	if err != nil {
		return "", Terms{}, err
	}
	e := &termsEntry{plan: plan, terms: terms}
	if c.ttl > 0 {
		if now == 0 {
			now = c.now().UnixNano()
		}
		e.expires = now + int64(c.ttl)
	}
	c.store(user, e)
	if c.gen.Load() != gen { // invalidated while loading: the answer may be older than that
		c.remove(user, e)
	}
	return plan, terms, nil
}

// store puts e in the cache, then makes room: whoever takes the cache past its size
// evicts until it is back within it, so once no store is in flight it holds at most
// Size entries (an arbitrary entry goes: cheap, and fair enough for a cache whose
// misses cost one store read).
func (c *TermsCache) store(user ecoid.ID, e *termsEntry) {
	if _, replaced := c.entries.Swap(user, e); replaced {
		return
	}
	for n := c.size.Add(1); n > c.max; {
		evicted := false
		c.entries.Range(func(k, _ any) bool {
			if k.(ecoid.ID) == user {
				return true
			}
			if _, ok := c.entries.LoadAndDelete(k); ok {
				n, evicted = c.size.Add(-1), true
				return false
			}
			return true
		})
		if !evicted {
			return
		}
	}
}

// remove takes out user's entry if it is still e.
func (c *TermsCache) remove(user ecoid.ID, e *termsEntry) {
	if c.entries.CompareAndDelete(user, e) {
		c.size.Add(-1)
	}
}

// QuotaFor has the shape of Service.QuotaFor (the usage quota's limit function): the
// user's monthly quota and whether it is a hard cap, through the cache.
func (c *TermsCache) QuotaFor(ctx context.Context, user ecoid.ID) (limit int64, hardCap bool, err error) {
	_, t, err := c.Get(ctx, user)
	if err != nil {
		return 0, false, err
	}
	return t.QuotaCalls, t.HardCap, nil
}

// Invalidate forgets the user's entry, so the next Get reads the source again; a read
// already in flight does not store its (possibly older) answer. Call it when the user's
// plan changed here or on another instance.
func (c *TermsCache) Invalidate(user ecoid.ID) {
	c.gen.Add(1) // before the delete: see TermsCache
	if _, ok := c.entries.LoadAndDelete(user); ok {
		c.size.Add(-1)
	}
}

// Purge forgets every entry, with the same guarantee for reads in flight as Invalidate.
// Call it when invalidations may have been missed (a reconnect of the fan-out).
func (c *TermsCache) Purge() {
	c.gen.Add(1)
	c.entries.Range(func(k, _ any) bool {
		if _, ok := c.entries.LoadAndDelete(k); ok {
			c.size.Add(-1)
		}
		return true
	})
}

// Len returns the number of users cached.
func (c *TermsCache) Len() int { return int(c.size.Load()) }
