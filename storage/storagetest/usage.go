package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

// usageBase is a fixed instant the usage tests build their records around.
var usageBase = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// UsageRecord returns a valid record for user at t, for tests.
func UsageRecord(user ecoid.ID, t time.Time, method, endpoint string, status int, latency time.Duration) usage.Record {
	return usage.Record{
		ID:       ecoid.NewAt(ecoid.Usage, t),
		KeyID:    ecoid.New(ecoid.APIKey),
		UserID:   user,
		Endpoint: endpoint,
		Method:   method,
		Status:   status,
		Latency:  latency,
		Bytes:    42,
		Time:     t,
	}
}

func runUsage(t *testing.T, newStores NewStores) {
	store := func(t *testing.T) usage.Store {
		t.Helper()
		return provided(t, newStores(t).Usage, "Usage")
	}
	ctx := context.Background()

	t.Run("WriteBatchIsIdempotentPerID", func(t *testing.T) {
		s := store(t)
		user := ecoid.New(ecoid.User)
		var batch []usage.Record
		for i := range 10 {
			batch = append(batch, UsageRecord(user, usageBase.Add(time.Duration(i)*time.Second), "GET", "/a", 200, time.Millisecond))
		}
		mustWrite(t, s, batch)
		mustWrite(t, s, batch)     // the whole batch again: a retry after a lost answer
		mustWrite(t, s, batch[5:]) // an overlapping part of it
		extra := UsageRecord(user, usageBase, "GET", "/a", 200, time.Millisecond)
		mustWrite(t, s, append([]usage.Record{extra}, batch[:3]...))
		if n := totalCalls(t, s); n != 11 {
			t.Fatalf("after duplicate writes TotalCalls = %d, want 11", n)
		}
		if err := s.WriteBatch(ctx, nil); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
	})

	t.Run("WriteBatchRefusesInvalidRecordsWhole", func(t *testing.T) {
		s := store(t)
		user := ecoid.New(ecoid.User)
		good := UsageRecord(user, usageBase, "GET", "/a", 200, time.Millisecond)
		bads := map[string]func(r *usage.Record){
			"no ID":         func(r *usage.Record) { r.ID = "" },
			"wrong ID type": func(r *usage.Record) { r.ID = ecoid.New(ecoid.User) },
			"bad user":      func(r *usage.Record) { r.UserID = "nope" },
			"bad key":       func(r *usage.Record) { r.KeyID = "nope" },
			"no endpoint":   func(r *usage.Record) { r.Endpoint = "" },
			"long method":   func(r *usage.Record) { r.Method = "ABCDEFGHIJKLMNOPQ" },
			"status":        func(r *usage.Record) { r.Status = 1000 },
			"latency":       func(r *usage.Record) { r.Latency = -1 },
			"bytes":         func(r *usage.Record) { r.Bytes = -1 },
			"time":          func(r *usage.Record) { r.Time = time.Time{} },
		}
		for name, spoil := range bads {
			bad := UsageRecord(user, usageBase, "GET", "/a", 200, time.Millisecond)
			spoil(&bad)
			err := s.WriteBatch(ctx, []usage.Record{good, bad})
			if !errors.Is(err, usage.ErrInvalidRecord) || usage.IsRetriable(err) {
				t.Fatalf("%s: WriteBatch = %v, want ErrInvalidRecord, not retriable", name, err)
			}
		}
		if n := totalCalls(t, s); n != 0 {
			t.Fatalf("a refused batch stored %d rows", n)
		}
		key := UsageRecord(user, usageBase, "GET", "/a", 200, time.Millisecond)
		key.KeyID = ""
		mustWrite(t, s, []usage.Record{key})
		if n := totalCalls(t, s); n != 1 {
			t.Fatalf("a record without a key ID: TotalCalls = %d", n)
		}
	})

	t.Run("CounterHardCapAndSoft", func(t *testing.T) {
		s := store(t)
		user, other := ecoid.New(ecoid.User), ecoid.New(ecoid.User)
		period := usage.PeriodStart(usageBase)
		for i := int64(1); i <= 3; i++ {
			n, added, err := s.AddCall(ctx, user, period, 3, true)
			if err != nil || !added || n != i {
				t.Fatalf("call %d: %d %v %v", i, n, added, err)
			}
		}
		n, added, err := s.AddCall(ctx, user, usageBase, 3, true) // any time in the period
		if err != nil || added || n != 3 {
			t.Fatalf("call over the hard cap: %d %v %v", n, added, err)
		}
		n, added, err = s.AddCall(ctx, user, period, 3, false)
		if err != nil || !added || n != 4 {
			t.Fatalf("soft call over the limit: %d %v %v", n, added, err)
		}
		if n, _ := s.PeriodCalls(ctx, user, period); n != 4 {
			t.Fatalf("PeriodCalls = %d, want 4", n)
		}
		next := period.AddDate(0, 1, 0)
		if n, added, _ := s.AddCall(ctx, user, next, 3, true); !added || n != 1 {
			t.Fatalf("next period starts at zero: %d %v", n, added)
		}
		if n, added, _ := s.AddCall(ctx, other, period, 0, true); added || n != 0 {
			t.Fatalf("hard cap 0 refuses: %d %v", n, added)
		}
		if n, _ := s.PeriodCalls(ctx, other, period); n != 0 {
			t.Fatalf("other user: %d", n)
		}
		if n, added, _ := s.AddCall(ctx, other, period, 0, false); !added || n != 1 {
			t.Fatalf("soft limit 0 counts: %d %v", n, added)
		}
	})

	t.Run("CounterRemoveCallStopsAtZero", func(t *testing.T) {
		s := store(t)
		user := ecoid.New(ecoid.User)
		period := usage.PeriodStart(usageBase)
		if err := s.RemoveCall(ctx, user, period); err != nil {
			t.Fatalf("RemoveCall of an uncounted period: %v", err)
		}
		for range 2 {
			if _, _, err := s.AddCall(ctx, user, period, 2, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RemoveCall(ctx, user, period); err != nil {
			t.Fatal(err)
		}
		if n, added, _ := s.AddCall(ctx, user, period, 2, true); !added || n != 2 {
			t.Fatalf("a released call can be used again: %d %v", n, added)
		}
		for range 3 {
			_ = s.RemoveCall(ctx, user, period)
		}
		if n, _ := s.PeriodCalls(ctx, user, period); n != 0 {
			t.Fatalf("count after removing more than added: %d", n)
		}
	})

	t.Run("CounterHardCapIsExactUnderConcurrency", func(t *testing.T) {
		s := store(t)
		user := ecoid.New(ecoid.User)
		period := usage.PeriodStart(usageBase)
		const limit, workers, each = 150, 16, 20 // 320 attempts for 150 places
		var mu sync.Mutex
		added, seen := 0, map[int64]bool{}
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					n, ok, err := s.AddCall(ctx, user, period, limit, true)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						mu.Lock()
						added++
						if seen[n] {
							t.Errorf("count %d handed out twice", n)
						}
						seen[n] = true
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if n, _ := s.PeriodCalls(ctx, user, period); added != limit || n != limit {
			t.Fatalf("added %d, count %d; want exactly %d", added, n, limit)
		}
	})

	t.Run("HistoryIsDenseAndCountsErrors", func(t *testing.T) {
		s := store(t)
		user, other := ecoid.New(ecoid.User), ecoid.New(ecoid.User)
		day0 := usage.DayStart(usageBase)
		mustWrite(t, s, []usage.Record{
			UsageRecord(user, day0, "GET", "/a", 200, time.Millisecond),                                  // first instant of day 0
			UsageRecord(user, day0.Add(23*time.Hour+59*time.Minute+59*time.Second), "GET", "/a", 500, 0), // last second of day 0
			UsageRecord(user, day0.AddDate(0, 0, 2).Add(time.Hour), "POST", "/b", 404, time.Millisecond),
			UsageRecord(user, day0.AddDate(0, 0, 2).Add(2*time.Hour), "POST", "/b", 201, time.Millisecond),
			UsageRecord(user, day0.Add(-time.Microsecond), "GET", "/a", 200, 0), // the day before
			UsageRecord(user, day0.AddDate(0, 0, 4), "GET", "/a", 200, 0),       // the day after the range
			UsageRecord(other, day0.Add(time.Hour), "GET", "/a", 200, 0),        // someone else
		})
		got, err := s.History(ctx, user, day0.Add(5*time.Hour), 4)
		if err != nil {
			t.Fatal(err)
		}
		want := []usage.DailyCalls{
			{Date: day0, Calls: 2, Errors: 1},
			{Date: day0.AddDate(0, 0, 1)},
			{Date: day0.AddDate(0, 0, 2), Calls: 2, Errors: 1},
			{Date: day0.AddDate(0, 0, 3)},
		}
		assertDays(t, got, want)
		empty, err := s.History(ctx, ecoid.New(ecoid.User), day0, 3)
		if err != nil || len(empty) != 3 || empty[2].Calls != 0 || !empty[2].Date.Equal(day0.AddDate(0, 0, 2)) {
			t.Fatalf("history of a user without calls: %v %v", empty, err)
		}
		if _, err := s.History(ctx, user, day0, 0); err == nil {
			t.Fatal("History with 0 days is not an error")
		}
	})

	t.Run("EndpointStats", func(t *testing.T) {
		s := store(t)
		user := ecoid.New(ecoid.User)
		var batch []usage.Record
		for i := 1; i <= 20; i++ { // latencies 1..20 ms, 4 errors
			status := 200
			if i%5 == 0 {
				status = 503
			}
			batch = append(batch, UsageRecord(user, usageBase.Add(time.Duration(i)*time.Minute), "GET", "/api/v1/ping", status, time.Duration(i)*time.Millisecond))
		}
		batch = append(batch,
			UsageRecord(user, usageBase, "POST", "/api/v1/items", 201, 1500*time.Microsecond),
			UsageRecord(user, usageBase, "POST", "/api/v1/items", 400, 2501*time.Microsecond),
			UsageRecord(user, usageBase, "DELETE", "/api/v1/items", 204, 3*time.Millisecond),
			UsageRecord(user, usageBase, "GET", "/api/v1/items", 200, 3*time.Millisecond),
			UsageRecord(user, usageBase.Add(-time.Hour), "GET", "/old", 200, time.Millisecond),   // before from
			UsageRecord(ecoid.New(ecoid.User), usageBase, "GET", "/api/v1/ping", 200, time.Hour), // another user
		)
		mustWrite(t, s, batch)
		got, err := s.Endpoints(ctx, user, usageBase, usageBase.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := []usage.EndpointStats{
			{Method: "GET", Endpoint: "/api/v1/ping", Calls: 20, ErrorRate: 0.2, AvgLatencyMS: 10.5, P95LatencyMS: 19.05},
			{Method: "POST", Endpoint: "/api/v1/items", Calls: 2, ErrorRate: 0.5, AvgLatencyMS: 2.001, P95LatencyMS: 2.451},
			{Method: "DELETE", Endpoint: "/api/v1/items", Calls: 1, AvgLatencyMS: 3, P95LatencyMS: 3},
			{Method: "GET", Endpoint: "/api/v1/items", Calls: 1, AvgLatencyMS: 3, P95LatencyMS: 3},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Endpoints:\n got %v\nwant %v", got, want)
		}
		none, err := s.Endpoints(ctx, ecoid.New(ecoid.User), usageBase, usageBase.Add(time.Hour))
		if err != nil || len(none) != 0 {
			t.Fatalf("endpoints of a user without calls: %v %v", none, err)
		}
	})

	t.Run("TotalCallsAndTopUsers", func(t *testing.T) {
		s := store(t)
		users := []ecoid.ID{ecoid.New(ecoid.User), ecoid.New(ecoid.User), ecoid.New(ecoid.User), ecoid.New(ecoid.User)}
		var batch []usage.Record
		for i, calls := range []int{3, 5, 3, 1} {
			for j := range calls {
				batch = append(batch, UsageRecord(users[i], usageBase.Add(time.Duration(j)*time.Hour), "GET", "/a", 200, 0))
			}
		}
		batch = append(batch, UsageRecord(users[3], usageBase.AddDate(0, 0, 1), "GET", "/a", 200, 0)) // outside [from, to)
		mustWrite(t, s, batch)
		from, to := usageBase, usageBase.AddDate(0, 0, 1)
		if n, err := s.TotalCalls(ctx, from, to); err != nil || n != 12 {
			t.Fatalf("TotalCalls = %d %v, want 12", n, err)
		}
		tied := []ecoid.ID{users[0], users[2]}
		if tied[1] < tied[0] {
			tied[0], tied[1] = tied[1], tied[0]
		}
		top, err := s.TopUsers(ctx, from, to, 3)
		want := []usage.UserCalls{{UserID: users[1], Calls: 5}, {UserID: tied[0], Calls: 3}, {UserID: tied[1], Calls: 3}}
		if err != nil || fmt.Sprint(top) != fmt.Sprint(want) {
			t.Fatalf("TopUsers = %v %v, want %v", top, err, want)
		}
		if all, _ := s.TopUsers(ctx, from, to, 100); len(all) != 4 {
			t.Fatalf("TopUsers(100) has %d users, want 4", len(all))
		}
		if none, err := s.TopUsers(ctx, from, to, 0); err != nil || len(none) != 0 {
			t.Fatalf("TopUsers(0) = %v %v", none, err)
		}
	})

	t.Run("TrackerLosesAndDuplicatesNothing", func(t *testing.T) {
		s := store(t)
		flaky := &flakyWriter{Writer: s, failures: 12}
		tr := usage.NewTracker(flaky, usage.Config{BatchSize: 50, FlushInterval: 10 * time.Millisecond,
			MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, BufferSize: 64 * 100})
		user := ecoid.New(ecoid.User)
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					r := UsageRecord(user, usageBase.Add(time.Duration(g*100+i)*time.Millisecond), "GET", "/a", 200, time.Millisecond)
					r.ID = "" // the tracker assigns IDs, once per record
					if !tr.Track(r) {
						t.Error("Track refused a record with room in the buffer")
						return
					}
				}
			}()
		}
		wg.Wait()
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := tr.Close(cctx); err != nil {
			t.Fatal(err)
		}
		st := tr.Stats()
		if n := totalCalls(t, s); n != 6400 || st.Flushed != 6400 || st.Retried < 12 {
			t.Fatalf("store holds %d rows, stats %+v; want 6400 stored after 12 failures", n, st)
		}
	})

	t.Run("AggregateIsIdempotent", func(t *testing.T) {
		s := store(t)
		user, other := ecoid.New(ecoid.User), ecoid.New(ecoid.User)
		day0 := usage.DayStart(usageBase)
		mustWrite(t, s, []usage.Record{
			UsageRecord(user, day0.Add(time.Hour), "GET", "/a", 200, 0),
			UsageRecord(user, day0.Add(2*time.Hour), "GET", "/a", 429, 0),
			UsageRecord(other, day0.Add(time.Hour), "GET", "/a", 200, 0),
			UsageRecord(user, day0.AddDate(0, 0, 1), "GET", "/a", 200, 0),
		})
		for range 2 {
			if err := s.Aggregate(ctx, usageBase); err != nil {
				t.Fatal(err)
			}
		}
		daily, err := s.Daily(ctx, user, day0, day0.AddDate(0, 0, 3))
		if err != nil {
			t.Fatal(err)
		}
		assertDays(t, daily, []usage.DailyCalls{{Date: day0, Calls: 2, Errors: 1}})                    // day 1 not aggregated yet
		mustWrite(t, s, []usage.Record{UsageRecord(user, day0.Add(3*time.Hour), "GET", "/a", 200, 0)}) // a late record
		if err := s.Aggregate(ctx, day0); err != nil {
			t.Fatal(err)
		}
		if err := s.Aggregate(ctx, day0.AddDate(0, 0, 1)); err != nil {
			t.Fatal(err)
		}
		daily, _ = s.Daily(ctx, user, day0, day0.AddDate(0, 0, 3))
		assertDays(t, daily, []usage.DailyCalls{{Date: day0, Calls: 3, Errors: 1}, {Date: day0.AddDate(0, 0, 1), Calls: 1}})
		if d, _ := s.Daily(ctx, user, day0.Add(time.Minute), day0.AddDate(0, 0, 1)); len(d) != 0 {
			t.Fatalf("Daily from after midnight includes that day: %v", d)
		}
		if d, _ := s.Daily(ctx, other, day0, day0.AddDate(0, 0, 1)); len(d) != 1 || d[0].Calls != 1 {
			t.Fatalf("other user's rollup: %v", d)
		}
	})

	runUsageRollup(t, store)
}

