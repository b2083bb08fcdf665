package memory

import (
	"context"
	"math"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

func usageRecords(user ecoid.ID, start time.Time, n int, step time.Duration) []usage.Record {
	out := make([]usage.Record, n)
	for i := range out {
		at := start.Add(time.Duration(i) * step)
		status := 200
		if i%10 == 0 {
			status = 500
		}
		out[i] = usage.Record{ID: ecoid.NewAt(ecoid.Usage, at), UserID: user, Endpoint: "/api/v1/ping",
			Method: "GET", Status: status, Latency: time.Duration(i%100) * time.Millisecond, Time: at}
	}
	return out
}

// The log is bounded by its row cap while the rollup and the counters stay exact.
func TestUsageLogIsBoundedAndCountsStayExact(t *testing.T) {
	ctx := context.Background()
	s := newUsageStore(1000)
	user := ecoid.New(ecoid.User)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const total = 20_000 // 5 days of one call a 21.6 s
	recs := usageRecords(user, start, total, 5*24*time.Hour/total)
	for i := 0; i < total; i += 100 {
		if err := s.WriteBatch(ctx, recs[i:i+100]); err != nil {
			t.Fatal(err)
		}
		if n, ids := s.rows.rows, s.rows.live; n > s.maxRows || ids > s.maxRows {
			t.Fatalf("after %d records the log holds %d rows and %d IDs, cap %d", i+100, n, ids, s.maxRows)
		}
	}
	hist, err := s.History(ctx, user, start, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range hist {
		if d.Calls != total/5 || d.Errors != total/50 {
			t.Fatalf("history after the log was thinned: %+v", hist)
		}
	}
	if n, _ := s.TotalCalls(ctx, start, start.AddDate(0, 0, 5)); n != total {
		t.Fatalf("TotalCalls = %d, want %d", n, total)
	}
	eps, _ := s.Endpoints(ctx, user, start, start.AddDate(0, 0, 5))
	if len(eps) != 1 || eps[0].Calls != total || eps[0].ErrorRate != 0.1 {
		t.Fatalf("Endpoints = %+v", eps)
	}
	if p := eps[0].P95LatencyMS; p < 94*(1-1.0/16) || p > 94*(1+1.0/16) { // exact: 94.05 ms
		t.Fatalf("estimated p95 %.3f ms, want about 94 ms", p)
	}
}

// Maintain drops the rows older than its retention and registers closed days.
func TestUsageMaintainAppliesRetention(t *testing.T) {
	ctx := context.Background()
	s := NewUsageStore()
	user := ecoid.New(ecoid.User)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := s.WriteBatch(ctx, usageRecords(user, start, 96, time.Hour)); err != nil { // 4 days
		t.Fatal(err)
	}
	now := start.AddDate(0, 0, 4).Add(time.Hour)
	if err := s.Maintain(ctx, now, 49*time.Hour); err != nil {
		t.Fatal(err)
	}
	s.rows.each(func(r *usageRow) {
		if r.at < now.Add(-49*time.Hour).UnixMicro() {
			t.Fatalf("a row of %v survived a 49 h retention at %v", time.UnixMicro(r.at).UTC(), now)
		}
	})
	if s.rows.live != 48 || indexed(&s.rows) != 48 {
		t.Fatalf("log %d rows, %d IDs; want the last 48", s.rows.live, indexed(&s.rows))
	}
	daily, _ := s.Daily(ctx, user, start, now)
	if len(daily) != 4 || daily[0].Calls != 24 {
		t.Fatalf("Daily after retention: %+v", daily)
	}
}

func TestUsageRowIsSmallAndPointerFree(t *testing.T) {
	if n := unsafe.Sizeof(usageRow{}); n > 48 {
		t.Fatalf("a usage row takes %d bytes", n)
	}
}

// BenchmarkUsageMemoryPerRecord reports the heap a stored record costs.
func BenchmarkUsageMemoryPerRecord(b *testing.B) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	recs := usageRecords(user, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 100_000, time.Second)
	var before, after runtime.MemStats
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := NewUsageStore()
		for i := 0; i < len(recs); i += 1000 {
			_ = s.WriteBatch(ctx, recs[i:i+1000])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(recs)), "B/record")
		runtime.KeepAlive(s)
	}
}

