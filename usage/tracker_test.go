package usage_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

// fakeWriter is a usage.Writer whose behaviour each test chooses. It keeps every record
// it stored, by ID, and counts the writes of an ID that it already held.
type fakeWriter struct {
	mu      sync.Mutex
	rows    map[ecoid.ID]usage.Record
	dupes   int
	calls   int
	before  func(call int, batch []usage.Record) error // runs before storing; an error refuses the batch
	after   func(call int, batch []usage.Record) error // runs after storing; an error loses the answer
	entered chan int                                   // receives each batch size when not nil
}

func newFakeWriter() *fakeWriter { return &fakeWriter{rows: map[ecoid.ID]usage.Record{}} }

func (f *fakeWriter) WriteBatch(ctx context.Context, batch []usage.Record) error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	before, after := f.before, f.after
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- len(batch)
	}
	if before != nil {
		if err := before(call, batch); err != nil {
			return err
		}
	}
	f.mu.Lock()
	for _, r := range batch {
		if _, ok := f.rows[r.ID]; ok {
			f.dupes++
			continue
		}
		f.rows[r.ID] = r
	}
	f.mu.Unlock()
	if after != nil {
		return after(call, batch)
	}
	return nil
}

func (f *fakeWriter) stored() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rows)
}

var testUser = ecoid.MustParse("eco_usr_0Ub2cYzA9fKq3XwT7mNpLs")

func rec(i int) usage.Record {
	return usage.Record{
		UserID:   testUser,
		Endpoint: fmt.Sprintf("/r/%d", i%7),
		Method:   "GET",
		Status:   200,
		Latency:  time.Duration(i) * time.Microsecond,
		Bytes:    int64(i),
		Time:     time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
	}
}

func closeNow(t *testing.T, tr *usage.Tracker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// checkNoLeak fails the test when goroutines started during it outlive it.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestTrackerManyGoroutinesLoseNothing(t *testing.T) {
	checkNoLeak(t)
	store := memory.NewUsageStore()
	const workers, each = 64, 500
	tr := usage.NewTracker(store, usage.Config{BufferSize: workers * each, FlushInterval: time.Hour})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if !tr.Track(rec(w*each + i)) {
					t.Error("Track refused a record with room in the buffer")
					return
				}
			}
		}()
	}
	wg.Wait()
	closeNow(t, tr)
	s := tr.Stats()
	want := uint64(workers * each)
	if s.Accepted != want || s.Flushed != want || s.Dropped != 0 || s.Rejected != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v, want %d accepted and flushed", s, want)
	}
	n, err := store.TotalCalls(context.Background(), time.Time{}, time.Now().AddDate(10, 0, 0))
	if err != nil || n != int64(want) {
		t.Fatalf("store holds %d rows (%v), want %d", n, err, want)
	}
}

