package bench

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-limiter/memorystore"
	ulule "github.com/ulule/limiter/v3"
	ululemem "github.com/ulule/limiter/v3/drivers/store/memory"
	"golang.org/x/time/rate"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	nexusredis "github.com/nexus-ecosystem/nexus/storage/redis"
)

// Every limiter allows 10,000 requests per minute per key; 10,000 keys are used from
// all CPUs at once. At that rate no key goes idle during a run, as in a real service.
const (
	limiterKeys = 10_000
	perMinute   = 10_000
)

var sinkAllowed bool

func limiterKeyNames() []string {
	out := make([]string, limiterKeys)
	for i := range out {
		out[i] = string(ecoid.New(ecoid.APIKey))
	}
	return out
}

// runParallel calls allow with keys spread over the key set from every goroutine.
func runParallel(b *testing.B, allow func(ctx context.Context, key string) bool) {
	keys := limiterKeyNames()
	ctx := context.Background()
	var seq atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(7919)
		for pb.Next() {
			i++
			sinkAllowed = allow(ctx, keys[i%limiterKeys])
		}
	})
}

// xrateMap is the usual way to use golang.org/x/time/rate per key: one Limiter per key
// in a sync.Map (lock-free reads, its best case).
type xrateMap struct{ m sync.Map }

func (x *xrateMap) allow(key string) bool {
	v, ok := x.m.Load(key)
	if !ok {
		v, _ = x.m.LoadOrStore(key, rate.NewLimiter(rate.Every(time.Minute/perMinute), perMinute))
	}
	return v.(*rate.Limiter).Allow()
}

// BenchmarkLimiter: one in-process decision among 10,000 keys, in parallel. The peers
// read the clock on every call (x/time/rate: time.Now); memory.Limiter reads a coarse
// clock that a goroutine ticks every millisecond, part of why it is faster.
func BenchmarkLimiter(b *testing.B) {
	b.Run("nexus-memory", func(b *testing.B) { runLimiter(b, memory.NewLimiter()) })
	b.Run("x-time-rate-map", func(b *testing.B) {
		x := &xrateMap{}
		runParallel(b, func(_ context.Context, key string) bool { return x.allow(key) })
	})
	b.Run("ulule-limiter-memory", func(b *testing.B) {
		l := ulule.New(ululemem.NewStore(), ulule.Rate{Period: time.Minute, Limit: perMinute})
		runParallel(b, func(ctx context.Context, key string) bool {
			c, _ := l.Get(ctx, key)
			return !c.Reached
		})
	})
	b.Run("sethvargo-go-limiter", func(b *testing.B) {
		s, err := memorystore.New(&memorystore.Config{Tokens: perMinute, Interval: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close(context.Background())
		runParallel(b, func(ctx context.Context, key string) bool {
			_, _, _, ok, _ := s.Take(ctx, key)
			return ok
		})
	})
}

// BenchmarkRedisLimiter: one decision in Redis (NEXUS_TEST_REDIS) among 10,000 keys, in
// parallel; both are one round trip running a Lua script.
func BenchmarkRedisLimiter(b *testing.B) {
	addr := os.Getenv("NEXUS_TEST_REDIS")
	if addr == "" {
		b.Skip("NEXUS_TEST_REDIS is not set")
	}
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	defer client.Close()
	prefix := "nexus-bench:" + string(ecoid.New(ecoid.Event)) + ":"
	defer func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	}()
	b.Run("nexus-redis", func(b *testing.B) {
		runLimiter(b, nexusredis.NewLimiter(client, nexusredis.WithPrefix(prefix)))
	})
	b.Run("go-redis-redis_rate", func(b *testing.B) {
		l := redis_rate.NewLimiter(client)
		lim := redis_rate.PerMinute(perMinute)
		runParallel(b, func(ctx context.Context, key string) bool {
			r, err := l.Allow(ctx, prefix+key, lim)
			if err != nil {
				b.Error(err)
				return false
			}
			return r.Allowed > 0
		})
	})
}

// BenchmarkPostgresLimiter: one decision in PostgreSQL (NEXUS_TEST_POSTGRES), one
// statement, among 10,000 keys, in parallel. No peer offers this.
func BenchmarkPostgresLimiter(b *testing.B) {
	runLimiter(b, postgres.NewLimiter(pgtest.New(b)))
}

// runLimiter runs a Nexus limiter under runParallel; errors fail the benchmark.
func runLimiter(b *testing.B, l apikey.Limiter) {
	lim := apikey.PerMinute(perMinute)
	runParallel(b, func(ctx context.Context, key string) bool {
		d, err := l.Allow(ctx, key, lim)
		if err != nil {
			b.Error(err)
		}
		return d.Allowed
	})
}
