package storagetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var throttleEpoch = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// throttleStores is one backend's throttle store, a second handle on the same state
// (nil when the backend lives in one process), and a key of the test's own.
type throttleStores struct {
	store, peer auth.ThrottleStore
	key         string
}

// testThrottle runs every behaviour of auth.ThrottleStore.
func testThrottle(t *testing.T, newStores NewStores) {
	setup := func(t *testing.T) throttleStores {
		t.Helper()
		st := newStores(t)
		// A fresh key per test keeps tests apart on shared servers.
		return throttleStores{
			store: provided(t, st.Throttle, "Throttle"),
			peer:  st.ThrottlePeer,
			key:   auth.ThrottleKey("test", string(ecoid.New(ecoid.Event))),
		}
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s throttleStores)
	}{
		{"CountsUpToMaxThenRefuses", throttleCountsThenRefuses},
		{"WindowCloses", throttleWindowCloses},
		{"ReleaseGivesOneBack", throttleRelease},
		{"ReleaseOfAnOldWindowIsNoOp", throttleReleaseOldWindow},
		{"Reset", throttleReset},
		{"KeysAreIndependent", throttleKeysIndependent},
		{"AnyKeyBytes", throttleAnyKeyBytes},
		{"ClockBehindTheWindow", throttleClockBehind},
		{"InvalidLimit", throttleInvalidLimit},
		{"ConcurrentReservationsAreExact", throttleConcurrent},
		{"SharedByInstances", throttleShared},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, setup(t)) })
	}
}

func reserve(t *testing.T, s auth.ThrottleStore, key string, l auth.AttemptLimit, now time.Time) auth.Reservation {
	t.Helper()
	r, err := s.Reserve(context.Background(), key, l, now)
	if err != nil {
		t.Fatalf("Reserve(%q): %v", key, err)
	}
	return r
}

func throttleCountsThenRefuses(t *testing.T, s throttleStores) {
	l := auth.AttemptLimit{Max: 3, Window: time.Minute}
	for i := 1; i <= 3; i++ {
		r := reserve(t, s.store, s.key, l, throttleEpoch.Add(time.Duration(i)*time.Second))
		if !r.OK || r.Count != i || !r.Start.Equal(throttleEpoch.Add(time.Second)) || r.RetryAfter != 0 {
			t.Fatalf("attempt %d: %+v, want OK, count %d, window from the first attempt", i, r, i)
		}
	}
	for range 2 { // refusals are not counted and do not move the window
		r := reserve(t, s.store, s.key, l, throttleEpoch.Add(21*time.Second))
		if r.OK || r.Count != 3 || r.RetryAfter != 40*time.Second {
			t.Fatalf("4th attempt: %+v, want refused, count 3, retry after 40s", r)
		}
	}
}

func throttleWindowCloses(t *testing.T, s throttleStores) {
	l := auth.AttemptLimit{Max: 1, Window: time.Minute}
	reserve(t, s.store, s.key, l, throttleEpoch)
	if r := reserve(t, s.store, s.key, l, throttleEpoch.Add(time.Minute-time.Microsecond)); r.OK || r.RetryAfter != time.Microsecond {
		t.Fatalf("1 µs before the end: %+v", r)
	}
	end := throttleEpoch.Add(time.Minute)
	if r := reserve(t, s.store, s.key, l, end); !r.OK || r.Count != 1 || !r.Start.Equal(end) {
		t.Fatalf("at the window's end: %+v, want a new window", r)
	}
}

