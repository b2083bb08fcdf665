package apikey_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// twoInstances returns two services over one store, as two server instances over one
// database, with a shared fake clock and caches that trust an answer for an hour.
func twoInstances(t *testing.T, cfgA apikey.Config) (a, b *apikey.Service, store *spyStore, clock *fakeClock) {
	t.Helper()
	clock = storagetest.NewClock(t0)
	store = &spyStore{Store: memory.NewKeyStore()}
	cfgA.Now, cfgA.CacheTTL = clock.Now, time.Hour
	a = apikey.NewService(store, cfgA)
	b = apikey.NewService(store, apikey.Config{Now: clock.Now, CacheTTL: time.Hour})
	t.Cleanup(func() { _ = a.Close(context.Background()); _ = b.Close(context.Background()) })
	return a, b, store, clock
}

func TestInvalidateDropsACachedKey(t *testing.T) {
	a, b, _, _ := twoInstances(t, apikey.Config{})
	ctx := context.Background()
	k, plain := create(t, a, apikey.CreateParams{})
	if _, err := b.Verify(ctx, plain); err != nil { // b caches the key
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, alice, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, plain); err != nil {
		t.Fatalf("without news, b trusts its cache for CacheTTL: %v", err)
	}
	b.Invalidate(k.ID)
	if _, err := b.Verify(ctx, plain); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("after Invalidate: %v, want ErrRevoked", err)
	}
	b.Invalidate(ecoid.New(ecoid.APIKey)) // an ID never cached is no error
}

func TestOnChangeReachesAnotherInstanceAtOnce(t *testing.T) {
	var b *apikey.Service
	a, b, _, _ := twoInstances(t, apikey.Config{OnChange: func(_ context.Context, id ecoid.ID) { b.Invalidate(id) }})
	ctx := context.Background()
	k, plain := create(t, a, apikey.CreateParams{})
	if _, err := b.Verify(ctx, plain); err != nil {
		t.Fatal(err)
	}
	plain2, err := a.Rotate(ctx, alice, k.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, plain); !errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("the old secret on b after a rotation on a: %v, want ErrInvalidKey", err)
	}
	if _, err := b.Verify(ctx, plain2); err != nil {
		t.Fatalf("the new secret on b: %v", err)
	}
	if err := a.Revoke(ctx, alice, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, plain2); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("on b after a revocation on a: %v, want ErrRevoked", err)
	}
}

func TestPurgeCacheDropsEverything(t *testing.T) {
	a, b, store, _ := twoInstances(t, apikey.Config{})
	ctx := context.Background()
	var plains []string
	for range 3 {
		k, plain := create(t, a, apikey.CreateParams{})
		if _, err := b.Verify(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if err := store.Revoke(ctx, alice, k.ID, t0); err != nil { // missed by b
			t.Fatal(err)
		}
		plains = append(plains, plain)
	}
	if n := apikey.CacheLen(b); n != 3 {
		t.Fatalf("cache holds %d, want 3", n)
	}
	b.PurgeCache()
	if n := apikey.CacheLen(b); n != 0 {
		t.Fatalf("after PurgeCache the cache holds %d", n)
	}
	for _, plain := range plains {
		if _, err := b.Verify(ctx, plain); !errors.Is(err, apikey.ErrRevoked) {
			t.Fatalf("after PurgeCache: %v, want ErrRevoked", err)
		}
	}
}

// staleStore reads a record, then waits at gate before answering: the answer is
// stale when the key changed in between.
type staleStore struct {
	apikey.Store
	reading chan struct{} // closed when the record has been read
	gate    chan struct{}
	once    sync.Once
}

func (s *staleStore) Get(ctx context.Context, id ecoid.ID) (apikey.Record, error) {
	r, err := s.Store.Get(ctx, id)
	s.once.Do(func() { close(s.reading); <-s.gate })
	return r, err
}

// A lookup in flight when the news arrives must not cache the stale answer it read
// before: Invalidate and PurgeCache both fence it.
func TestInvalidationFencesLookupsInFlight(t *testing.T) {
	for name, drop := range map[string]func(*apikey.Service, ecoid.ID){
		"Invalidate": (*apikey.Service).Invalidate,
		"PurgeCache": func(s *apikey.Service, _ ecoid.ID) { s.PurgeCache() },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			mem := memory.NewKeyStore()
			store := &staleStore{Store: mem, reading: make(chan struct{}), gate: make(chan struct{})}
			s := apikey.NewService(store, apikey.Config{CacheTTL: time.Hour})
			defer s.Close(ctx)
			k, plain, err := s.Create(ctx, apikey.CreateParams{Owner: alice, Name: "k"})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error)
			go func() { _, err := s.Verify(ctx, plain); done <- err }()
			<-store.reading // the lookup has read the active key
			if err := mem.Revoke(ctx, alice, k.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			drop(s, k.ID)
			close(store.gate)
			if err := <-done; err != nil {
				t.Fatalf("the racing lookup: %v", err) // it read the key before the revocation
			}
			if _, err := s.Verify(ctx, plain); !errors.Is(err, apikey.ErrRevoked) {
				t.Fatalf("the stale answer was cached: %v, want ErrRevoked", err)
			}
		})
	}
}

