package coarse

import (
	"sync"
	"testing"
	"time"
)

// A reading is never ahead of the real clock, and the clock moves on while it is read.
func TestClockFollowsTheWallClock(t *testing.T) {
	c := New(time.Millisecond)
	first := c.UnixNano()
	for {
		before := time.Now().UnixNano()
		got := c.UnixNano()
		after := time.Now().UnixNano()
		if got > after {
			t.Fatalf("coarse %d is ahead of the real clock %d", got, after)
		}
		if got > first && got <= after && before > first {
			return // it advanced
		}
		time.Sleep(time.Millisecond)
	}
}

// Elapsed follows the monotonic clock and never goes back.
func TestClockElapsed(t *testing.T) {
	c := New(time.Millisecond)
	start := time.Now()
	prev := c.Elapsed()
	for prev < 5*time.Millisecond {
		got := c.Elapsed()
		if got < prev {
			t.Fatalf("Elapsed went back: %v after %v", got, prev)
		}
		if real := time.Since(start) + time.Millisecond; got > real+time.Millisecond {
			t.Fatalf("Elapsed %v is ahead of the real %v", got, real)
		}
		prev = got
		time.Sleep(100 * time.Microsecond)
	}
}

func TestClockNowIsUnixNano(t *testing.T) {
	c := New(time.Hour) // no tick during the test: both read the same stored value
	n := c.UnixNano()
	if got := c.Now(); got.UnixNano() != n {
		t.Fatalf("Now %v, UnixNano %d", got, n)
	}
}

// The goroutine stops once the clock is no longer read, and the next reading starts it
// again with the real time.
func TestClockStopsWhenIdleAndRestarts(t *testing.T) {
	c := New(time.Millisecond)
	c.UnixNano()
	for c.running.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	before := time.Now().UnixNano()
	if got := c.UnixNano(); got < before {
		t.Fatalf("the first reading after idling is stale: %d < %d", got, before)
	}
	if !c.running.Load() {
		t.Fatal("the reading did not start the goroutine again")
	}
}

func TestClockConcurrentReaders(t *testing.T) {
	c := New(time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10_000 {
				if c.UnixNano() > time.Now().UnixNano() {
					t.Error("a reading ahead of the real clock")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkUnixNano(b *testing.B) {
	c := New(time.Millisecond)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.UnixNano()
		}
	})
}

func BenchmarkTimeNow(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			time.Now()
		}
	})
}
