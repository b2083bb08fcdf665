package apikey_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// spyStore counts lookups and can fail or be slowed down.
type spyStore struct {
	apikey.Store
	gets     atomic.Int64
	fail     atomic.Bool
	getGate  chan struct{} // when not nil, Get waits for it
	markMu   sync.Mutex
	marks    [][]apikey.Use
	markFail atomic.Bool
}

var errDown = errors.New("store is down")

func (s *spyStore) Get(ctx context.Context, id ecoid.ID) (apikey.Record, error) {
	s.gets.Add(1)
	if s.getGate != nil {
		<-s.getGate
	}
	if s.fail.Load() {
		return apikey.Record{}, errDown
	}
	return s.Store.Get(ctx, id)
}

func (s *spyStore) MarkUsed(ctx context.Context, uses []apikey.Use) error {
	s.markMu.Lock()
	s.marks = append(s.marks, append([]apikey.Use(nil), uses...))
	s.markMu.Unlock()
	if s.markFail.Load() {
		return errDown
	}
	return s.Store.MarkUsed(ctx, uses)
}

func (s *spyStore) batches() [][]apikey.Use {
	s.markMu.Lock()
	defer s.markMu.Unlock()
	return append([][]apikey.Use(nil), s.marks...)
}

// fakeClock is the shared settable test clock.
type fakeClock = storagetest.Clock

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

func newService(t *testing.T, cfg apikey.Config) (*apikey.Service, *spyStore, *fakeClock) {
	t.Helper()
	clock := storagetest.NewClock(t0)
	store := &spyStore{Store: memory.NewKeyStore()}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	if cfg.UsedInterval == 0 {
		cfg.UsedInterval = time.Hour // tests flush through Close
	}
	s := apikey.NewService(store, cfg)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, store, clock
}

var alice, bob = ecoid.New(ecoid.User), ecoid.New(ecoid.User)

func create(t *testing.T, s *apikey.Service, p apikey.CreateParams) (apikey.Key, string) {
	t.Helper()
	if p.Owner == "" {
		p.Owner = alice
	}
	if p.Name == "" {
		p.Name = "test"
	}
	k, plain, err := s.Create(context.Background(), p)
	if err != nil {
		t.Fatalf("Create(%+v): %v", p, err)
	}
	return k, plain
}

