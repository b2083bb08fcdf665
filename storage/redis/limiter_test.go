package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/redis"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// newClient connects to the test server and returns a key prefix of the test's own,
// whose keys are deleted when the test ends.
func newClient(t testing.TB) (*goredis.Client, string) {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: testenv.Redis(t)})
	prefix := "nexus-test:" + string(ecoid.New(ecoid.Event)) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		_ = client.Close()
	})
	return client, prefix
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Stores {
		client, prefix := newClient(t)
		return storagetest.Stores{
			Limiter: func(now func() time.Time) apikey.Limiter {
				return redis.NewLimiter(client, redis.WithPrefix(prefix), redis.WithClock(now))
			},
			Throttle:     redis.NewThrottleStore(client, prefix),
			ThrottlePeer: redis.NewThrottleStore(newPeer(t), prefix),
		}
	})
}

func TestLimiterUsesTheServerTime(t *testing.T) {
	client, prefix := newClient(t)
	l := redis.NewLimiter(client, redis.WithPrefix(prefix))
	ctx := context.Background()
	before := time.Now()
	d, err := l.Allow(ctx, "subject", apikey.PerMinute(2))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || d.Remaining != 1 || d.ResetAt.Before(before.Add(29*time.Second)) || d.ResetAt.After(time.Now().Add(31*time.Second)) {
		t.Fatalf("first decision: %+v", d)
	}
	l.Allow(ctx, "subject", apikey.PerMinute(2))
	if d, _ = l.Allow(ctx, "subject", apikey.PerMinute(2)); d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 30*time.Second {
		t.Fatalf("third: %+v", d)
	}
	// The key is hash-tagged by subject and expires once idle.
	key := l.Key(apikey.DefaultPolicy, "subject")
	if key != prefix+"default:{subject}" {
		t.Fatalf("key %q", key)
	}
	if ttl := client.PTTL(ctx, key).Val(); ttl <= 59*time.Second || ttl > 62*time.Second {
		t.Fatalf("TTL %v, want about 61 s", ttl)
	}
}

func TestLimiterReportsRedisErrors(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()
	if _, err := redis.NewLimiter(client).Allow(context.Background(), "s", apikey.PerMinute(1)); err == nil {
		t.Fatal("Allow without a server succeeded")
	}
	if _, err := redis.NewLimiter(client).Allow(context.Background(), "s", apikey.Limit{}); err == nil {
		t.Fatal("Allow with an invalid limit succeeded")
	}
}