// flakyWriter fails its first calls: odd ones before writing (the connection dropped),
// even ones after writing (the commit's answer was lost), so the Tracker resends batches
// the store already holds.
type flakyWriter struct {
	usage.Writer
	mu       sync.Mutex
	calls    int
	failures int
}

func (f *flakyWriter) WriteBatch(ctx context.Context, batch []usage.Record) error {
	f.mu.Lock()
	f.calls++
	call, failing := f.calls, f.calls <= f.failures
	f.mu.Unlock()
	if failing && call%2 == 1 {
		return usage.Retriable(errors.New("connection reset"))
	}
	if err := f.Writer.WriteBatch(ctx, batch); err != nil {
		return err
	}
	if failing {
		return fmt.Errorf("answer lost: %w", context.DeadlineExceeded)
	}
	return nil
}

func mustWrite(t *testing.T, s usage.Store, batch []usage.Record) {
	t.Helper()
	if err := s.WriteBatch(context.Background(), batch); err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
}

func totalCalls(t *testing.T, s usage.Store) int64 {
	t.Helper()
	n, err := s.TotalCalls(context.Background(), time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("TotalCalls: %v", err)
	}
	return n
}

func assertDays(t *testing.T, got, want []usage.DailyCalls) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("days:\n got %v\nwant %v", got, want)
	}
	for i := range got {
		if !got[i].Date.Equal(want[i].Date) || got[i].Date.Location() != time.UTC || got[i].Calls != want[i].Calls || got[i].Errors != want[i].Errors {
			t.Fatalf("day %d:\n got %v\nwant %v", i, got, want)
		}
	}
}
