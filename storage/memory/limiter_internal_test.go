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

// The limiter's default clock never runs ahead of the wall clock nor backwards (its
// goroutine's life is package coarse's test).
func TestLimiterClock(t *testing.T) {
	l := NewLimiter()
	prev := l.nowMicro()
	for range 2000 {
		now := l.nowMicro()
		if now < prev {
			t.Fatalf("the clock ran backwards: %d after %d", now, prev)
		}
		if exact := time.Now().UnixMicro(); now > exact {
			t.Fatalf("the clock ran ahead: %d > exact %d", now, exact)
		}
		prev = now
	}
}
