package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/fanout"
	"github.com/nexus-ecosystem/nexus/internal/faultproxy"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/redis"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestFanoutConformance(t *testing.T) {
	storagetest.RunFanout(t, func(t *testing.T) storagetest.OpenBus {
		addr := testenv.Redis(t)
		_, prefix := newClient(t)
		channel := prefix + "events"
		return func(t *testing.T) (fanout.Bus, func()) {
			proxy := faultproxy.New(t, addr)
			client := goredis.NewClient(&goredis.Options{Addr: proxy.Addr()})
			t.Cleanup(func() { _ = client.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			bus, err := redis.NewBus(ctx, client, redis.BusConfig{Channel: channel, PingInterval: 200 * time.Millisecond})
			if err != nil {
				t.Fatalf("NewBus: %v", err)
			}
			t.Cleanup(func() { _ = bus.Close() })
			return bus, proxy.Cut
		}
	})
}

// A subscription that goes silent (a stalled network: nothing is closed) is noticed by
// the PING: subscribers get a Gap, and the bus subscribes again once traffic flows.
func TestBusSilentSubscriptionIsAGap(t *testing.T) {
	proxy := faultproxy.New(t, testenv.Redis(t))
	_, prefix := newClient(t)
	client := goredis.NewClient(&goredis.Options{Addr: proxy.Addr()})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := redis.NewBus(ctx, client, redis.BusConfig{Channel: prefix + "events", PingInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewBus: %v", err)
	}
	defer bus.Close()
	gaps := make(chan struct{}, 100)
	bus.Subscribe(func(e fanout.Event) {
		if e.Kind == fanout.Gap {
			select {
			case gaps <- struct{}{}:
			default:
			}
		}
	})
	proxy.Pause()
	select {
	case <-gaps:
	case <-time.After(15 * time.Second):
		t.Fatal("no Gap while the subscription was stalled")
	}
	proxy.Resume()
}
