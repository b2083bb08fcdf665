package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Config tunes a Tracker. The zero value of every field means its documented default.
type Config struct {
	// BatchSize is how many waiting records start a write at once, without waiting for
	// FlushInterval. Default 100.
	BatchSize int
	// MaxBatchSize is the most records one WriteBatch call carries. When more than
	// BatchSize records wait (a burst, or a store that was failing and recovered), one
	// write takes up to this many, which keeps throughput up: per-statement overhead is
	// paid once per batch. Default 10 × BatchSize; raised to BatchSize when smaller.
	MaxBatchSize int
	// FlushInterval is how often a partial batch is written. Default 5s.
	FlushInterval time.Duration
	// BufferSize is how many accepted records not yet stored the tracker holds, those
	// being written included: while they wait for a batch and while the store is failing.
	// Track drops (and counts) what does not fit. Default 10,000; it is raised to
	// BatchSize when smaller.
	BufferSize int
	// MinBackoff and MaxBackoff bound the wait before a batch is sent again after a
	// retriable error: it doubles from MinBackoff up to MaxBackoff, and each wait is
	// jittered to between half and all of it. Defaults 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// WriteTimeout bounds each WriteBatch call; a timeout is retried. Default 30s.
	WriteTimeout time.Duration
	// ProbeInterval is how often, while a batch waits out its backoff, the tracker asks a
	// Writer that is also a Pinger whether the store answers again; as soon as it does,
	// the wait is cut short and the batch is sent at once, so a recovered store gets the
	// backlog within about ProbeInterval instead of up to MaxBackoff later. One Ping per
	// interval at most, each bounded by ProbeInterval (at least 1 s). Default 250ms.
	ProbeInterval time.Duration
	// IsRetriable decides which store errors are transient. Default: IsRetriable.
	IsRetriable func(error) bool
	// OnDrop, when set, is called by Track for every record it refuses (the buffer is
	// full or the tracker is closed), in the caller's goroutine: it must be cheap and
	// must not block (increment a metric). Stats().Dropped counts the same records.
	OnDrop func(r *Record)
	// DropLogInterval is the least time between two log lines about dropped records:
	// the first drop is logged at once (Error), later ones are summed into the next line.
	// Default 10s.
	DropLogInterval time.Duration
	// Logger receives retries (Warn), drops and rejected records (Error). Default:
	// discard.
	Logger *slog.Logger
	// After, when set, replaces time.After for the backoff waits and probes (for tests
	// with a fake clock).
	After func(d time.Duration) <-chan time.Time
	// Now stamps records tracked with a zero Time. Default: time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 5 * time.Second
	}
	if c.MaxBatchSize <= 0 {
		c.MaxBatchSize = 10 * c.BatchSize
	}
	if c.MaxBatchSize < c.BatchSize {
		c.MaxBatchSize = c.BatchSize
	}
	if c.BufferSize <= 0 {
		c.BufferSize = 10_000
	}
	if c.BufferSize < c.BatchSize {
		c.BufferSize = c.BatchSize
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = 250 * time.Millisecond
	}
	if c.DropLogInterval <= 0 {
		c.DropLogInterval = 10 * time.Second
	}
	if c.IsRetriable == nil {
		c.IsRetriable = IsRetriable
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Stats counts what a Tracker did with the records it was given. Accepted always equals
// Flushed + Rejected + Pending. The counters only grow (Pending aside), so a metrics
// system can export them as counters (and Pending as a gauge).
type Stats struct {
	Accepted uint64 // records Track took into the buffer
	Flushed  uint64 // records the store acknowledged
	Retried  uint64 // WriteBatch calls repeated after a retriable error
	Dropped  uint64 // records Track refused: the buffer was full, or the tracker closed
	Rejected uint64 // records the store refused for their content (each found by splitting its batch)
	Pending  uint64 // accepted records neither stored nor rejected yet
	Probes   uint64 // Pings sent while waiting out a backoff
}

// Pinger is a Writer that can tell cheaply whether its store answers (a database ping).
// The Tracker uses it to end a backoff as soon as the store is back.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ErrClosed is returned by Flush on a closed Tracker.
var ErrClosed = errors.New("usage: tracker closed")

// Tracker writes records to a Writer in batches from one background goroutine. Track
// never blocks and does not allocate; store failures are retried with backoff and jitter
// while the bounded buffer holds the records. Delivery is at least once and, because
// stores ignore IDs they hold, rows are stored exactly once. Close must be called to
// stop the goroutine. A Tracker is safe for concurrent use.
type Tracker struct {
	w   Writer
	cfg Config

	// The bounded buffer is two slices of capacity BufferSize: Track appends to cur; the
	// goroutine swaps cur for the empty spare and writes what it took, so neither holds
	// the lock for long (at most a copy of fewer than BatchSize records). held counts the taken records not yet
	// stored or rejected; len(cur)+held never exceeds BufferSize.
	mu       sync.Mutex
	cur      []Record
	held     int
	closed   bool
	accepted uint64
	dropped  uint64
	spare    []Record // the goroutine's own

	flushed  atomic.Uint64
	retried  atomic.Uint64
	rejected atomic.Uint64
	probes   atomic.Uint64

	// Drop logging: the first drop logs at once, later ones wait for nextDropLog.
	nextDropLog  atomic.Int64 // Unix nanoseconds
	droppedSince atomic.Uint64

	wake      chan struct{}      // a full batch is waiting
	flushReq  chan chan struct{} // Flush asks for everything
	stop      chan struct{}      // closed by Close: write what is left, then exit
	runCtx    context.Context    // ends when Close's ctx ends
	cancelRun context.CancelFunc
	done      chan struct{} // closed when the goroutine has exited
	closeOnce sync.Once
}

// NewTracker starts a Tracker that writes to w. Call Close to flush and stop it.
func NewTracker(w Writer, cfg Config) *Tracker {
	cfg = cfg.withDefaults()
	runCtx, cancel := context.WithCancel(context.Background())
	t := &Tracker{
		w:         w,
		cfg:       cfg,
		cur:       make([]Record, 0, cfg.BufferSize),
		spare:     make([]Record, 0, cfg.BufferSize),
		wake:      make(chan struct{}, 1),
		flushReq:  make(chan chan struct{}),
		stop:      make(chan struct{}),
		runCtx:    runCtx,
		cancelRun: cancel,
		done:      make(chan struct{}),
	}
	go t.run()
	return t
}

// Track hands r to the tracker and reports whether it was accepted. It never blocks and
// does not allocate. It returns false, and counts the record in Stats.Dropped, when the
// buffer is full or the tracker is closed. A record without an ID gets one (an EcoID of
// type ecoid.Usage stamped with its Time) before its first write, so retries keep it.
func (t *Tracker) Track(r Record) bool {
	t.mu.Lock()
	if t.closed || len(t.cur)+t.held >= t.cfg.BufferSize {
		t.dropped++
		closed := t.closed
		t.mu.Unlock()
		refused := r // only a refused record escapes (OnDrop takes a pointer): r stays on the stack
		t.drop(&refused, closed)
		return false
	}
	t.cur = append(t.cur, r) // within capacity: no allocation
	t.accepted++
	full := len(t.cur) == t.cfg.BatchSize
	t.mu.Unlock()
	if full {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// drop reports a refused record: to OnDrop, and to the log at most once per
// DropLogInterval (the first drop at once).
func (t *Tracker) drop(r *Record, closed bool) {
	if t.cfg.OnDrop != nil {
		t.cfg.OnDrop(r)
	}
	n := t.droppedSince.Add(1)
	next := t.nextDropLog.Load()
	now := time.Now().UnixNano()
	if now < next || !t.nextDropLog.CompareAndSwap(next, now+int64(t.cfg.DropLogInterval)) {
		return
	}
	n = t.droppedSince.Swap(0)
	why := "the buffer is full (the store is slow or down)"
	if closed {
		why = "the tracker is closed"
	}
	t.mu.Lock()
	total, pending := t.dropped, len(t.cur)+t.held
	t.mu.Unlock()
	t.cfg.Logger.Error("usage: dropping records: "+why, "dropped", n, "dropped_total", total,
		"pending", pending, "buffer", t.cfg.BufferSize)
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	accepted, dropped := t.accepted, t.dropped
	flushed, rejected := t.flushed.Load(), t.rejected.Load()
	t.mu.Unlock()
	return Stats{
		Accepted: accepted,
		Flushed:  flushed,
		Retried:  t.retried.Load(),
		Dropped:  dropped,
		Rejected: rejected,
		Pending:  accepted - flushed - rejected,
		Probes:   t.probes.Load(),
	}
}

// Flush writes every record accepted before the call and returns when they are stored or
// rejected, or with ctx's error when ctx ends first (the records stay queued), or
// ErrClosed when the tracker is closed.
func (t *Tracker) Flush(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case t.flushReq <- reply:
	case <-t.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("usage: flush: %w", ctx.Err())
	}
	select {
	case <-reply:
		return nil
	case <-t.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("usage: flush: %w", ctx.Err())
	}
}

// Close stops accepting records and keeps writing, retrying retriable errors, until every
// accepted record is stored or rejected, or until ctx ends. It then stops the background
// goroutine and returns nil, or an error saying how many accepted records were not stored
// (wrapping ctx's error). A batch whose write was cut short by ctx counts as not stored
// even if the store committed it. Calling Close again waits for the first call and
// reports the records still not stored. When a store call ignores its context, Close
// returns without waiting for it; the goroutine then exits as soon as the call returns.
func (t *Tracker) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		close(t.stop)
	})
	stopAfter := context.AfterFunc(ctx, t.cancelRun)
	defer stopAfter()
	select {
	case <-t.done:
	case <-ctx.Done():
		// The goroutine stops at its next step; a store call that ignores its context
		// may hold it longer, and Close does not wait for that beyond a short grace.
		timer := time.NewTimer(closeGrace)
		select {
		case <-t.done:
		case <-timer.C:
		}
		timer.Stop()
	}
	if s := t.Stats(); s.Pending > 0 {
		err := ctx.Err()
		if err == nil {
			err = context.Canceled
		}
		return fmt.Errorf("usage: close: %d of %d accepted records not stored: %w", s.Pending, s.Accepted, err)
	}
	return nil
}

