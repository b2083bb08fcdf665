package memory_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "eco_api_" + strconv.Itoa(1_000_000+i)
	}
	return out
}

func TestLimiterDoesNotAllocate(t *testing.T) {
	l := memory.NewLimiter()
	ks := keys(100)
	ctx := context.Background()
	for _, k := range ks {
		l.Allow(ctx, k, apikey.PerMinute(1000))
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		_, _ = l.Allow(ctx, ks[i%len(ks)], apikey.PerMinute(1000))
		i++
	}); n != 0 {
		t.Fatalf("Allow allocates %v times", n)
	}
}

func TestLimiterEvictsIdleKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	l := memory.NewLimiter(memory.WithClock(func() time.Time { return now.Add(time.Duration(offset.Load())) }))
	ctx := context.Background()
	lim := apikey.PerMinute(60) // an entry is idle one second after its last request
	// 100k subjects, each seen once per simulated second: only about one second's worth
	// may stay in memory.
	for i := 0; i < 100_000; i++ {
		if i%1000 == 0 {
			offset.Add(int64(100 * time.Millisecond))
		}
		if _, err := l.Allow(ctx, "s"+strconv.Itoa(i), lim); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Len(); n > 40_000 {
		t.Fatalf("%d entries held for 100k subjects of which ~10k are active", n)
	}
	offset.Add(int64(2 * time.Second))
	if n := l.Sweep(); n != 0 {
		t.Fatalf("Sweep left %d idle entries", n)
	}
	// Eviction changed nothing: a subject seen again starts with a full burst.
	if d, _ := l.Allow(ctx, "s1", lim); !d.Allowed || d.Remaining != 59 {
		t.Fatalf("after eviction: %+v", d)
	}
}

// Sweeps running while callers race on new subjects must not let a subject be decided
// on two entries: of M racing requests under a burst of N, exactly N are allowed. A new
// entry is idle until its first decision, so the sweeps keep dropping entries that
// racers have found but not locked yet.
func TestLimiterExactWhileSweeping(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := memory.NewLimiter(memory.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	lim := apikey.Limit{Count: 5, Period: time.Hour}
	stop := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Add(1)
	go func() {
		defer sweeper.Done()
		for {
			select {
			case <-stop:
				return
			default:
				l.Sweep()
			}
		}
	}()
	for round := range 500 {
		subject := "racer" + strconv.Itoa(round)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if d, err := l.Allow(ctx, subject, lim); err == nil && d.Allowed {
					allowed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if n := allowed.Load(); n != 5 {
			close(stop)
			sweeper.Wait()
			t.Fatalf("round %d: %d of 20 allowed under a burst of 5", round, n)
		}
	}
	close(stop)
	sweeper.Wait()
}

func TestLimiterManyPolicies(t *testing.T) {
	l := memory.NewLimiter()
	ctx := context.Background()
	for i := range 20 { // more than the policies found by a scan
		lim := apikey.Limit{Name: "p" + strconv.Itoa(i), Count: 1, Period: time.Hour}
		if d, _ := l.Allow(ctx, "k", lim); !d.Allowed {
			t.Fatalf("policy %d: first request refused", i)
		}
		if d, _ := l.Allow(ctx, "k", lim); d.Allowed {
			t.Fatalf("policy %d: second request allowed", i)
		}
	}
	if n := l.Len(); n != 20 {
		t.Fatalf("Len %d, want 20", n)
	}
}

func TestLimiterInvalidLimit(t *testing.T) {
	if _, err := memory.NewLimiter().Allow(context.Background(), "k", apikey.Limit{}); err == nil {
		t.Fatal("no error for a zero limit")
	}
}

// BenchmarkLimiter is one decision among 10,000 keys, from all CPUs at once.
func BenchmarkLimiter(b *testing.B) {
	l := memory.NewLimiter()
	ks := keys(10_000)
	ctx := context.Background()
	// 10,000 per minute: subjects stay busy (never idle) through the run, as the
	// subjects of a real service would; a far higher limit would measure eviction.
	lim := apikey.PerMinute(10_000)
	b.ReportAllocs()
	var seq atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(7919) // a different start per goroutine
		for pb.Next() {
			i++
			if _, err := l.Allow(ctx, ks[i%uint64(len(ks))], lim); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLimiterMemory reports the heap held by 1M active keys, and after they go
// idle and are swept.
func BenchmarkLimiterMemory(b *testing.B) {
	for b.Loop() {
		var before, full, swept runtime.MemStats
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var offset atomic.Int64
		l := memory.NewLimiter(memory.WithClock(func() time.Time { return now.Add(time.Duration(offset.Load())) }))
		ks := keys(1_000_000)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, k := range ks {
			l.Allow(context.Background(), k, apikey.PerMinute(60))
		}
		runtime.GC()
		runtime.ReadMemStats(&full)
		offset.Add(int64(time.Minute))
		left := l.Sweep()
		runtime.GC()
		runtime.ReadMemStats(&swept)
		b.ReportMetric(float64(full.HeapAlloc-before.HeapAlloc)/1e6, "MB/1M-keys")
		b.ReportMetric(float64(int64(swept.HeapAlloc)-int64(before.HeapAlloc))/1e6, "MB-after-sweep")
		if left != 0 {
			b.Fatal(fmt.Sprintf("%d left", left))
		}
		runtime.KeepAlive(ks)
	}
}