func TestCreateAndVerify(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	ctx := context.Background()
	k, plain := create(t, s, apikey.CreateParams{Name: "  ci  ", Scopes: []string{"read", "write", "read"}})
	if k.ID.Type() != ecoid.APIKey || k.Owner != alice || k.Name != "ci" || k.Status != apikey.Active ||
		k.RateLimitPerMinute != 60 || !k.CreatedAt.Equal(t0) || strings.Join(k.Scopes, ",") != "read,write" {
		t.Fatalf("created %+v", k)
	}
	if !strings.HasPrefix(plain, string(k.ID)+".") {
		t.Fatalf("plain key %q does not start with its ID", plain)
	}
	got, err := s.Verify(ctx, plain)
	if err != nil || got.ID != k.ID || got.Owner != alice || !got.HasScope("write") || got.HasScope("admin") {
		t.Fatalf("Verify: %+v, %v", got, err)
	}
	list, err := s.List(ctx, alice)
	if err != nil || len(list) != 1 || list[0].ID != k.ID {
		t.Fatalf("List: %+v, %v", list, err)
	}
	if list, _ := s.List(ctx, bob); list == nil || len(list) != 0 {
		t.Fatalf("List of another owner: %#v", list)
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	ok := apikey.CreateParams{Owner: alice, Name: "n"}
	cases := map[string]func(p *apikey.CreateParams){
		"owner":                      func(p *apikey.CreateParams) { p.Owner = "nobody" },
		"name":                       func(p *apikey.CreateParams) { p.Name = "   " },
		"name too long":              func(p *apikey.CreateParams) { p.Name = strings.Repeat("é", 101) },
		"name control":               func(p *apikey.CreateParams) { p.Name = "a\nb" },
		"name utf8":                  func(p *apikey.CreateParams) { p.Name = "a\xffb" },
		"name bidi override":         func(p *apikey.CreateParams) { p.Name = "ab\u202ecd" },
		"name isolate":               func(p *apikey.CreateParams) { p.Name = "\u2066x\u2069" },
		"scopes empty":               func(p *apikey.CreateParams) { p.Scopes = []string{""} },
		"scopes chars":               func(p *apikey.CreateParams) { p.Scopes = []string{"Read"} },
		"scopes long":                func(p *apikey.CreateParams) { p.Scopes = []string{strings.Repeat("a", 65)} },
		"scopes many":                func(p *apikey.CreateParams) { p.Scopes = make([]string, 33) },
		"rate_limit_per_minute":      func(p *apikey.CreateParams) { p.RateLimitPerMinute = -1 },
		"rate_limit_per_minute high": func(p *apikey.CreateParams) { p.RateLimitPerMinute = 1_000_001 },
		"expires_at":                 func(p *apikey.CreateParams) { p.ExpiresAt = t0.Add(-time.Second) },
	}
	for name, mutate := range cases {
		p := ok
		mutate(&p)
		_, plain, err := s.Create(context.Background(), p)
		var ie *apikey.InputError
		if !errors.Is(err, apikey.ErrInvalidInput) || !errors.As(err, &ie) || plain != "" {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if field := strings.Fields(name)[0]; ie.Field != field || !strings.Contains(ie.Error(), field) {
			t.Errorf("%s: field %q: %v", name, ie.Field, ie)
		}
	}
	for _, n := range []int{1, 1_000_000} {
		if k, _ := create(t, s, apikey.CreateParams{RateLimitPerMinute: n}); k.RateLimitPerMinute != n {
			t.Fatalf("limit %d: %d", n, k.RateLimitPerMinute)
		}
	}
}

// A verified key is answered from the cache without Parse's checks; a string that differs
// from it in any one byte, the dot and the checksum included, is still refused, with the
// error Parse gives it.
func TestVerifyCachedKeyRefusesEveryAlteredByte(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	ctx := context.Background()
	_, plain := create(t, s, apikey.CreateParams{})
	for range 2 { // the second verification knows the fast hash
		if _, err := s.Verify(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	for i := range len(plain) {
		for _, c := range []byte{'.', '0', 'a', 'Z', '_', '!'} {
			if plain[i] == c {
				continue
			}
			bad := plain[:i] + string(c) + plain[i+1:]
			_, err := s.Verify(ctx, bad)
			if err == nil {
				t.Fatalf("byte %d changed to %q: verified", i, c)
			}
			if _, perr := apikey.Parse(bad); (perr != nil) != errors.Is(err, apikey.ErrMalformed) {
				t.Fatalf("byte %d changed to %q: Verify %v, Parse %v", i, c, err, perr)
			}
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	s, store, clock := newService(t, apikey.Config{})
	ctx := context.Background()
	_, plain := create(t, s, apikey.CreateParams{ExpiresAt: t0.Add(time.Hour)})

	// Garbage and typos never reach the store.
	for _, bad := range []string{"", "x", plain[:len(plain)-1] + "!", strings.ToUpper(plain)} {
		if _, err := s.Verify(ctx, bad); !errors.Is(err, apikey.ErrMalformed) {
			t.Fatalf("Verify(%q): %v", bad, err)
		}
	}
	if n := store.gets.Load(); n != 0 {
		t.Fatalf("malformed keys caused %d lookups", n)
	}

	// A well-formed key of an unknown ID, and a wrong secret for a known ID.
	other := strings.Replace(plain, plain[:ecoid.Len], string(ecoid.New(ecoid.APIKey)), 1)
	if _, err := s.Verify(ctx, fixChecksum(t, other)); !errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("unknown ID: %v", err)
	}
	if _, err := s.Verify(ctx, otherSecret(t, plain)); !errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("wrong secret: %v", err)
	}

	if _, err := s.Verify(ctx, plain); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := s.Verify(ctx, plain); !errors.Is(err, apikey.ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
}

// otherSecret returns a well-formed key with plain's ID and another secret.
func otherSecret(t *testing.T, plain string) string {
	t.Helper()
	b := []byte(plain)
	for i := ecoid.Len + 1; i < ecoid.Len+10; i++ {
		b[i] = 'Q'
	}
	return fixChecksum(t, string(b))
}

// fixChecksum recomputes the checksum of an edited plain key (through the test hook in
// export_test.go), so the result is well-formed.
func fixChecksum(t *testing.T, s string) string {
	t.Helper()
	out := apikey.WithChecksum(s)
	if _, err := apikey.Parse(out); err != nil {
		t.Fatalf("fixChecksum: %v", err)
	}
	return out
}

func TestRevokeAndRotate(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	ctx := context.Background()
	k, plain := create(t, s, apikey.CreateParams{})
	if _, err := s.Verify(ctx, plain); err != nil { // cached now
		t.Fatal(err)
	}

	// Another owner sees "not found" and changes nothing.
	if err := s.Revoke(ctx, bob, k.ID); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("revoke by bob: %v", err)
	}
	if _, err := s.Rotate(ctx, bob, k.ID, 0); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("rotate by bob: %v", err)
	}
	if _, err := s.Rotate(ctx, alice, ecoid.New(ecoid.User), 0); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("rotate of a user ID: %v", err)
	}
	if _, err := s.Rotate(ctx, alice, k.ID, -time.Second); !errors.Is(err, apikey.ErrInvalidInput) {
		t.Fatalf("negative grace: %v", err)
	}
	if _, err := s.Verify(ctx, plain); err != nil {
		t.Fatalf("after bob's attempts: %v", err)
	}

	// Rotation: same ID, new secret, the old one dead at once despite the cache.
	plain2, err := s.Rotate(ctx, alice, k.ID, 0)
	if err != nil || !strings.HasPrefix(plain2, string(k.ID)+".") || plain2 == plain {
		t.Fatalf("Rotate: %q, %v", plain2, err)
	}
	if _, err := s.Verify(ctx, plain); !errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("old secret after rotation: %v", err)
	}
	if got, err := s.Verify(ctx, plain2); err != nil || got.ID != k.ID || got.RotatedAt.IsZero() {
		t.Fatalf("new secret: %+v, %v", got, err)
	}

	// Revocation: dead at once despite the cache; twice is fine; no rotation after.
	if err := s.Revoke(ctx, alice, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, plain2); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("after revoke: %v", err)
	}
	if err := s.Revoke(ctx, alice, k.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := s.Rotate(ctx, alice, k.ID, 0); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("rotate a revoked key: %v", err)
	}
	list, _ := s.List(ctx, alice)
	if len(list) != 1 || list[0].Status != apikey.Revoked {
		t.Fatalf("List after revoke: %+v", list)
	}
}