// closeGrace is how long Close waits, after its context ended, for the goroutine to
// notice.
const closeGrace = 100 * time.Millisecond

// run is the background goroutine.
func (t *Tracker) run() {
	defer close(t.done)
	ticker := time.NewTicker(t.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-t.wake:
			if t.flush(false) {
				return
			}
		case <-ticker.C:
			if t.flush(true) {
				return
			}
		case reply := <-t.flushReq:
			aborted := t.flush(true)
			close(reply)
			if aborted {
				return
			}
		case <-t.stop:
			t.flush(true)
			return
		}
	}
}

// flush takes the waiting records and writes them, while at least BatchSize wait, or
// until none wait when all is true. It reports whether it stopped because Close's ctx
// ended.
func (t *Tracker) flush(all bool) (aborted bool) {
	for {
		t.mu.Lock()
		if len(t.cur) == 0 || (!all && len(t.cur) < t.cfg.BatchSize) {
			t.mu.Unlock()
			return false
		}
		// Take everything, or only whole batches: the tail (fewer than BatchSize
		// records) is copied into the new buffer and waits for more.
		old, k := t.cur, len(t.cur)
		if !all {
			k -= k % t.cfg.BatchSize
		}
		t.cur = append(t.spare[:0], old[k:]...)
		t.held = k
		t.mu.Unlock()

		aborted := t.writeAll(old[:k])
		clear(old) // let the strings go
		t.spare = old[:0]
		if aborted {
			return true
		}
	}
}

