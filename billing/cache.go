package billing

import (
	"context"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/coarse"
	"github.com/nexus-ecosystem/nexus/internal/fencedmap"
)

// TermsLoader reads a user's current plan and terms from the source of truth;
// Service.PlanTerms is one.
type TermsLoader func(ctx context.Context, user ecoid.ID) (PlanID, Terms, error)

// TermsCacheConfig configures a TermsCache. The zero value is the documented default.
type TermsCacheConfig struct {
	// Size is the most users kept; default 10,000. When full, an expired entry makes
	// room, or else an arbitrary one (cheap, and fair enough for a cache whose misses
	// cost one store read).
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
// while the read was in flight. Errors are not cached. Misses of one user are collapsed
// into one read, which every request that missed meanwhile waits for: when an entry
// expired or the cache was purged under load, every request of a busy user used to read
// the store at once, and with PostgreSQL those reads took the connection pool from the
// rate-limit and quota leases, turning a purge into a wave of 503s (a goroutine dump
// under bench/e2e's 1,000-key load found 83 requests of 200 waiting in termsLoader for a
// connection). A hit takes no lock, writes no
// shared memory and does not allocate (see package fencedmap; behind the sharded read
// locks it had before, one busy user read from two cores took 47–71 ns a hit, 14–17 ns
// since: BenchmarkTermsCacheHotUser).
type TermsCache struct {
	load    TermsLoader
	ttl     time.Duration
	now     func() time.Time
	entries *fencedmap.Map[ecoid.ID, termsEntry]

	flightMu sync.Mutex
	flights  map[ecoid.ID]*termsRead // the read in flight of each user missed now
}

// termsRead is one read of a user's terms, shared by the requests that missed meanwhile.
type termsRead struct {
	done  chan struct{} // closed when the fields below are set
	gen   uint64        // the cache's generation when the read began
	plan  PlanID
	terms Terms
	err   error
	// abandoned says the read failed because its leader's own request ended: the
	// others read again rather than fail with an error that was not theirs.
	abandoned bool
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
	return &TermsCache{load: load, ttl: cfg.TTL, now: cfg.Now, entries: fencedmap.New[ecoid.ID, termsEntry](cfg.Size),
		flights: map[ecoid.ID]*termsRead{}}
}

// Get returns the user's effective plan and terms, from memory when a fresh entry is
// there, else from the loader (and remembers the answer). Concurrent misses of one user
// wait for one read; a request whose context ends while it waits returns ctx.Err().
func (c *TermsCache) Get(ctx context.Context, user ecoid.ID) (PlanID, Terms, error) {
	for {
		var now int64
		if e := c.entries.Load(user); e != nil {
			if e.expires == 0 {
				return e.plan, e.terms, nil
			}
			if now = c.now().UnixNano(); now < e.expires {
				return e.plan, e.terms, nil
			}
		}
		rd, lead := c.join(user, c.entries.Gen())
		if !lead {
			select {
			case <-rd.done:
			case <-ctx.Done():
				return "", Terms{}, ctx.Err()
			}
			if rd.abandoned {
				continue
			}
			return rd.plan, rd.terms, rd.err
		}
		c.read(ctx, user, rd, now)
		return rd.plan, rd.terms, rd.err
	}
}

// join returns the read in flight for user that began in generation gen, or registers a
// new one for the caller to lead (lead true). A read that began before an invalidation
// (an older generation) may hold what the invalidation replaced: it is not joined.
func (c *TermsCache) join(user ecoid.ID, gen uint64) (rd *termsRead, lead bool) {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	if rd := c.flights[user]; rd != nil && rd.gen == gen {
		return rd, false
	}
	rd = &termsRead{done: make(chan struct{}), gen: gen}
	c.flights[user] = rd
	return rd, true
}

// read runs rd: loads the user's terms, stores them unless an invalidation came
// meanwhile (the generation fence), and wakes those waiting. now is the Get's clock
// reading, 0 if it read none.
func (c *TermsCache) read(ctx context.Context, user ecoid.ID, rd *termsRead, now int64) {
	defer func() {
		c.flightMu.Lock()
		if c.flights[user] == rd {
			delete(c.flights, user)
		}
		c.flightMu.Unlock()
		close(rd.done)
	}()
	rd.abandoned = true // until the loader returns: if it panics, the others read again
	rd.plan, rd.terms, rd.err = c.load(ctx, user)
	rd.abandoned = rd.err != nil && ctx.Err() != nil
	if rd.err != nil {
		rd.plan, rd.terms = "", Terms{}
		return
	}
	e := &termsEntry{plan: rd.plan, terms: rd.terms}
	if c.ttl > 0 {
		if now == 0 {
			now = c.now().UnixNano()
		}
		e.expires = now + int64(c.ttl)
	}
	c.entries.Store(user, e, rd.gen, func(old *termsEntry) bool { return old.expires != 0 && old.expires <= now })
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
func (c *TermsCache) Invalidate(user ecoid.ID) { c.entries.Delete(user) }

// Purge forgets every entry, with the same guarantee for reads in flight as Invalidate.
// Call it when invalidations may have been missed (a reconnect of the fan-out).
func (c *TermsCache) Purge() { c.entries.Purge() }

// Len returns the number of users cached.
func (c *TermsCache) Len() int { return c.entries.Len() }
