package storagetest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
)

// BenchmarkThrottle measures one Reserve of s, in parallel, over 1,000 keys (a login
// makes two).
func BenchmarkThrottle(b *testing.B, s auth.ThrottleStore) {
	l := auth.AttemptLimit{Max: 1 << 30, Window: time.Hour}
	now := time.Now()
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Reserve(context.Background(), "bench:"+strconv.FormatInt(n.Add(1)%1000, 10), l, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
