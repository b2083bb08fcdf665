package usage

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// ReleaseRetryConfig tunes RetryReleases. The zero value of every field means its
// documented default.
type ReleaseRetryConfig struct {
	// MinBackoff and MaxBackoff bound the wait between retries: it doubles from
	// MinBackoff up to MaxBackoff while the counter fails. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds each retried RemoveCall. Default 2s.
	Timeout time.Duration
	// MaxPending is how many failed releases are held for retry; beyond it a release is
	// lost (counted in Lost and logged). Default 100,000.
	MaxPending int
	// Logger receives queued (Warn) and lost (Error) releases. Default: discard.
	Logger *slog.Logger
	// After, when set, replaces time.After for the waits (for tests).
	After func(d time.Duration) <-chan time.Time
}

// ReleaseStats counts what a ReleaseRetrier did with failed releases.
type ReleaseStats struct {
	Queued  uint64 // releases that failed and were queued for retry
	Retried uint64 // retried RemoveCall calls
	Done    uint64 // queued releases applied
	Lost    uint64 // releases refused because the queue was full
	Pending int    // queued releases not applied yet
}

// ReleaseRetrier is a Counter whose RemoveCall never leaks a release: when the wrapped
// counter fails (the store is down), the release is queued and retried in the background,
// with backoff, until the counter takes it. Its other methods pass through. A release
// whose failure was an answer lost after the store applied it may be applied twice (one
// call under-counted): the cheaper error for a customer than a call charged for a request
// that was refused. It is safe for concurrent use; its goroutine runs only while
// releases are queued.
type ReleaseRetrier struct {
	Counter
	cfg ReleaseRetryConfig

	mu       sync.Mutex
	pending  []release
	inflight int // taken by the goroutine, not applied yet
	running  bool
	idle     chan struct{} // closed when the queue empties; replaced when it fills again

	queued, retried, done, lost atomic.Uint64
}

type release struct {
	user   ecoid.ID
	period time.Time
}

// RetryReleases returns a ReleaseRetrier over c.
func RetryReleases(c Counter, cfg ReleaseRetryConfig) *ReleaseRetrier {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 100_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	idle := make(chan struct{})
	close(idle)
	return &ReleaseRetrier{Counter: c, cfg: cfg, idle: idle}
}

// RemoveCall implements Counter: it takes the call back at once when the wrapped counter
// answers, and otherwise queues the release for retry and returns nil (the release is
// then the retrier's to apply). It returns an error only when the queue is full.
func (r *ReleaseRetrier) RemoveCall(ctx context.Context, user ecoid.ID, period time.Time) error {
	err := r.Counter.RemoveCall(ctx, user, period)
	if err == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending)+r.inflight >= r.cfg.MaxPending {
		r.lost.Add(1)
		r.cfg.Logger.Error("usage: quota release lost: the retry queue is full", "user", user, "err", err)
		return err
	}
	r.pending = append(r.pending, release{user, PeriodStart(period)})
	r.queued.Add(1)
	r.cfg.Logger.Warn("usage: quota release failed; retrying in the background", "user", user, "pending", len(r.pending), "err", err)
	if !r.running {
		r.running = true
		r.idle = make(chan struct{})
		go r.retry()
	}
	return nil
}

// retry applies the queued releases until none is left.
func (r *ReleaseRetrier) retry() {
	backoff := r.cfg.MinBackoff
	for {
		<-r.cfg.After(backoff)
		r.mu.Lock()
		batch := r.pending
		r.pending, r.inflight = nil, len(batch)
		r.mu.Unlock()
		failed := 0
		for i, rel := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
			err := r.Counter.RemoveCall(ctx, rel.user, rel.period)
			cancel()
			r.retried.Add(1)
			if err != nil {
				failed = len(batch) - i
				break
			}
			r.done.Add(1)
		}
		r.mu.Lock()
		r.inflight = 0
		if failed > 0 {
			r.pending = append(batch[len(batch)-failed:], r.pending...)
			backoff = min(backoff*2, r.cfg.MaxBackoff)
		} else {
			backoff = r.cfg.MinBackoff
		}
		if len(r.pending) == 0 {
			r.running = false
			close(r.idle)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// Stats returns the retrier's counters.
func (r *ReleaseRetrier) Stats() ReleaseStats {
	r.mu.Lock()
	n := len(r.pending) + r.inflight
	r.mu.Unlock()
	return ReleaseStats{Queued: r.queued.Load(), Retried: r.retried.Load(), Done: r.done.Load(), Lost: r.lost.Load(), Pending: n}
}

// Wait returns when no release is queued, or with ctx's error when ctx ends first (at
// shutdown, to give queued releases a last chance).
func (r *ReleaseRetrier) Wait(ctx context.Context) error {
	r.mu.Lock()
	idle := r.idle
	r.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