func TestRotateWithGrace(t *testing.T) {
	s, _, clock := newService(t, apikey.Config{})
	ctx := context.Background()
	k, plain := create(t, s, apikey.CreateParams{})
	plain2, err := s.Rotate(ctx, alice, k.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, plain2} {
		if _, err := s.Verify(ctx, p); err != nil {
			t.Fatalf("during grace: %v", err)
		}
	}
	clock.Advance(time.Minute)
	if _, err := s.Verify(ctx, plain); !errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("old secret after grace: %v", err)
	}
	if _, err := s.Verify(ctx, plain2); err != nil {
		t.Fatalf("new secret after grace: %v", err)
	}
}

func TestVerifyCache(t *testing.T) {
	s, store, clock := newService(t, apikey.Config{CacheTTL: 10 * time.Second, NegativeTTL: 2 * time.Second})
	ctx := context.Background()
	k, plain := create(t, s, apikey.CreateParams{})
	for i := 0; i < 5; i++ {
		if _, err := s.Verify(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.gets.Load(); n != 1 {
		t.Fatalf("%d lookups for 5 verifications, want 1", n)
	}

	// Another process revokes: this one notices within CacheTTL.
	if err := store.Revoke(ctx, alice, k.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, plain); err != nil {
		t.Fatalf("within the TTL the cached answer stands: %v", err)
	}
	clock.Advance(10 * time.Second)
	if _, err := s.Verify(ctx, plain); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("after the TTL: %v", err)
	}

	// Unknown well-formed keys are remembered for NegativeTTL.
	ghost := fixChecksum(t, strings.Replace(plain, plain[:ecoid.Len], string(ecoid.New(ecoid.APIKey)), 1))
	before := store.gets.Load()
	for i := 0; i < 3; i++ {
		if _, err := s.Verify(ctx, ghost); !errors.Is(err, apikey.ErrInvalidKey) {
			t.Fatal(err)
		}
	}
	if n := store.gets.Load() - before; n != 1 {
		t.Fatalf("%d lookups for 3 verifications of an unknown key, want 1", n)
	}
	clock.Advance(2 * time.Second)
	s.Verify(ctx, ghost)
	if n := store.gets.Load() - before; n != 2 {
		t.Fatalf("after NegativeTTL: %d lookups, want 2", n)
	}
}

func TestVerifySeesRotationByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	clock := storagetest.NewClock(t0)
	store := &spyStore{Store: memory.NewKeyStore()}
	a := apikey.NewService(store, apikey.Config{Now: clock.Now})
	b := apikey.NewService(store, apikey.Config{Now: clock.Now})
	defer a.Close(ctx)
	defer b.Close(ctx)
	k, plain, err := a.Create(ctx, apikey.CreateParams{Owner: alice, Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, plain); err != nil { // b caches the key
		t.Fatal(err)
	}
	plain2, err := a.Rotate(ctx, alice, k.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	// b asks the store again for the unknown secret, but at most once per second.
	if _, err := b.Verify(ctx, plain2); !errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("within MismatchRefresh: %v", err)
	}
	clock.Advance(time.Second)
	if got, err := b.Verify(ctx, plain2); err != nil || got.ID != k.ID {
		t.Fatalf("after MismatchRefresh: %v", err)
	}
	gets := store.gets.Load()
	for i := 0; i < 10; i++ {
		b.Verify(ctx, otherSecret(t, plain))
	}
	if n := store.gets.Load() - gets; n != 0 {
		t.Fatalf("wrong secrets within a second caused %d lookups", n)
	}
}

func TestVerifyCollapsesConcurrentMisses(t *testing.T) {
	s, store, _ := newService(t, apikey.Config{})
	ctx := context.Background()
	_, plain := create(t, s, apikey.CreateParams{})
	store.getGate = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Verify(ctx, plain)
			errs <- err
		}()
	}
	for store.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others queue behind the first lookup
	close(store.getGate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := store.gets.Load(); n != 1 {
		t.Fatalf("%d lookups for 50 concurrent verifications, want 1", n)
	}
}