// failingWrites fails Revoke and Rotate after the store has applied them, as a
// connection lost after the commit would.
type failingWrites struct{ apikey.Store }

func (f failingWrites) Revoke(ctx context.Context, owner, id ecoid.ID, at time.Time) error {
	if err := f.Store.Revoke(ctx, owner, id, at); err != nil {
		return err
	}
	return errDown
}

func TestOnChangeCalls(t *testing.T) {
	var mu sync.Mutex
	var calls []ecoid.ID
	var ctxErrs []error
	onChange := func(ctx context.Context, id ecoid.ID) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, id)
		ctxErrs = append(ctxErrs, ctx.Err())
	}
	s, _, _ := newService(t, apikey.Config{OnChange: onChange})
	took := func() []ecoid.ID {
		mu.Lock()
		defer mu.Unlock()
		out := calls
		calls = nil
		return out
	}
	ctx := context.Background()
	k, _ := create(t, s, apikey.CreateParams{})
	if len(took()) != 0 {
		t.Fatal("Create called OnChange")
	}
	if _, err := s.Rotate(ctx, alice, k.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_ = s.Revoke(canceled, alice, k.ID) // the memory store ignores ctx: this commits
	if got := took(); len(got) != 2 || got[0] != k.ID || got[1] != k.ID {
		t.Fatalf("rotate then revoke: OnChange got %v, want %s twice", got, k.ID)
	}
	if ctxErrs[1] != nil {
		t.Fatalf("OnChange got a canceled context: %v", ctxErrs[1])
	}
	// Nothing changed: no news.
	if _, err := s.Rotate(ctx, alice, k.ID, 0); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, bob, k.ID); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Rotate(ctx, alice, k.ID, -time.Second); !errors.Is(err, apikey.ErrInvalidInput) {
		t.Fatal(err)
	}
	if got := took(); len(got) != 0 {
		t.Fatalf("OnChange called for changes that did not happen: %v", got)
	}

	// A store error leaves the outcome unknown: the news goes out.
	f := apikey.NewService(failingWrites{memory.NewKeyStore()}, apikey.Config{OnChange: onChange})
	defer f.Close(ctx)
	k2, _, err := f.Create(ctx, apikey.CreateParams{Owner: alice, Name: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Revoke(ctx, alice, k2.ID); !errors.Is(err, errDown) {
		t.Fatalf("revoke: %v", err)
	}
	if got := took(); len(got) != 1 || got[0] != k2.ID {
		t.Fatalf("after a store error OnChange got %v", got)
	}
}

// A cached key stops verifying at its expiry to the microsecond, with no lookup, however
// long the cache would trust it.
func TestCachedKeyExpiresExactly(t *testing.T) {
	s, store, clock := newService(t, apikey.Config{CacheTTL: time.Hour})
	ctx := context.Background()
	_, plain := create(t, s, apikey.CreateParams{ExpiresAt: t0.Add(10 * time.Second)})
	if _, err := s.Verify(ctx, plain); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10*time.Second - time.Microsecond)
	if _, err := s.Verify(ctx, plain); err != nil {
		t.Fatalf("a microsecond before expiry: %v", err)
	}
	clock.Advance(time.Microsecond)
	if _, err := s.Verify(ctx, plain); !errors.Is(err, apikey.ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
	if n := store.gets.Load(); n != 1 {
		t.Fatalf("%d lookups, want 1: expiry is decided from the cache", n)
	}
}
