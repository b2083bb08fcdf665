package billing

import (
	"context"
	"hash/maphash"
	"sync"
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

// cacheShards splits the cache so concurrent readers and writers of different users
// rarely share a lock.
const cacheShards = 32

// TermsCache keeps users' plans and terms in memory for the hot path (the usage quota
// asks for them on every API call), in front of a TermsLoader. It is bounded, safe for
// concurrent use, and never caches a value read before an invalidation that happened
// while the read was in flight: Invalidate and Purge bump a per-shard generation, and a
// load stores its answer only if the generation it started with is unchanged. Errors are
// not cached. A hit takes a read lock and does not allocate.
type TermsCache struct {
	load   TermsLoader
	ttl    time.Duration
	now    func() time.Time
	perMax int
	seed   maphash.Seed
	shards [cacheShards]termsShard
}

type termsShard struct {
	mu  sync.RWMutex
	gen uint64
	m   map[ecoid.ID]termsEntry
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
	c := &TermsCache{load: load, ttl: cfg.TTL, now: cfg.Now, perMax: max(1, cfg.Size/cacheShards), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[ecoid.ID]termsEntry)
	}
	return c
}

func (c *TermsCache) shard(user ecoid.ID) *termsShard {
	return &c.shards[maphash.String(c.seed, string(user))%cacheShards]
}

// Get returns the user's effective plan and terms, from memory when a fresh entry is
// there, else from the loader (and remembers the answer).
func (c *TermsCache) Get(ctx context.Context, user ecoid.ID) (PlanID, Terms, error) {
	sh := c.shard(user)
	sh.mu.RLock()
	e, ok := sh.m[user]
	gen := sh.gen
	sh.mu.RUnlock()
	var now int64
	if ok && e.expires != 0 {
		now = c.now().UnixNano()
		ok = now < e.expires
	}
	if ok {
		return e.plan, e.terms, nil
	}
	plan, terms, err := c.load(ctx, user)
	if err != nil {
		return "", Terms{}, err
	}
	e = termsEntry{plan: plan, terms: terms}
	if c.ttl > 0 {
		if now == 0 {
			now = c.now().UnixNano()
		}
		e.expires = now + int64(c.ttl)
	}
	sh.mu.Lock()
	if sh.gen == gen { // no invalidation while loading: the answer is not older than one
		if _, present := sh.m[user]; !present && len(sh.m) >= c.perMax {
			for k := range sh.m {
				delete(sh.m, k)
				break
			}
		}
		sh.m[user] = e
	}
	sh.mu.Unlock()
	return plan, terms, nil
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
	sh := c.shard(user)
	sh.mu.Lock()
	delete(sh.m, user)
	sh.gen++
	sh.mu.Unlock()
}

// Purge forgets every entry, with the same guarantee for reads in flight as Invalidate.
// Call it when invalidations may have been missed (a reconnect of the fan-out).
func (c *TermsCache) Purge() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.gen++
		sh.mu.Unlock()
	}
}

// Len returns the number of users cached.
func (c *TermsCache) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