// writeAll writes taken in batches of at most MaxBatchSize, giving each record without
// an ID or time its own first.
func (t *Tracker) writeAll(taken []Record) (aborted bool) {
	for len(taken) > 0 {
		batch := taken[:min(len(taken), t.cfg.MaxBatchSize)]
		taken = taken[len(batch):]
		for i := range batch {
			if batch[i].Time.IsZero() {
				batch[i].Time = t.cfg.Now()
			}
			if batch[i].ID == "" {
				batch[i].ID = ecoid.NewAt(ecoid.Usage, batch[i].Time)
			}
		}
		if t.write(batch) {
			return true
		}
		t.mu.Lock()
		t.held -= len(batch)
		t.mu.Unlock()
	}
	return false
}

// write stores batch, retrying retriable errors with backoff and splitting the batch in
// two on any other error until the records the store refuses are isolated and dropped.
// It reports whether it gave up because Close's ctx ended.
func (t *Tracker) write(batch []Record) (aborted bool) {
	backoff := t.cfg.MinBackoff
	for {
		if t.runCtx.Err() != nil {
			return true
		}
		ctx, cancel := context.WithTimeout(t.runCtx, t.cfg.WriteTimeout)
		err := t.w.WriteBatch(ctx, batch)
		cancel()
		switch {
		case err == nil:
			t.flushed.Add(uint64(len(batch)))
			return false
		case t.runCtx.Err() != nil:
			return true
		case t.cfg.IsRetriable(err):
			t.retried.Add(1)
			wait := backoff/2 + rand.N(backoff/2+1)
			t.cfg.Logger.Warn("usage: store failed; retrying", "records", len(batch), "wait", wait, "err", err)
			back, ok := t.wait(wait)
			if !ok {
				return true
			}
			if back {
				backoff = t.cfg.MinBackoff
			} else {
				backoff = min(backoff*2, t.cfg.MaxBackoff)
			}
		case len(batch) == 1:
			t.rejected.Add(1)
			t.cfg.Logger.Error("usage: store refused a record; dropping it", "id", batch[0].ID, "err", err)
			return false
		default:
			mid := len(batch) / 2
			if t.write(batch[:mid]) {
				return true
			}
			return t.write(batch[mid:])
		}
	}
}

// wait waits out a backoff of d. When the Writer is a Pinger it pings the store every
// ProbeInterval meanwhile and returns early, with back true, once a ping succeeds. ok is
// false when Close's ctx ended first.
func (t *Tracker) wait(d time.Duration) (back, ok bool) {
	p, probing := t.w.(Pinger)
	for d > 0 {
		step := d
		if probing {
			step = min(d, t.cfg.ProbeInterval)
		}
		if !t.sleep(step) {
			return false, false
		}
		d -= step
		if probing && d > 0 {
			t.probes.Add(1)
			ctx, cancel := context.WithTimeout(t.runCtx, max(t.cfg.ProbeInterval, time.Second))
			err := p.Ping(ctx)
			cancel()
			if err == nil {
				return true, true
			}
		}
	}
	return false, true
}

// sleep waits for d and reports false when Close's ctx ended first.
func (t *Tracker) sleep(d time.Duration) bool {
	if t.cfg.After != nil {
		select {
		case <-t.cfg.After(d):
			return true
		case <-t.runCtx.Done():
			return false
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.runCtx.Done():
		return false
	}
}
