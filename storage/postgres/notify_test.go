package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/fanout"
	"github.com/nexus-ecosystem/nexus/internal/faultproxy"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// viaProxy returns dsn pointed at a loopback proxy to its server, and the proxy.
func viaProxy(t *testing.T, dsn string) (string, *faultproxy.Proxy) {
	t.Helper()
	return faultproxy.PostgresDSN(t, dsn)
}

func TestFanoutConformance(t *testing.T) {
	storagetest.RunFanout(t, func(t *testing.T) storagetest.OpenBus {
		dsn := testenv.Postgres(t)
		db := pgtest.NewUnmigrated(t)
		channel := "nexus_test_" + strings.ToLower(string(ecoid.New(ecoid.Event))[8:])
		return func(t *testing.T) (fanout.Bus, func()) {
			proxied, proxy := viaProxy(t, dsn)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			bus, err := postgres.NewBus(ctx, proxied, db, postgres.BusConfig{Channel: channel, PingInterval: 200 * time.Millisecond})
			if err != nil {
				t.Fatalf("NewBus: %v", err)
			}
			t.Cleanup(func() { _ = bus.Close() })
			return bus, proxy.Cut
		}
	})
}

// A listening connection that goes silent (a stalled network: nothing is closed) is
// noticed by the ping: subscribers get a Gap instead of waiting on a dead connection.
func TestBusSilentConnectionIsAGap(t *testing.T) {
	dsn := testenv.Postgres(t)
	proxied, proxy := viaProxy(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := postgres.NewBus(ctx, proxied, pgtest.NewUnmigrated(t),
		postgres.BusConfig{Channel: "nexus_test_" + strings.ToLower(string(ecoid.New(ecoid.Event))[8:]), PingInterval: 100 * time.Millisecond})
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
	defer proxy.Resume()
	select {
	case <-gaps:
	case <-time.After(15 * time.Second):
		t.Fatal("no Gap while the listening connection was stalled")
	}
}
