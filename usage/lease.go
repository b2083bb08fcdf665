package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// BlockCounter is a Counter that also moves calls in blocks, so that a LeasedCounter can
// count many calls with one store round trip. storage/memory and storage/postgres
// implement it; storagetest.RunLeases holds them to it.
type BlockCounter interface {
	Counter
	// TakeCalls adds calls to user's count for period (a PeriodStart value) in one
	// atomic step and returns how many it added and the count after. Without a hard cap
	// it adds all n; under one it adds min(n, limit − count), never less than zero, so
	// the count never passes limit however many callers take at once. n must be at
	// least 1.
	TakeCalls(ctx context.Context, user ecoid.ID, period time.Time, n, limit int64, hardCap bool) (granted, count int64, err error)
	// ReturnCalls takes n calls back from user's count for period; the count never goes
	// below zero, and a period never counted stays uncounted.
	ReturnCalls(ctx context.Context, user ecoid.ID, period time.Time, n int64) error
}

// PendingCalls is one user's calls of one period counted in memory and not yet written.
type PendingCalls struct {
	User   ecoid.ID
	Period time.Time // a PeriodStart value
	Calls  int64     // at least 1
}

// CallBatcher is a BlockCounter that can also add many users' calls in one step: a
// LeasedCounter then writes all its calls without a hard cap in one round trip per
// FlushInterval instead of one per user. storage/postgres implements it.
type CallBatcher interface {
	// AddCalls adds each entry's calls to its user's count for its period, without a
	// cap, all or none.
	AddCalls(ctx context.Context, batch []PendingCalls) error
}

// LeaseConfig tunes a LeasedCounter. The zero value of every field means its default.
type LeaseConfig struct {
	// Now is the clock that expires leases (default time.Now).
	Now func() time.Time
	// LeaseTTL is how long an instance keeps calls it took under a hard cap before it
	// gives the unused ones back (default 1 s). It bounds how long another instance may
	// refuse a user whose last calls sit unused here, and how long a refusal is
	// remembered before the store is asked again.
	LeaseTTL time.Duration
	// MaxBlock caps the calls taken at once under a hard cap (default 100). Blocks start
	// at one call, double while a lease is used up before it expires and halve when it
	// is not; they never exceed an eighth of what is left under the cap (but at least
	// one), so near the cap every call is counted in the store.
	MaxBlock int64
	// FlushInterval is how often calls without a hard cap are written to the store, in
	// one TakeCalls per user (default 100 ms).
	FlushInterval time.Duration
	// Budget, when positive, is the deadline of each store call made for a caller (a
	// take, or the flush before a switch to a hard cap): a store that does not answer in
	// time fails that AddCall at once. Calls served from a lease never wait. Default 0:
	// the caller's context only.
	Budget time.Duration
	// Logger receives failed flushes and returns (default: discard).
	Logger *slog.Logger
}

// LeasedCounter is a Counter for many instances that keeps the store off the hot path
// while staying exact where it must:
//
//   - Under a hard cap it takes calls in blocks (leases) with one TakeCalls and serves
//     them from memory. The store grants at most what is left under the cap, so the cap is
//     never exceeded by any number of instances. Unused calls go back after LeaseTTL and
//     at Close. While they sit unused here another instance may refuse the user for up to
//     LeaseTTL: a hard cap is met early, never passed.
//   - Without a hard cap (soft caps and unlimited plans, where nothing is refused) calls
//     are counted in memory and written every FlushInterval in one TakeCalls per user.
//
// What a crash (kill -9) costs: under a hard cap, the unused part of the leases held
// (at most MaxBlock calls per user, and never more than an eighth of what was left) stays
// counted as used, so those users may be refused that many calls early this period;
// without a hard cap, up to FlushInterval of served calls are never counted (never billed:
// the error is in the user's favour). Close returns and writes everything.
//
// Count in AddCall's answer is this instance's view: the store's count at the last round
// trip, less the calls held unused here, plus the calls not yet written. PeriodCalls adds
// what this instance has not written and subtracts what it holds unused, so it is exact
// once every instance has returned its leases. It is safe for concurrent use.
type LeasedCounter struct {
	store    BlockCounter
	cfg      LeaseConfig
	releases *ReleaseRetrier // the store's RemoveCall, retried in the background when it fails

	leases  sync.Map // periodKey → *lease
	pending sync.Map // periodKey → *pendingCalls

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool
}