func throttleRelease(t *testing.T, s throttleStores) {
	ctx := context.Background()
	l := auth.AttemptLimit{Max: 2, Window: time.Minute}
	r1 := reserve(t, s.store, s.key, l, throttleEpoch)
	reserve(t, s.store, s.key, l, throttleEpoch)
	if err := s.store.Release(ctx, s.key, r1.Start); err != nil {
		t.Fatal(err)
	}
	if r := reserve(t, s.store, s.key, l, throttleEpoch.Add(time.Second)); !r.OK || r.Count != 2 {
		t.Fatalf("after a release: %+v, want OK with count 2", r)
	}
	// Never below zero, and unknown keys are fine.
	for range 4 {
		if err := s.store.Release(ctx, s.key, r1.Start); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.store.Release(ctx, s.key+"-unknown", r1.Start); err != nil {
		t.Fatalf("Release of an unknown key: %v", err)
	}
	for i := 1; i <= 2; i++ {
		if r := reserve(t, s.store, s.key, l, throttleEpoch.Add(2*time.Second)); !r.OK || r.Count != i {
			t.Fatalf("after releasing everything, attempt %d: %+v", i, r)
		}
	}
	if r := reserve(t, s.store, s.key, l, throttleEpoch.Add(2*time.Second)); r.OK {
		t.Fatalf("third attempt: %+v, want refused", r)
	}
}

func throttleReleaseOldWindow(t *testing.T, s throttleStores) {
	ctx := context.Background()
	l := auth.AttemptLimit{Max: 1, Window: time.Minute}
	old := reserve(t, s.store, s.key, l, throttleEpoch)
	cur := reserve(t, s.store, s.key, l, throttleEpoch.Add(2*time.Minute))
	if !cur.OK || cur.Start.Equal(old.Start) {
		t.Fatalf("second window: %+v", cur)
	}
	if err := s.store.Release(ctx, s.key, old.Start); err != nil {
		t.Fatal(err)
	}
	if r := reserve(t, s.store, s.key, l, throttleEpoch.Add(2*time.Minute+time.Second)); r.OK {
		t.Fatalf("a release for the closed window gave back an attempt of the open one: %+v", r)
	}
}

func throttleReset(t *testing.T, s throttleStores) {
	ctx := context.Background()
	l := auth.AttemptLimit{Max: 1, Window: time.Hour}
	reserve(t, s.store, s.key, l, throttleEpoch)
	if err := s.store.Reset(ctx, s.key); err != nil {
		t.Fatal(err)
	}
	if r := reserve(t, s.store, s.key, l, throttleEpoch.Add(time.Second)); !r.OK || r.Count != 1 || !r.Start.Equal(throttleEpoch.Add(time.Second)) {
		t.Fatalf("after Reset: %+v", r)
	}
	if err := s.store.Reset(ctx, s.key+"-unknown"); err != nil {
		t.Fatalf("Reset of an unknown key: %v", err)
	}
}

func throttleKeysIndependent(t *testing.T, s throttleStores) {
	l := auth.AttemptLimit{Max: 1, Window: time.Hour}
	reserve(t, s.store, s.key+"a", l, throttleEpoch)
	if r := reserve(t, s.store, s.key+"b", l, throttleEpoch); !r.OK {
		t.Fatalf("another key: %+v", r)
	}
	if r := reserve(t, s.store, s.key+"a", l, throttleEpoch); r.OK {
		t.Fatalf("the full key: %+v", r)
	}
}

func throttleAnyKeyBytes(t *testing.T, s throttleStores) {
	l := auth.AttemptLimit{Max: 1, Window: time.Hour}
	for _, k := range []string{"", "\x00nul\x00", "\xff\xfe not UTF-8", "katé", strings.Repeat("long", 300)} {
		key := s.key + k
		if r := reserve(t, s.store, key, l, throttleEpoch); !r.OK {
			t.Fatalf("key %q: first attempt %+v", k, r)
		}
		if r := reserve(t, s.store, key, l, throttleEpoch); r.OK {
			t.Fatalf("key %q: second attempt %+v", k, r)
		}
	}
	// Two keys that differ in one byte are two counters.
	if r := reserve(t, s.store, s.key+"\x00nul\x01", l, throttleEpoch); !r.OK {
		t.Fatalf("a key one byte away shares a counter: %+v", r)
	}
}

func throttleClockBehind(t *testing.T, s throttleStores) {
	l := auth.AttemptLimit{Max: 1, Window: time.Minute}
	reserve(t, s.store, s.key, l, throttleEpoch)
	r := reserve(t, s.store, s.key, l, throttleEpoch.Add(-5*time.Second)) // a peer's clock 5 s behind
	if r.OK || r.RetryAfter <= 0 || r.RetryAfter > time.Minute {
		t.Fatalf("clock behind the window's start: %+v, want refused with 0 < retry ≤ 1m", r)
	}
}

func throttleInvalidLimit(t *testing.T, s throttleStores) {
	for _, l := range []auth.AttemptLimit{{}, {Max: 0, Window: time.Minute}, {Max: 1}, {Max: 1, Window: -time.Second}, {Max: -1, Window: time.Minute}} {
		if _, err := s.store.Reserve(context.Background(), s.key, l, throttleEpoch); !errors.Is(err, auth.ErrInvalidAttemptLimit) {
			t.Fatalf("limit %+v: %v, want ErrInvalidAttemptLimit", l, err)
		}
	}
}

func throttleConcurrent(t *testing.T, s throttleStores) {
	stores := []auth.ThrottleStore{s.store}
	if s.peer != nil {
		stores = append(stores, s.peer)
	}
	l := auth.AttemptLimit{Max: 5, Window: time.Hour}
	var ok atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := stores[i%len(stores)].Reserve(context.Background(), s.key, l, throttleEpoch)
			if err != nil {
				t.Error(err)
				return
			}
			if r.OK {
				ok.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != 5 {
		t.Fatalf("40 concurrent reservations with room for 5: %d succeeded", ok.Load())
	}
}

func throttleShared(t *testing.T, s throttleStores) {
	if s.peer == nil {
		t.Skip("Stores.ThrottlePeer is nil: this backend lives in one process")
	}
	ctx := context.Background()
	l := auth.AttemptLimit{Max: 2, Window: time.Minute}
	reserve(t, s.store, s.key, l, throttleEpoch)
	r := reserve(t, s.peer, s.key, l, throttleEpoch)
	if !r.OK || r.Count != 2 {
		t.Fatalf("second attempt through the peer: %+v, want count 2", r)
	}
	if r := reserve(t, s.store, s.key, l, throttleEpoch); r.OK {
		t.Fatalf("third attempt: %+v, want refused", r)
	}
	if err := s.peer.Release(ctx, s.key, r.Start); err != nil {
		t.Fatal(err)
	}
	if r := reserve(t, s.store, s.key, l, throttleEpoch); !r.OK {
		t.Fatalf("after a release through the peer: %+v", r)
	}
	if err := s.peer.Reset(ctx, s.key); err != nil {
		t.Fatal(err)
	}
	if r := reserve(t, s.store, s.key, l, throttleEpoch); !r.OK || r.Count != 1 {
		t.Fatalf("after a reset through the peer: %+v", r)
	}
}