func TestTrackerBatchesAtBatchSize(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	w.entered = make(chan int, 10)
	tr := usage.NewTracker(w, usage.Config{BatchSize: 10, MaxBatchSize: 10, FlushInterval: time.Hour})
	for i := range 25 {
		tr.Track(rec(i))
	}
	for range 2 {
		select {
		case n := <-w.entered:
			if n != 10 {
				t.Fatalf("a full batch carried %d records, want 10", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("full batches were not written")
		}
	}
	closeNow(t, tr) // the 5 left over go with Close
	if n := <-w.entered; n != 5 {
		t.Fatalf("the last batch carried %d records, want 5", n)
	}
	if w.stored() != 25 {
		t.Fatalf("stored %d, want 25", w.stored())
	}
}

func TestTrackerFlushesOnInterval(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	tr := usage.NewTracker(w, usage.Config{FlushInterval: 20 * time.Millisecond})
	defer closeNow(t, tr)
	for i := range 5 {
		tr.Track(rec(i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for tr.Stats().Flushed != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("partial batch not flushed on the interval: %+v", tr.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTrackerFlush(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	now := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	tr := usage.NewTracker(w, usage.Config{FlushInterval: time.Hour, Now: func() time.Time { return now }})
	r := rec(1)
	r.Time = time.Time{}
	tr.Track(r)
	given := rec(2)
	given.ID = ecoid.New(ecoid.Usage)
	tr.Track(given)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := tr.Stats(); s.Flushed != 2 || s.Pending != 0 {
		t.Fatalf("after Flush: %+v", s)
	}
	w.mu.Lock()
	for id, got := range w.rows {
		if id.Type() != ecoid.Usage {
			t.Errorf("assigned ID %q is not of type use", id)
		}
		if got.Endpoint == r.Endpoint && (!got.Time.Equal(now) || !id.Time().Equal(now)) {
			t.Errorf("a record without a time was stamped %v (ID %v), want %v", got.Time, id.Time(), now)
		}
	}
	_, kept := w.rows[given.ID]
	w.mu.Unlock()
	if !kept {
		t.Error("a record's own ID was replaced")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Flush(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a cancelled context: %v", err)
	}
	closeNow(t, tr)
	if err := tr.Flush(context.Background()); !errors.Is(err, usage.ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if tr.Track(rec(3)) {
		t.Fatal("Track after Close accepted a record")
	}
	if s := tr.Stats(); s.Dropped != 1 {
		t.Fatalf("Track after Close not counted as dropped: %+v", s)
	}
	closeNow(t, tr) // a second Close is fine
}

func TestTrackerRetriesUntilStoreRecovers(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	var failing atomic.Bool
	failing.Store(true)
	var lostAnswers atomic.Int32
	// While failing, half the calls fail before storing (connection refused) and half
	// store the rows and then lose the answer (a commit whose reply never came).
	w.before = func(call int, _ []usage.Record) error {
		if failing.Load() && call%2 == 0 {
			return usage.Retriable(errors.New("connection refused"))
		}
		return nil
	}
	w.after = func(call int, _ []usage.Record) error {
		if failing.Load() && call%2 == 1 {
			lostAnswers.Add(1)
			return fmt.Errorf("reply lost: %w", context.DeadlineExceeded)
		}
		return nil
	}
	tr := usage.NewTracker(w, usage.Config{BatchSize: 10, FlushInterval: 5 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
	const total = 500
	for i := range total {
		if !tr.Track(rec(i)) {
			t.Fatal("Track refused a record with room in the buffer")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for tr.Stats().Retried < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("no retries: %+v", tr.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	failing.Store(false)
	closeNow(t, tr)
	s := tr.Stats()
	if s.Flushed != total || s.Pending != 0 || s.Rejected != 0 || s.Retried < 20 {
		t.Fatalf("stats %+v", s)
	}
	if w.stored() != total {
		t.Fatalf("store holds %d distinct records, want %d", w.stored(), total)
	}
	if lostAnswers.Load() == 0 || w.dupes == 0 {
		t.Fatal("the test did not resend a batch whose answer was lost")
	}
}

func TestTrackerIsolatesRecordsTheStoreRefuses(t *testing.T) {
	checkNoLeak(t)
	store := memory.NewUsageStore()
	tr := usage.NewTracker(store, usage.Config{BatchSize: 100, FlushInterval: time.Hour})
	bad := map[int]bool{3: true, 50: true, 51: true, 99: true}
	for i := range 100 {
		r := rec(i)
		if bad[i] {
			r.Status = 42 // refused by Validate in the store
		}
		tr.Track(r)
	}
	closeNow(t, tr)
	s := tr.Stats()
	if s.Flushed != 96 || s.Rejected != 4 || s.Pending != 0 || s.Retried != 0 {
		t.Fatalf("stats %+v, want 96 flushed and 4 rejected", s)
	}
	if n, _ := store.TotalCalls(context.Background(), time.Time{}, time.Now().AddDate(10, 0, 0)); n != 96 {
		t.Fatalf("store holds %d rows, want 96", n)
	}
}

func TestTrackerCountsOverflowExactly(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	w.entered = make(chan int, 100)
	release := make(chan struct{})
	var once sync.Once
	w.before = func(int, []usage.Record) error {
		<-release
		return nil
	}
	tr := usage.NewTracker(w, usage.Config{BatchSize: 10, BufferSize: 100, FlushInterval: time.Hour})
	defer once.Do(func() { close(release) })
	for i := range 10 {
		tr.Track(rec(i))
	}
	<-w.entered // the worker holds the first batch and is stuck in the store
	accepted, refused := 0, 0
	for i := 10; i < 1010; i++ {
		if tr.Track(rec(i)) {
			accepted++
		} else {
			refused++
		}
	}
	// The buffer holds 100 records, the 10 being written included.
	if accepted != 90 || refused != 910 {
		t.Fatalf("accepted %d, refused %d; want 90 and 910", accepted, refused)
	}
	if s := tr.Stats(); s.Accepted != 100 || s.Dropped != 910 || s.Pending != 100 {
		t.Fatalf("stats %+v", s)
	}
	once.Do(func() { close(release) })
	go func() {
		for range w.entered {
		}
	}()
	closeNow(t, tr)
	close(w.entered)
	if s := tr.Stats(); s.Flushed != 100 || s.Dropped != 910 || w.stored() != 100 {
		t.Fatalf("after Close: %+v, stored %d", s, w.stored())
	}
}

func TestTrackerCloseReportsWhatItCouldNotStore(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	w.before = func(int, []usage.Record) error { return usage.Retriable(errors.New("database is down")) }
	tr := usage.NewTracker(w, usage.Config{BatchSize: 10, FlushInterval: time.Hour,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	for i := range 35 {
		tr.Track(rec(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := tr.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "35 of 35 accepted records not stored") {
		t.Fatalf("Close = %v", err)
	}
	if s := tr.Stats(); s.Pending != 35 || s.Flushed != 0 || s.Retried == 0 {
		t.Fatalf("stats %+v", s)
	}
	if err := tr.Close(context.Background()); err == nil || !strings.Contains(err.Error(), "35 of 35") {
		t.Fatalf("second Close = %v", err)
	}
}

func TestTrackerCloseWithEndedContextWhileStoreBlocks(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	w.before = func(_ int, _ []usage.Record) error { return nil }
	block := make(chan struct{})
	w.entered = make(chan int, 1)
	w.before = func(int, []usage.Record) error { <-block; return nil }
	defer close(block)
	tr := usage.NewTracker(w, usage.Config{BatchSize: 5, FlushInterval: time.Hour})
	for i := range 5 {
		tr.Track(rec(i))
	}
	<-w.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Close(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "5 of 5") {
		t.Fatalf("Close = %v", err)
	}
}

func TestTrackerWriteTimeoutIsRetried(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	w.before = func(call int, _ []usage.Record) error {
		if call == 1 {
			time.Sleep(50 * time.Millisecond) // longer than WriteTimeout
			return context.DeadlineExceeded
		}
		return nil
	}
	tr := usage.NewTracker(w, usage.Config{WriteTimeout: 10 * time.Millisecond, MinBackoff: time.Millisecond})
	tr.Track(rec(1))
	closeNow(t, tr)
	if s := tr.Stats(); s.Flushed != 1 || s.Retried != 1 {
		t.Fatalf("stats %+v", s)
	}
}

type sqlStateError string

func (e sqlStateError) Error() string    { return "pq: " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestIsRetriable(t *testing.T) {
	cases := map[string]struct {
		err  error
		want bool
	}{
		"nil":              {nil, false},
		"plain":            {errors.New("syntax error"), false},
		"marked":           {usage.Retriable(errors.New("x")), true},
		"wrapped sentinel": {fmt.Errorf("store: %w", usage.ErrRetriable), true},
		"deadline":         {fmt.Errorf("q: %w", context.DeadlineExceeded), true},
		"canceled":         {context.Canceled, false},
		"net timeout":      {timeoutError{}, true},
		"invalid record":   {usage.ErrInvalidRecord, false},
		"sqlstate":         {sqlStateError("40001"), false}, // the adapter classifies its codes
	}
	for name, c := range cases {
		if got := usage.IsRetriable(c.err); got != c.want {
			t.Errorf("%s: IsRetriable(%v) = %v, want %v", name, c.err, got, c.want)
		}
	}
	if usage.Retriable(nil) != nil {
		t.Error("Retriable(nil) is not nil")
	}
	inner := errors.New("inner")
	if err := usage.Retriable(inner); !errors.Is(err, inner) || err.Error() != "inner" {
		t.Errorf("Retriable hides its cause: %v", err)
	}
}

// discardWriter stores nothing.
type discardWriter struct{}

func (discardWriter) WriteBatch(context.Context, []usage.Record) error { return nil }

func benchRecord() usage.Record {
	r := rec(1)
	r.ID = ecoid.New(ecoid.Usage)
	return r
}

// BenchmarkTrack measures Track accepting records: the buffer is emptied, outside the
// timer, before it can fill, so no record is dropped.
func BenchmarkTrack(b *testing.B) {
	const room = 1 << 14
	tr := usage.NewTracker(discardWriter{}, usage.Config{BufferSize: room, FlushInterval: time.Hour})
	defer tr.Close(context.Background())
	r := benchRecord()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%room == room-1 {
			b.StopTimer()
			_ = tr.Flush(ctx)
			b.StartTimer()
		}
		tr.Track(r)
	}
	b.StopTimer()
	s := tr.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkTrackParallel has every core track at once while the worker writes; records
// arrive faster than any store takes them, so part of them are dropped (and counted).
func BenchmarkTrackParallel(b *testing.B) {
	tr := usage.NewTracker(discardWriter{}, usage.Config{BufferSize: 1 << 16})
	defer tr.Close(context.Background())
	r := benchRecord()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.Track(r)
		}
	})
	b.StopTimer()
	s := tr.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkTrackFull measures the refusal path: a buffer that is always full.
func BenchmarkTrackFull(b *testing.B) {
	block := make(chan struct{})
	w := newFakeWriter()
	w.before = func(int, []usage.Record) error { <-block; return nil }
	tr := usage.NewTracker(w, usage.Config{BatchSize: 1, BufferSize: 1})
	r := benchRecord()
	for tr.Track(r) {
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tr.Track(r)
	}
	b.StopTimer()
	close(block)
	_ = tr.Close(context.Background())
}

// TestTrackDoesNotAllocate: Track is on every tracked request; its documented promise is
// no allocation for an accepted record.
func TestTrackDoesNotAllocate(t *testing.T) {
	tr := usage.NewTracker(discardWriter{}, usage.Config{BufferSize: 1 << 12, FlushInterval: time.Hour})
	defer tr.Close(context.Background())
	r := benchRecord()
	if n := testing.AllocsPerRun(500, func() { tr.Track(r) }); n != 0 {
		t.Fatalf("Track allocates %v times per accepted record", n)
	}
}