var _ Counter = (*LeasedCounter)(nil)

type periodKey struct {
	user   ecoid.ID
	period time.Time
}

// lease is one (user, period)'s calls taken under a hard cap.
type lease struct {
	mu      sync.Mutex
	left    int64         // granted and not yet served
	count   int64         // the store's count after the last take
	limit   int64         // the limit of the last take
	expires int64         // Unix nanoseconds: when left goes back
	refused int64         // Unix nanoseconds: until then, refuse without asking the store
	block   int64         // the next block to ask for
	taking  chan struct{} // closed when the take in flight ends; nil when none
	err     error         // the failed take's error, for its waiters
}

// pendingCalls is one (user, period)'s calls not yet written.
type pendingCalls struct {
	n     atomic.Int64
	count atomic.Int64 // the store's count after the last flush
	idle  int          // flushes without calls, for eviction (flusher only)
}

// ErrCounterClosed is returned by a LeasedCounter's AddCall after Close.
var ErrCounterClosed = errors.New("usage: leased counter closed")

// NewLeasedCounter returns a LeasedCounter over store and starts the goroutine that
// returns expired leases and writes pending calls; Close stops it.
func NewLeasedCounter(store BlockCounter, cfg LeaseConfig) *LeasedCounter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = time.Second
	}
	if cfg.MaxBlock <= 0 {
		cfg.MaxBlock = 100
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &LeasedCounter{store: store, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{}),
		releases: RetryReleases(store, ReleaseRetryConfig{Logger: cfg.Logger, Timeout: max(cfg.Budget, 2*time.Second)})}
	go c.background()
	return c
}

// AddCall implements Counter: from a lease under a hard cap, from memory otherwise.
func (c *LeasedCounter) AddCall(ctx context.Context, user ecoid.ID, period time.Time, limit int64, hardCap bool) (int64, bool, error) {
	if c.closed.Load() {
		return 0, false, ErrCounterClosed
	}
	k := periodKey{user, PeriodStart(period)}
	if !hardCap {
		p := c.pendingFor(k)
		n := p.n.Add(1)
		return p.count.Load() + n, true, nil
	}
	if err := c.flushUser(ctx, k); err != nil { // calls counted before a switch to a hard cap
		return 0, false, err
	}
	return c.takeOne(ctx, c.leaseFor(k), k, limit)
}

// takeOne serves one call from l, taking a block from the store when l is empty. Using a
// lease renews it: only a lease left idle for LeaseTTL goes back.
func (c *LeasedCounter) takeOne(ctx context.Context, l *lease, k periodKey, limit int64) (int64, bool, error) {
	for {
		now := c.cfg.Now().UnixNano()
		l.mu.Lock()
		if l.left > 0 && l.limit != limit { // the plan changed: give back, take under the new limit
			n := l.detach()
			l.mu.Unlock()
			c.returnCalls(k, n)
			continue
		}
		if l.left > 0 {
			l.left--
			l.expires = now + int64(c.cfg.LeaseTTL)
			count := l.count - l.left
			l.mu.Unlock()
			return count, true, nil
		}
		if now < l.refused && l.limit == limit {
			count := l.count
			l.mu.Unlock()
			return count, false, nil
		}
		if wait := l.taking; wait != nil {
			l.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return 0, false, fmt.Errorf("usage: leased counter: %w", ctx.Err())
			}
		}
		want := l.block
		if l.limit == limit && l.count > 0 {
			want = min(want, (limit-l.count)/8)
		}
		want = max(1, min(want, c.cfg.MaxBlock))
		done := make(chan struct{})
		l.taking = done
		l.mu.Unlock()

		tctx, cancel := c.budget(ctx)
		granted, count, err := c.store.TakeCalls(tctx, k.user, k.period, want, limit, true)
		cancel()

		l.mu.Lock()
		l.taking = nil
		close(done)
		if err != nil {
			l.mu.Unlock()
			return 0, false, fmt.Errorf("usage: leased counter take: %w", err)
		}
		now = c.cfg.Now().UnixNano()
		l.count, l.limit = count, limit
		if granted == 0 {
			l.refused = now + int64(c.cfg.LeaseTTL)
			l.mu.Unlock()
			return count, false, nil
		}
		if granted == want && l.block < c.cfg.MaxBlock {
			l.block = min(c.cfg.MaxBlock, 2*l.block)
		}
		l.left += granted - 1
		l.expires = now + int64(c.cfg.LeaseTTL)
		l.refused = 0
		count -= l.left
		l.mu.Unlock()
		return count, true, nil
	}
}

