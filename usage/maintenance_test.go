package usage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

type countingMaintainer struct {
	mu        sync.Mutex
	calls     int
	fail      int // the first fail calls fail
	retention time.Duration
	now       time.Time
	done      chan struct{}
}

func (m *countingMaintainer) Maintain(_ context.Context, now time.Time, retention time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.now, m.retention = now, retention
	if m.calls == 4 {
		close(m.done)
	}
	if m.calls <= m.fail {
		return errors.New("store down")
	}
	return nil
}

func TestRunMaintenanceRepeatsAndRetriesFailures(t *testing.T) {
	m := &countingMaintainer{fail: 2, done: make(chan struct{})}
	at := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var results []error
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- usage.RunMaintenance(ctx, m, usage.MaintenanceConfig{Interval: time.Millisecond, Retention: 48 * time.Hour,
			Now: func() time.Time { return at }, OnPass: func(err error) { mu.Lock(); results = append(results, err); mu.Unlock() }})
	}()
	<-m.done
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("RunMaintenance returned %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) < 3 || results[0] == nil || results[1] == nil || results[2] != nil {
		t.Fatalf("pass results %v: want two failures, then success", results)
	}
	if m.retention != 48*time.Hour || !m.now.Equal(at) {
		t.Fatalf("Maintain got now %v retention %v", m.now, m.retention)
	}
}

// The scheduled rollup makes closed days visible in Daily.
func TestRunMaintenanceRollsUpClosedDays(t *testing.T) {
	store := memory.NewUsageStore()
	user := ecoid.New(ecoid.User)
	day := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	if err := store.WriteBatch(context.Background(), []usage.Record{{ID: ecoid.NewAt(ecoid.Usage, day), UserID: user,
		Endpoint: "/a", Method: "GET", Status: 200, Time: day}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	passes := make(chan error, 10)
	go func() {
		_ = usage.RunMaintenance(ctx, store, usage.MaintenanceConfig{Now: func() time.Time { return day.AddDate(0, 0, 2) },
			OnPass: func(err error) { passes <- err }})
	}()
	if err := <-passes; err != nil {
		t.Fatal(err)
	}
	cancel()
	d, _ := store.Daily(context.Background(), user, day.AddDate(0, 0, -1), day.AddDate(0, 0, 1))
	if len(d) != 1 || d[0].Calls != 1 {
		t.Fatalf("Daily after a maintenance pass: %v", d)
	}
}
