package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/redis"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// newPeer is a second client of the test server, as another instance would hold.
func newPeer(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestThrottleKeysExpireWithTheirWindow(t *testing.T) {
	client, prefix := newClient(t)
	s := redis.NewThrottleStore(client, prefix)
	ctx := context.Background()
	now := time.Now()
	if _, err := s.Reserve(ctx, "ann@example.com", auth.AttemptLimit{Max: 5, Window: time.Minute}, now); err != nil {
		t.Fatal(err)
	}
	key := s.Key("ann@example.com")
	if ttl := client.PTTL(ctx, key).Val(); ttl <= 59*time.Second || ttl > 62*time.Second {
		t.Fatalf("TTL %v, want about 61 s", ttl)
	}
	if n := client.Exists(ctx, prefix+"ann@example.com").Val(); n != 0 {
		t.Fatal("the plain key is stored")
	}
}

func TestThrottleReportsRedisErrors(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()
	s := redis.NewThrottleStore(client, "")
	ctx := context.Background()
	if _, err := s.Reserve(ctx, "k", auth.AttemptLimit{Max: 1, Window: time.Minute}, time.Now()); err == nil {
		t.Fatal("Reserve without a server succeeded")
	}
	if err := s.Release(ctx, "k", time.Now()); err == nil {
		t.Fatal("Release without a server succeeded")
	}
	if err := s.Reset(ctx, "k"); err == nil {
		t.Fatal("Reset without a server succeeded")
	}
}

func BenchmarkThrottleStore(b *testing.B) {
	client, prefix := newClient(b)
	storagetest.BenchmarkThrottle(b, redis.NewThrottleStore(client, prefix))
}
