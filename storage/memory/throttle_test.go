package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestThrottleStoreIsBounded(t *testing.T) {
	s := memory.NewThrottleStore(4)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := auth.AttemptLimit{Max: 1, Window: time.Minute}
	for i := range 6 {
		if _, err := s.Reserve(ctx, fmt.Sprint("k", i), l, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	if s.Len() != 4 {
		t.Fatalf("%d counters, want at most 4", s.Len())
	}
	// k0 and k1, the oldest, were dropped; k5 is still full.
	if r, _ := s.Reserve(ctx, "k0", l, now); !r.OK {
		t.Fatalf("dropped key: %+v", r)
	}
	if r, _ := s.Reserve(ctx, "k5", l, now); r.OK {
		t.Fatalf("recent key: %+v", r)
	}
	// Once every window has closed, the next new key sweeps them all.
	now = now.Add(2 * time.Minute)
	_, _ = s.Reserve(ctx, "fresh", l, now)
	if s.Len() != 1 {
		t.Fatalf("%d counters after every window closed, want 1", s.Len())
	}
}

func BenchmarkThrottleStore(b *testing.B) {
	storagetest.BenchmarkThrottle(b, memory.NewThrottleStore(0))
}