// TestVerifyFreshKeysUsedByManyRequestsAtOnce verifies each of many new keys from several
// goroutines at the same moment: whichever request caches a key, or learns its fast hash,
// while another is between its two cache lookups, every request with a valid key is
// served. (A request that saw the entry change between them was refused as invalid.)
func TestVerifyFreshKeysUsedByManyRequestsAtOnce(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	for round := range 3 { // each round a race per key: with the bug, nearly every run failed
		var plains []string
		for range 1000 {
			_, p := create(t, s, apikey.CreateParams{Owner: ecoid.New(ecoid.User)})
			plains = append(plains, p)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, p := range plains {
					if _, err := s.Verify(context.Background(), p); err != nil {
						t.Errorf("round %d, goroutine %d, key %d: %v", round, g, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

func TestVerifyWaitingForALookupHonoursContext(t *testing.T) {
	s, store, _ := newService(t, apikey.Config{})
	_, plain := create(t, s, apikey.CreateParams{})
	store.getGate = make(chan struct{})
	defer close(store.getGate)
	go s.Verify(context.Background(), plain)
	for store.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Verify(ctx, plain); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting follower: %v", err)
	}
}

func TestVerifyStoreErrors(t *testing.T) {
	s, store, _ := newService(t, apikey.Config{})
	_, plain := create(t, s, apikey.CreateParams{})
	store.fail.Store(true)
	_, err := s.Verify(context.Background(), plain)
	if !errors.Is(err, errDown) || errors.Is(err, apikey.ErrInvalidKey) {
		t.Fatalf("store error: %v", err)
	}
	store.fail.Store(false)
	if _, err := s.Verify(context.Background(), plain); err != nil {
		t.Fatalf("store errors must not be cached: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	s, store, _ := newService(t, apikey.Config{CacheSize: 64, MaxKeysPerOwner: -1})
	ctx := context.Background()
	plains := make([]string, 300)
	for i := range plains {
		_, plains[i] = create(t, s, apikey.CreateParams{})
		if _, err := s.Verify(ctx, plains[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n := apikey.CacheLen(s); n > 64+64 { // one entry per shard may round up
		t.Fatalf("cache holds %d entries, bound 64", n)
	}
	// Evicted keys still verify, through the store.
	before := store.gets.Load()
	for _, p := range plains {
		if _, err := s.Verify(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if store.gets.Load() == before {
		t.Fatal("no key was evicted")
	}
}

func TestNoCaching(t *testing.T) {
	s, store, _ := newService(t, apikey.Config{CacheTTL: -1})
	_, plain := create(t, s, apikey.CreateParams{})
	for i := 0; i < 3; i++ {
		if _, err := s.Verify(context.Background(), plain); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.gets.Load(); n != 3 {
		t.Fatalf("%d lookups with caching off, want 3", n)
	}
}

func TestLastUsedIsWrittenInBatches(t *testing.T) {
	s, store, clock := newService(t, apikey.Config{})
	ctx := context.Background()
	a, pa := create(t, s, apikey.CreateParams{})
	b, pb := create(t, s, apikey.CreateParams{})
	for i := 0; i < 100; i++ {
		clock.Advance(50 * time.Millisecond)
		if _, err := s.Verify(ctx, pa); err != nil {
			t.Fatal(err)
		}
	}
	s.Verify(ctx, pb)
	if n := len(store.batches()); n != 0 {
		t.Fatalf("%d writes before the interval", n)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	batches := store.batches()
	if len(batches) != 1 || len(batches[0]) != 2 {
		t.Fatalf("batches: %+v, want one batch of two keys", batches)
	}
	list, _ := s.List(ctx, alice)
	used := map[ecoid.ID]time.Time{}
	for _, k := range list {
		used[k.ID] = k.LastUsedAt
	}
	// Uses are recorded to the second: a's last is within a second of its latest use.
	if last := t0.Add(5 * time.Second); used[a.ID].After(last) || used[a.ID].Before(last.Add(-time.Second)) || !used[b.ID].Equal(last) {
		t.Fatalf("last used: %v", used)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestLastUsedFlushesOnTimerAndReportsErrors(t *testing.T) {
	clock := storagetest.NewClock(t0)
	store := &spyStore{Store: memory.NewKeyStore()}
	s := apikey.NewService(store, apikey.Config{Now: clock.Now, UsedInterval: 5 * time.Millisecond, UsedBatch: 1})
	ctx := context.Background()
	_, plain, _ := s.Create(ctx, apikey.CreateParams{Owner: alice, Name: "k"})
	_, plain2, _ := s.Create(ctx, apikey.CreateParams{Owner: alice, Name: "k2"})
	s.Verify(ctx, plain)
	deadline := time.Now().Add(5 * time.Second)
	for len(store.batches()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(store.batches()) == 0 {
		t.Fatal("the background writer never wrote")
	}
	store.markFail.Store(true)
	clock.Advance(time.Second)
	s.Verify(ctx, plain2)
	time.Sleep(20 * time.Millisecond)
	s.Verify(ctx, plain)
	if err := s.Close(ctx); err != nil && !errors.Is(err, errDown) {
		t.Fatalf("Close: %v", err)
	}
}

func TestCloseHonoursContext(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The writer stops at once, so a cancelled ctx may or may not win; both are fine,
	// but Close must return.
	_ = s.Close(ctx)
}

// A last_used_at batch the store refuses is kept and written once the store is back;
// Close after an outage that is over reports nothing.
func TestLastUsedSurvivesAStoreOutage(t *testing.T) {
	clock := storagetest.NewClock(t0)
	store := &spyStore{Store: memory.NewKeyStore()}
	s := apikey.NewService(store, apikey.Config{Now: clock.Now, UsedInterval: 5 * time.Millisecond})
	ctx := context.Background()
	k, plain, _ := s.Create(ctx, apikey.CreateParams{Owner: alice, Name: "k"})
	store.markFail.Store(true)
	clock.Advance(time.Minute)
	if _, err := s.Verify(ctx, plain); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("two failed writes", func() bool { return len(store.batches()) >= 2 })
	for _, b := range store.batches() {
		if len(b) != 1 || b[0].ID != k.ID {
			t.Fatalf("a failed batch was not retried whole: %+v", store.batches())
		}
	}
	store.markFail.Store(false)
	waitFor("last_used_at after the store recovered", func() bool {
		list, _ := s.List(ctx, alice)
		return len(list) == 1 && list[0].LastUsedAt.Equal(t0.Add(time.Minute))
	})
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close after a recovered outage: %v", err)
	}
}

// Close retries its last write, so a store back by then loses nothing.
func TestCloseRetriesItsLastWrite(t *testing.T) {
	s, store, clock := newService(t, apikey.Config{})
	ctx := context.Background()
	k, plain := create(t, s, apikey.CreateParams{})
	clock.Advance(time.Minute)
	s.Verify(ctx, plain)
	store.markFail.Store(true)
	go func() {
		for len(store.batches()) < 2 {
			time.Sleep(time.Millisecond)
		}
		store.markFail.Store(false)
	}()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	list, _ := s.List(ctx, alice)
	if len(list) != 1 || list[0].ID != k.ID || !list[0].LastUsedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last used after Close: %+v", list)
	}
}

// More busy keys than a batch holds: each is written once per interval, not rewritten
// back to back as soon as a full batch has gone out.
func TestBusyKeysAreWrittenOncePerInterval(t *testing.T) {
	s, store, clock := newService(t, apikey.Config{UsedBatch: 10})
	var plains []string
	for range 30 {
		_, p := create(t, s, apikey.CreateParams{})
		plains = append(plains, p)
	}
	written := func() int {
		n := 0
		for _, b := range store.batches() {
			n += len(b)
		}
		return n
	}
	for round := range 5 {
		for _, p := range plains {
			if _, err := s.Verify(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(2 * time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for round == 0 && written() < 30 { // three full batches go out at once
			if time.Now().After(deadline) {
				t.Fatalf("the first uses were not written: %d", written())
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // let the writer take what was queued
	}
	if n := written(); n != 30 {
		t.Fatalf("30 busy keys within one interval were written %d times", n)
	}
}