// detach takes l's unused calls out of it, with l.mu held, for returnCalls, and shrinks
// the next block since this one was too large.
func (l *lease) detach() int64 {
	n := l.left
	l.left = 0
	l.count -= n
	l.block = max(1, l.block/2)
	return n
}

// returnCalls gives n unused calls back to the store, with a deadline of its own. A
// failure only leaves them counted as used: the user is refused early, never let through.
func (c *LeasedCounter) returnCalls(k periodKey, n int64) {
	if n <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.LeaseTTL, time.Second))
	defer cancel()
	if err := c.store.ReturnCalls(ctx, k.user, k.period, n); err != nil {
		c.cfg.Logger.Warn("usage: returning leased calls failed; they stay counted", "user", k.user, "calls", n, "err", err)
	}
}

// RemoveCall implements Counter. A released call comes off this instance's calls not
// yet written when there are some; otherwise it goes back into the lease for the period
// (it is counted in the store), or to the store when there is none. A release the store
// fails to take (it is down) is not lost: it is queued and retried in the background
// until the store takes it (see ReleaseRetrier), and Close waits for the queue.
func (c *LeasedCounter) RemoveCall(ctx context.Context, user ecoid.ID, period time.Time) error {
	k := periodKey{user, PeriodStart(period)}
	if v, ok := c.pending.Load(k); ok {
		p := v.(*pendingCalls)
		for n := p.n.Load(); n > 0; n = p.n.Load() {
			if p.n.CompareAndSwap(n, n-1) {
				return nil
			}
		}
	}
	if v, ok := c.leases.Load(k); ok && !c.closed.Load() {
		l := v.(*lease)
		l.mu.Lock()
		if l.limit != 0 || l.left > 0 {
			l.left++
			l.refused = 0
			l.expires = c.cfg.Now().UnixNano() + int64(c.cfg.LeaseTTL)
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
	}
	ctx, cancel := c.budget(ctx)
	defer cancel()
	return c.releases.RemoveCall(ctx, user, period) // queued and retried if the store fails
}

// PeriodCalls implements Counter: the store's count, plus the calls this instance has not
// written yet, less those it holds unused.
func (c *LeasedCounter) PeriodCalls(ctx context.Context, user ecoid.ID, period time.Time) (int64, error) {
	n, err := c.store.PeriodCalls(ctx, user, period)
	if err != nil {
		return 0, err
	}
	k := periodKey{user, PeriodStart(period)}
	if v, ok := c.pending.Load(k); ok {
		n += v.(*pendingCalls).n.Load()
	}
	if v, ok := c.leases.Load(k); ok {
		l := v.(*lease)
		l.mu.Lock()
		n -= l.left
		l.mu.Unlock()
	}
	return max(0, n), nil
}

// Drop gives back user's unused calls at once and forgets a remembered refusal, so the
// next call asks the store: call it when the user's plan changed (a fanout.PlanChanged
// event), or for every user with an empty user (a fanout.Gap).
func (c *LeasedCounter) Drop(user ecoid.ID) {
	c.leases.Range(func(key, v any) bool {
		k, l := key.(periodKey), v.(*lease)
		if user != "" && k.user != user {
			return true
		}
		l.mu.Lock()
		n := l.detach()
		l.refused, l.block = 0, 1
		l.mu.Unlock()
		c.returnCalls(k, n)
		return true
	})
}

func (c *LeasedCounter) leaseFor(k periodKey) *lease {
	if v, ok := c.leases.Load(k); ok {
		return v.(*lease)
	}
	v, _ := c.leases.LoadOrStore(k, &lease{block: 1})
	return v.(*lease)
}

func (c *LeasedCounter) pendingFor(k periodKey) *pendingCalls {
	if v, ok := c.pending.Load(k); ok {
		return v.(*pendingCalls)
	}
	v, _ := c.pending.LoadOrStore(k, &pendingCalls{})
	return v.(*pendingCalls)
}

// flushUser writes k's pending calls now, if there are any.
func (c *LeasedCounter) flushUser(ctx context.Context, k periodKey) error {
	v, ok := c.pending.Load(k)
	if !ok || v.(*pendingCalls).n.Load() == 0 {
		return nil
	}
	ctx, cancel := c.budget(ctx)
	defer cancel()
	return c.flushOne(ctx, k, v.(*pendingCalls))
}

// budget returns ctx with the configured Budget, if any.
func (c *LeasedCounter) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.Budget > 0 {
		return context.WithTimeout(ctx, c.cfg.Budget)
	}
	return ctx, func() {}
}