// BenchmarkUsageHistory30Days is a 30-day history of a user with 1M logged calls.
func BenchmarkUsageHistory30Days(b *testing.B) {
	ctx := context.Background()
	s := NewUsageStore()
	user := ecoid.New(ecoid.User)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := usageRecords(user, start, 1_000_000, 30*24*time.Hour/1_000_000)
	for i := 0; i < len(recs); i += 1000 {
		_ = s.WriteBatch(ctx, recs[i:i+1000])
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.History(ctx, user, start, 30); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUsageWriteBatch is the store's cost per record as the tracker writes it:
// batches of 100 records of one user and route, into a store already holding many rows.
func BenchmarkUsageWriteBatch(b *testing.B) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	recs := usageRecords(user, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 200_000, time.Millisecond)
	s := NewUsageStore()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i+100 > len(recs) {
			b.StopTimer()
			s, i = NewUsageStore(), 0
			b.StartTimer()
		}
		if err := s.WriteBatch(ctx, recs[i:i+100]); err != nil {
			b.Fatal(err)
		}
		i += 100
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/record")
}

// indexed is the number of IDs the log's chunks index.
func indexed(l *rowLog) int {
	n := 0
	for _, c := range l.chunks {
		n += len(c.ids)
	}
	return n
}

// The duplicate check stays exact across chunks: records written out of time order (late
// and re-sent batches, many records of one millisecond) are skipped exactly when the
// store holds them, before and after rows are dropped.
func TestUsageDuplicateCheckIsExactAcrossChunks(t *testing.T) {
	ctx := context.Background()
	s := newUsageStore(800) // chunks of 100 rows
	user := ecoid.New(ecoid.User)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]usage.Record, 1000)
	for i := range recs { // five records a millisecond, in time order
		at := start.Add(time.Duration(i/5) * time.Millisecond)
		recs[i] = usage.Record{ID: ecoid.NewAt(ecoid.Usage, at), UserID: user, Endpoint: "/e", Method: "GET", Status: 200, Time: at}
	}
	key := func(r usage.Record) *rowID {
		var id rowID
		copy(id[:], r.ID[len(r.ID)-len(id):])
		return &id
	}
	// The first 500 in batches of 50, each batch sent twice (the second time in reverse,
	// with a record repeated inside it), and every fourth batch late, after the next.
	order := []int{50, 0, 100, 200, 150, 250, 300, 400, 350, 450}
	for _, i := range order {
		batch := recs[i : i+50 : i+50]
		if err := s.WriteBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		again := append([]usage.Record{batch[7]}, batch...)
		slices.Reverse(again)
		if err := s.WriteBatch(ctx, again); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.TotalCalls(ctx, start, start.Add(time.Hour)); n != 500 {
		t.Fatalf("TotalCalls = %d after every batch was sent twice, want 500", n)
	}
	if len(s.rows.chunks) != 5 {
		t.Fatalf("%d chunks for 500 rows of 100", len(s.rows.chunks))
	}
	for i, r := range recs {
		if held := s.rows.held(key(r)); held != (i < 500) {
			t.Fatalf("record %d: held %v", i, held)
		}
	}
	// Past the cap the oldest chunks leave, and their IDs with them; a retention drops
	// more, by time.
	if err := s.WriteBatch(ctx, recs[500:]); err != nil {
		t.Fatal(err)
	}
	if s.rows.rows > s.maxRows {
		t.Fatalf("%d rows over the cap of %d", s.rows.rows, s.maxRows)
	}
	if err := s.Maintain(ctx, start.Add(time.Hour), time.Hour-120*time.Millisecond); err != nil {
		t.Fatal(err) // drops the records of the first 120 ms: 0 to 599
	}
	held := 0
	for i, r := range recs {
		ok := s.rows.held(key(r))
		if ok != (i >= 600) {
			t.Fatalf("record %d: held %v after the retention", i, ok)
		}
		if ok {
			held++
		}
	}
	if held != s.rows.live || held != indexed(&s.rows) {
		t.Fatalf("%d IDs held, %d live rows, %d indexed", held, s.rows.live, indexed(&s.rows))
	}
	if err := s.WriteBatch(ctx, recs); err != nil { // everything sent again
		t.Fatal(err)
	}
	if n, _ := s.TotalCalls(ctx, start, start.Add(time.Hour)); n != 1000+600 {
		t.Fatalf("TotalCalls = %d: want the 600 dropped records counted again and the rest once, 1600", n)
	}
}

// BenchmarkUsageWriteBatchFull is the cost per record of a store at its row cap, where
// every write also drops old rows: the steady state of a long-running process.
func BenchmarkUsageWriteBatchFull(b *testing.B) {
	ctx := context.Background()
	user := ecoid.New(ecoid.User)
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	batch := usageRecords(user, at, 100, time.Millisecond)
	refill := func() {
		for i := range batch {
			at = at.Add(time.Millisecond)
			batch[i].ID, batch[i].Time = ecoid.NewAt(ecoid.Usage, at), at
		}
	}
	s := NewUsageStore()
	for s.rows.rows < MaxUsageRows*7/8 {
		refill()
		if err := s.WriteBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		refill()
		b.StartTimer()
		if err := s.WriteBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/record")
}

// BenchmarkUsageAddCall is the quota counter of every API request: AddCall from every
// core, under a hard cap never reached, for one hot user and for 100 users.
func BenchmarkUsageAddCall(b *testing.B) {
	for _, users := range []int{1, 100} {
		b.Run(strconv.Itoa(users)+"users", func(b *testing.B) {
			ctx := context.Background()
			s := NewUsageStore()
			ids := make([]ecoid.ID, users)
			for i := range ids {
				ids[i] = ecoid.New(ecoid.User)
			}
			period := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, added, err := s.AddCall(ctx, ids[i%users], period, math.MaxInt64, true); err != nil || !added {
						b.Fatal("AddCall refused", err)
					}
				}
			})
		})
	}
}
