package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/fanout"
	"github.com/nexus-ecosystem/nexus/guard"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	nexusredis "github.com/nexus-ecosystem/nexus/storage/redis"
	"github.com/nexus-ecosystem/nexus/usage"
)

// scaleState is what lets several instances share one database and behave as one:
// the event bus that tells every instance what one changed, and, with PostgreSQL, the
// hot path that keeps the database off most API calls (cached plan terms, quota leases,
// rate-limit token leases) under a deadline.
type scaleState struct {
	bus      fanout.Bus            // nil with in-memory stores: one process, nothing to tell
	busName  string                // "postgres" or "redis", for the start-up log
	terms    *billing.TermsCache   // the plan lookup of the hot path; nil in memory
	counter  *usage.LeasedCounter  // quota leases; nil in memory
	leased   *apikey.LeasedLimiter // rate-limit token leases; nil unless Postgres is the limiter
	unsubBus func()
}

// busChannel is the NOTIFY or pub/sub channel: NEXUS_EVENTS_CHANNEL, or the adapter's
// default. Instances that share data must share it; services that share a database in
// separate schemas give each its own.
func (s *services) busChannel() string { return s.cfg.EventsChannel }

// initBus opens the event bus: Redis pub/sub with -redis, else PostgreSQL LISTEN/NOTIFY
// with -postgres; none in memory. It subscribes the caches this instance keeps.
func (s *services) initBus(ctx context.Context) error {
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch {
	case s.redis != nil:
		bus, err := nexusredis.NewBus(openCtx, s.redis, nexusredis.BusConfig{Channel: s.busChannel(), Logger: s.log})
		if err != nil {
			return err
		}
		s.bus, s.busName = bus, "redis"
	case s.db != nil:
		bus, err := postgres.NewBus(openCtx, s.cfg.PostgresDSN, s.db, postgres.BusConfig{Channel: s.busChannel(), Logger: s.log})
		if err != nil {
			return err
		}
		s.bus, s.busName = bus, "postgres"
	default:
		return nil
	}
	s.unsubBus = s.bus.Subscribe(s.hear)
	return nil
}

// hear applies one event from any instance (this one included) to the caches it guards.
func (s *services) hear(e fanout.Event) {
	switch e.Kind {
	case fanout.KeyChanged:
		s.keys.Invalidate(ecoid.ID(e.ID))
	case fanout.PlanChanged:
		// The quota leases need nothing: a lease taken under another limit is given
		// back by the first call that sees the new terms.
		s.terms.Invalidate(ecoid.ID(e.User))
	case fanout.Gap: // events may have been lost: nothing cached may outlive them
		s.keys.PurgeCache()
		s.terms.Purge()
	}
}

// publish tells every instance about a change, with a deadline of its own; a failure is
// logged (the other instances then learn of it by their caches' TTLs).
func (s *services) publish(ctx context.Context, e fanout.Event) {
	if s.bus == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.bus.Publish(ctx, e); err != nil {
		s.log.Error("fanout: publish failed; other instances will notice by their cache TTL",
			"kind", string(e.Kind), "err", err)
	}
}

// keyChanged is apikey.Config.OnChange: a revocation or rotation reaches every instance.
func (s *services) keyChanged(ctx context.Context, id ecoid.ID) {
	s.publish(ctx, fanout.Event{Kind: fanout.KeyChanged, ID: string(id)})
}

// planChanged is billing.Config.OnPlanChange: the plan of user changed.
func (s *services) planChanged(ctx context.Context, user ecoid.ID) {
	s.terms.Invalidate(user)
	s.publish(ctx, fanout.Event{Kind: fanout.PlanChanged, User: string(user)})
}

// admission returns the quota and rate-limit decision of the API-key chain, with plan
// terms from a cache that planChanged (and the bus) keeps fresh. In memory it is guard's
// default over the in-process stores. With PostgreSQL it is the hot path: the quota from
// leases of calls, the rate limit
// from leases of GCRA tokens (or Redis with -redis), every store call under
// guard.DefaultBudget so a slow database is answered 503 at once.
func (s *services) admission() guard.Admission {
	if s.db == nil {
		return guard.NewLimits(s.limiter, s.usageStore, s.terms.QuotaFor)
	}
	limiter := s.limiter
	if pl, ok := s.limiter.(*postgres.Limiter); ok {
		s.leased = apikey.NewLeasedLimiter(pl, apikey.WithHold(leaseHold), apikey.WithBudget(guard.DefaultBudget))
		limiter = s.leased
	}
	if _, leased := limiter.(*apikey.LeasedLimiter); !leased { // Redis: a round trip per decision
		return guard.Budget(guard.NewLeased(limiter, s.counter, s.terms.QuotaFor), guard.DefaultBudget)
	}
	// Each leased part applies the budget itself, only when it goes to the store: the
	// hot path starts no timer.
	return guard.NewLeased(limiter, s.counter, s.terms.QuotaFor)
}

// The hot path's lease settings. leaseHold is how long leased rate-limit tokens stay
// usable: a store round trip per key about every two seconds, for at most 2/60 of a full
// burst. softFlush is how often calls without a hard cap (Pro, Enterprise) are written: a
// crash leaves up to that much of them uncounted (never billed).
const (
	leaseHold = 2 * time.Second
	softFlush = 250 * time.Millisecond
)

// initHotPath builds the terms cache and the quota leases with PostgreSQL (before billing
// and the guard need them).
func (s *services) initHotPath() {
	if s.db == nil {
		return
	}
	store, ok := s.usageStore.(usage.BlockCounter)
	if !ok {
		return
	}
	s.counter = usage.NewLeasedCounter(store, usage.LeaseConfig{Logger: s.log, FlushInterval: softFlush, Budget: guard.DefaultBudget})
}

// lookupBudget is apikey.Config.LookupBudget: with PostgreSQL, a key that is not cached
// is waited for at most guard.DefaultBudget (then 503).
func (s *services) lookupBudget() time.Duration {
	if s.db == nil {
		return 0
	}
	return guard.DefaultBudget
}

// termsLoader is billing's plan lookup under guard.DefaultBudget, for the terms cache: a
// miss that the store does not answer in time fails the request with 503.
func (s *services) termsLoader(ctx context.Context, user ecoid.ID) (billing.PlanID, billing.Terms, error) {
	ctx, cancel := context.WithTimeout(ctx, guard.DefaultBudget)
	defer cancel()
	return s.billing.PlanTerms(ctx, user)
}

// quotaCounter is the counter /api/usage reads: the leases' view with PostgreSQL (it
// leaves out this instance's unused leased calls), the store otherwise.
func (s *services) quotaCounter() usage.Counter {
	if s.counter != nil {
		return s.counter
	}
	return s.usageStore
}

// closeScale returns the unused leased calls, writes the counted ones and closes the bus.
func (s *services) closeScale(ctx context.Context) error {
	var err error
	if s.counter != nil {
		if err = s.counter.Close(ctx); err != nil {
			err = fmt.Errorf("quota leases: %w", err)
		}
	}
	if s.unsubBus != nil {
		s.unsubBus()
		s.unsubBus = nil
	}
	if s.bus != nil {
		_ = s.bus.Close()
		s.bus = nil
	}
	return err
}