func (c *LeasedCounter) flushOne(ctx context.Context, k periodKey, p *pendingCalls) error {
	n := p.n.Swap(0)
	if n <= 0 {
		return nil
	}
	_, count, err := c.store.TakeCalls(ctx, k.user, k.period, n, -1, false)
	if err != nil {
		p.n.Add(n) // counted again at the next flush
		return fmt.Errorf("usage: leased counter flush: %w", err)
	}
	p.count.Store(count)
	return nil
}

// Flush writes every pending call and returns every unused lease now. Close calls it.
func (c *LeasedCounter) Flush(ctx context.Context) error {
	var errs []error
	c.pending.Range(func(key, v any) bool {
		if err := c.flushOne(ctx, key.(periodKey), v.(*pendingCalls)); err != nil {
			errs = append(errs, err)
		}
		return true
	})
	c.Drop("")
	return errors.Join(errs...)
}

// background returns idle leases and writes pending calls every FlushInterval.
func (c *LeasedCounter) background() {
	defer close(c.done)
	tick := time.NewTicker(c.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		c.sweep()
	}
}

// sweep writes pending calls, returns the unused calls of leases idle for LeaseTTL, and
// forgets users idle for much longer, so memory follows the active users.
func (c *LeasedCounter) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), max(10*c.cfg.FlushInterval, time.Second))
	defer cancel()
	if b, ok := c.store.(CallBatcher); ok {
		c.flushBatch(ctx, b)
	}
	c.pending.Range(func(key, v any) bool {
		k, p := key.(periodKey), v.(*pendingCalls)
		if p.n.Load() == 0 {
			if p.idle++; p.idle > 600 {
				c.pending.CompareAndDelete(k, p)
			}
			return true
		}
		p.idle = 0
		if err := c.flushOne(ctx, k, p); err != nil {
			c.cfg.Logger.Warn("usage: writing counted calls failed; retrying", "user", k.user, "err", err)
		}
		return true
	})
	now := c.cfg.Now().UnixNano()
	c.leases.Range(func(key, v any) bool {
		k, l := key.(periodKey), v.(*lease)
		l.mu.Lock()
		var n int64
		if l.left > 0 && now >= l.expires && l.taking == nil {
			n = l.detach()
		}
		idle := l.taking == nil && l.left == 0 && now >= l.refused && now-l.expires > int64(60*c.cfg.LeaseTTL)
		l.mu.Unlock()
		c.returnCalls(k, n)
		if idle {
			c.leases.CompareAndDelete(k, l)
		}
		return true
	})
}

// flushBatch writes every pending call in one AddCalls; on failure the calls are counted
// again and the per-user flush of the same sweep retries them.
func (c *LeasedCounter) flushBatch(ctx context.Context, b CallBatcher) {
	var batch []PendingCalls
	var from []*pendingCalls
	c.pending.Range(func(key, v any) bool {
		k, p := key.(periodKey), v.(*pendingCalls)
		if n := p.n.Swap(0); n > 0 {
			batch = append(batch, PendingCalls{User: k.user, Period: k.period, Calls: n})
			from = append(from, p)
		}
		return true
	})
	if len(batch) == 0 {
		return
	}
	if err := b.AddCalls(ctx, batch); err != nil {
		c.cfg.Logger.Warn("usage: writing counted calls failed; retrying", "users", len(batch), "err", err)
		for i, p := range from {
			p.n.Add(batch[i].Calls)
		}
		return
	}
	for i, p := range from {
		p.count.Add(batch[i].Calls) // this instance's view; the store's count is not read back
	}
}

// Close stops the background goroutine, then writes every pending call and returns every
// unused lease within ctx. AddCall fails with ErrCounterClosed afterwards; RemoveCall and
// PeriodCalls still work (on the store).
func (c *LeasedCounter) Close(ctx context.Context) error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.stop)
		<-c.done
		err = c.Flush(ctx)
		if werr := c.releases.Wait(ctx); werr != nil {
			st := c.releases.Stats()
			err = errors.Join(err, fmt.Errorf("usage: %d quota releases not applied: %w", st.Pending, werr))
		}
	})
	return err
}
