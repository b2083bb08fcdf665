package memory

import (
	"context"
	"hash/maphash"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
)

// A caller that found an entry just before a sweep dropped it must not decide on the
// dead entry: its request and every later one land on the one live entry.
func TestDecideOnASweptEntryLooksAgain(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(WithClock(func() time.Time { return now }))
	lim := apikey.Limit{Count: 2, Period: time.Hour}
	g, _ := lim.GCRA()
	h := maphash.String(l.seed, "k")
	sh := &l.table(lim.Policy()).shards[h>>(64-shardBits)]
	us := now.UnixMicro()

	stale := sh.insert(h, "k", us) // found, not yet locked: idle
	sh.mu.Lock()
	sh.sweep(us)
	sh.mu.Unlock()
	if !stale.dead || sh.find(h, "k") != nil {
		t.Fatal("the sweep did not drop the idle entry")
	}
	if d := sh.decide(g, stale, h, "k", us); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("first decision: %+v", d)
	}
	if stale.tat != 0 {
		t.Fatal("the decision was made on the dead entry")
	}
	if d, _ := l.Allow(context.Background(), "k", lim); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("second decision: %+v", d)
	}
	if d, _ := l.Allow(context.Background(), "k", lim); d.Allowed {
		t.Fatalf("third decision under a burst of 2: %+v", d)
	}
	if n := l.Len(); n != 1 {
		t.Fatalf("Len %d, want 1", n)
	}
}

// The coarse clock never runs ahead of the exact one nor backwards, stops its goroutine
// when unused, and restarts on the next read.
func TestCoarseClock(t *testing.T) {
	l := NewLimiter()
	c := &l.clock
	prev := c.read()
	for range 2000 {
		now := c.read()
		if now < prev {
			t.Fatalf("the clock ran backwards: %d after %d", now, prev)
		}
		if exact := c.exact(); now > exact {
			t.Fatalf("the clock ran ahead: %d > exact %d", now, exact)
		}
		prev = now
	}
	if !c.running.Load() {
		t.Fatal("no ticker while the clock is read")
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the ticker did not stop after the clock went unused")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if now := c.read(); now < prev || !c.running.Load() {
		t.Fatalf("after a restart: %d (before %d), running %v", now, prev, c.running.Load())
	}
}
