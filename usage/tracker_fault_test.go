package usage_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/usage"
)

// virtualClock is a fake clock for the tracker's waits: each wait moves it forward at
// once, so a test counts waits instead of measuring them.
type virtualClock struct {
	mu  sync.Mutex
	now time.Duration
}

func (c *virtualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now += d
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

func (c *virtualClock) elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// outageStore is down until the virtual clock reaches up, for writes and pings alike.
type outageStore struct {
	clock         *virtualClock
	up            time.Duration
	ping          bool
	mu            sync.Mutex
	writes, pings int
	storedAt      time.Duration
	stored        int
}

func (s *outageStore) WriteBatch(_ context.Context, batch []usage.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.clock.elapsed() < s.up {
		return usage.Retriable(errors.New("connection refused"))
	}
	if s.stored == 0 {
		s.storedAt = s.clock.elapsed()
	}
	s.stored += len(batch)
	return nil
}

type pingingOutageStore struct{ *outageStore }

func (s pingingOutageStore) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pings++
	if s.clock.elapsed() < s.up {
		return errors.New("connection refused")
	}
	return nil
}

func runOutage(t *testing.T, ping bool) *outageStore {
	t.Helper()
	clock := &virtualClock{}
	st := &outageStore{clock: clock, up: 15 * time.Second}
	var w usage.Writer = st
	if ping {
		w = pingingOutageStore{st}
	}
	tr := usage.NewTracker(w, usage.Config{BatchSize: 10, MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second,
		ProbeInterval: 250 * time.Millisecond, After: clock.After})
	for i := range 10 {
		tr.Track(rec(i))
	}
	closeNow(t, tr)
	if st.stored != 10 {
		t.Fatalf("stored %d of 10 records", st.stored)
	}
	return st
}

// A store that comes back gets the backlog within one probe interval, not up to a
// whole MaxBackoff later; probes are bounded to one per interval.
func TestTrackerResumesWithinAProbeOfRecovery(t *testing.T) {
	st := runOutage(t, true)
	t.Logf("with probes: stored %v after recovery, %d pings, %d writes", st.storedAt-st.up, st.pings, st.writes)
	if late := st.storedAt - st.up; late > 250*time.Millisecond {
		t.Fatalf("the batch was stored %v after the store recovered; want within one 250ms probe", late)
	}
	if max := int(st.up/(250*time.Millisecond)) + 2; st.pings > max {
		t.Fatalf("%d pings during a 15 s outage; want at most %d (one per probe interval)", st.pings, max)
	}
	if st.writes > 12 {
		t.Fatalf("%d writes during the outage: the backoff was not kept", st.writes)
	}
}

// Without a Pinger the backoff runs its course (the old behaviour this fixes).
func TestTrackerWithoutPingWaitsOutTheBackoff(t *testing.T) {
	st := runOutage(t, false)
	t.Logf("without probes the batch was stored %v after recovery", st.storedAt-st.up)
	if st.storedAt < st.up {
		t.Fatalf("stored before the store was up")
	}
}

// logRecorder is a slog handler that keeps the messages it is given.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if len(m) >= len(prefix) && m[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

// blockingWriter holds every write until release is closed.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) WriteBatch(ctx context.Context, _ []usage.Record) error {
	select {
	case <-w.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The first dropped record is logged at once and reported to OnDrop; later drops are
// summed, not logged one by one.
func TestTrackerDropsAreVisibleAtOnce(t *testing.T) {
	logs := &logRecorder{}
	var mu sync.Mutex
	onDrop := 0
	w := blockingWriter{release: make(chan struct{})}
	tr := usage.NewTracker(w, usage.Config{BatchSize: 10, BufferSize: 10, DropLogInterval: time.Hour,
		Logger: slog.New(logs), OnDrop: func(*usage.Record) { mu.Lock(); onDrop++; mu.Unlock() }})
	for i := range 10 {
		if !tr.Track(rec(i)) {
			t.Fatalf("record %d refused with room in the buffer", i)
		}
	}
	if tr.Track(rec(10)) {
		t.Fatal("a record beyond the buffer was accepted")
	}
	if n := logs.count("usage: dropping records"); n != 1 {
		t.Fatalf("after the first drop: %d log lines, want 1 at once", n)
	}
	for i := range 100 {
		tr.Track(rec(11 + i))
	}
	if n := logs.count("usage: dropping records"); n != 1 {
		t.Fatalf("after 101 drops: %d log lines, want still 1 (rate-limited)", n)
	}
	mu.Lock()
	if onDrop != 101 {
		t.Fatalf("OnDrop saw %d drops, want 101", onDrop)
	}
	mu.Unlock()
	if s := tr.Stats(); s.Dropped != 101 || s.Accepted != 10 {
		t.Fatalf("stats %+v", s)
	}
	close(w.release)
	closeNow(t, tr)
}
