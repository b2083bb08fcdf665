package storagetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var keyEpoch = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// newRecord returns a record for owner created at keyEpoch + offset, with a hash derived
// from seed.
func newRecord(owner ecoid.ID, offset time.Duration, seed string) apikey.Record {
	at := keyEpoch.Add(offset)
	return apikey.Record{
		Key: apikey.Key{
			ID:                 ecoid.NewAt(ecoid.APIKey, at),
			Owner:              owner,
			Name:               "key " + seed,
			Scopes:             []string{"read", "write"},
			Status:             apikey.Active,
			RateLimitPerMinute: 60,
			CreatedAt:          at,
		},
		Hash: sha256.Sum256([]byte(seed)),
	}
}

func testAPIKeys(t *testing.T, newStores NewStores) {
	ctx := context.Background()
	setup := func(t *testing.T) apikey.Store {
		t.Helper()
		return provided(t, newStores(t).APIKeys, "APIKeys")
	}
	get := func(t *testing.T, s apikey.Store, id ecoid.ID) apikey.Record {
		t.Helper()
		r, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		return r
	}
	owner := ecoid.New(ecoid.User)
	stranger := ecoid.New(ecoid.User)

	t.Run("CreateThenGet", func(t *testing.T) {
		s := setup(t)
		r := newRecord(owner, 0, "a")
		r.ExpiresAt = keyEpoch.Add(24 * time.Hour)
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, r.ID); !reflect.DeepEqual(got, r) {
			t.Fatalf("Get returned\n%+v\nwant\n%+v", got, r)
		}
	})

	t.Run("CreateKeepsEmptyScopesAndZeroTimes", func(t *testing.T) {
		s := setup(t)
		r := newRecord(owner, 0, "a")
		r.Scopes = []string{}
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		got := get(t, s, r.ID)
		if got.Scopes == nil || len(got.Scopes) != 0 {
			t.Fatalf("scopes: %#v, want an empty non-nil slice", got.Scopes)
		}
		if !got.ExpiresAt.IsZero() || !got.LastUsedAt.IsZero() || !got.RotatedAt.IsZero() || !got.PrevHash.IsZero() || !got.PrevValidUntil.IsZero() {
			t.Fatalf("zero times or hashes did not survive: %+v", got)
		}
	})

	t.Run("CreateDuplicateIDConflicts", func(t *testing.T) {
		s := setup(t)
		r := newRecord(owner, 0, "a")
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		r2 := newRecord(stranger, time.Second, "b")
		r2.ID = r.ID
		if err := s.Create(ctx, r2, 0); !errors.Is(err, apikey.ErrConflict) {
			t.Fatalf("duplicate ID: %v, want ErrConflict", err)
		}
		if got := get(t, s, r.ID); got.Owner != owner {
			t.Fatal("a conflicting Create changed the stored key")
		}
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		s := setup(t)
		if _, err := s.Get(ctx, ecoid.New(ecoid.APIKey)); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("unknown ID: %v, want ErrNotFound", err)
		}
	})

	t.Run("ResultsAreCopies", func(t *testing.T) {
		s := setup(t)
		r := newRecord(owner, 0, "a")
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		r.Scopes[0] = "mutated"
		got := get(t, s, r.ID)
		got.Scopes[1] = "mutated"
		if again := get(t, s, r.ID); again.Scopes[0] != "read" || again.Scopes[1] != "write" {
			t.Fatalf("the store shares slices with its callers: %v", again.Scopes)
		}
	})

	t.Run("ListOwnKeysOldestFirst", func(t *testing.T) {
		s := setup(t)
		if keys, err := s.List(ctx, owner, "", 0); err != nil || keys == nil || len(keys) != 0 {
			t.Fatalf("empty List: %v %#v", err, keys)
		}
		var want []apikey.Key
		for i, seed := range []string{"c", "a", "b"} {
			r := newRecord(owner, time.Duration(3-i)*time.Minute, seed)
			if err := s.Create(ctx, r, 0); err != nil {
				t.Fatal(err)
			}
			want = append([]apikey.Key{r.Key}, want...)
		}
		if err := s.Create(ctx, newRecord(stranger, 0, "x"), 0); err != nil {
			t.Fatal(err)
		}
		got, err := s.List(ctx, owner, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("List returned\n%+v\nwant\n%+v", got, want)
		}
	})

	t.Run("RevokeOwnKey", func(t *testing.T) {
		s := setup(t)
		r := newRecord(owner, 0, "a")
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, stranger, r.ID, keyEpoch); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("revoke by another owner: %v, want ErrNotFound", err)
		}
		if get(t, s, r.ID).Status != apikey.Active {
			t.Fatal("another owner revoked the key")
		}
		if err := s.Revoke(ctx, owner, ecoid.New(ecoid.APIKey), keyEpoch); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("revoke of an unknown key: %v, want ErrNotFound", err)
		}
		for i := 0; i < 2; i++ {
			if err := s.Revoke(ctx, owner, r.ID, keyEpoch.Add(time.Minute)); err != nil {
				t.Fatalf("revoke %d: %v", i+1, err)
			}
		}
		if got := get(t, s, r.ID); got.Status != apikey.Revoked || got.Hash != r.Hash {
			t.Fatalf("after revoke: %+v", got)
		}
	})

	t.Run("RotateReplacesTheHash", func(t *testing.T) {
		s := setup(t)
		r := newRecord(owner, 0, "a")
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		at := keyEpoch.Add(time.Hour)
		h2 := apikey.Hash(sha256.Sum256([]byte("second")))
		if err := s.Rotate(ctx, stranger, r.ID, h2, time.Time{}, at); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("rotate by another owner: %v, want ErrNotFound", err)
		}
		if err := s.Rotate(ctx, owner, ecoid.New(ecoid.APIKey), h2, time.Time{}, at); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("rotate of an unknown key: %v, want ErrNotFound", err)
		}
		if err := s.Rotate(ctx, owner, r.ID, h2, time.Time{}, at); err != nil {
			t.Fatal(err)
		}
		got := get(t, s, r.ID)
		if got.Hash != h2 || !got.PrevHash.IsZero() || !got.PrevValidUntil.IsZero() || !got.RotatedAt.Equal(at) {
			t.Fatalf("after rotation without grace: %+v", got)
		}
		if got.ID != r.ID || got.Name != r.Name || got.Status != apikey.Active {
			t.Fatalf("rotation changed more than the secret: %+v", got)
		}

		// With a grace period the replaced hash stays, until then.
		h3 := apikey.Hash(sha256.Sum256([]byte("third")))
		until := at.Add(2 * time.Hour)
		if err := s.Rotate(ctx, owner, r.ID, h3, until, at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got = get(t, s, r.ID)
		if got.Hash != h3 || got.PrevHash != h2 || !got.PrevValidUntil.Equal(until) {
			t.Fatalf("after rotation with grace: %+v", got)
		}
		// A rotation without grace clears it.
		h4 := apikey.Hash(sha256.Sum256([]byte("fourth")))
		if err := s.Rotate(ctx, owner, r.ID, h4, time.Time{}, at.Add(90*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got = get(t, s, r.ID); got.Hash != h4 || !got.PrevHash.IsZero() || !got.PrevValidUntil.IsZero() {
			t.Fatalf("grace was not cleared: %+v", got)
		}
	})

	t.Run("RotateRevokedKeyFails", func(t *testing.T) {
		s := setup(t)
		r := newRecord(owner, 0, "a")
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, owner, r.ID, keyEpoch); err != nil {
			t.Fatal(err)
		}
		h2 := apikey.Hash(sha256.Sum256([]byte("second")))
		if err := s.Rotate(ctx, owner, r.ID, h2, time.Time{}, keyEpoch); !errors.Is(err, apikey.ErrRevoked) {
			t.Fatalf("rotate a revoked key: %v, want ErrRevoked", err)
		}
		if get(t, s, r.ID).Hash != r.Hash {
			t.Fatal("a failed rotation changed the hash")
		}
	})

	t.Run("MarkUsedKeepsTheLatest", func(t *testing.T) {
		s := setup(t)
		a, b := newRecord(owner, 0, "a"), newRecord(owner, time.Second, "b")
		for _, r := range []apikey.Record{a, b} {
			if err := s.Create(ctx, r, 0); err != nil {
				t.Fatal(err)
			}
		}
		t1, t2 := keyEpoch.Add(time.Minute), keyEpoch.Add(2*time.Minute)
		err := s.MarkUsed(ctx, []apikey.Use{
			{ID: a.ID, At: t2}, {ID: a.ID, At: t1}, {ID: b.ID, At: t1}, {ID: ecoid.New(ecoid.APIKey), At: t1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, a.ID).LastUsedAt; !got.Equal(t2) {
			t.Fatalf("a: last used %v, want %v", got, t2)
		}
		if got := get(t, s, b.ID).LastUsedAt; !got.Equal(t1) {
			t.Fatalf("b: last used %v, want %v", got, t1)
		}
		if err := s.MarkUsed(ctx, []apikey.Use{{ID: a.ID, At: t1}}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, a.ID).LastUsedAt; !got.Equal(t2) {
			t.Fatalf("an older use moved last_used_at back to %v", got)
		}
		if err := s.MarkUsed(ctx, nil); err != nil {
			t.Fatalf("an empty batch: %v", err)
		}
	})

	t.Run("ConcurrentCreateAndRevoke", func(t *testing.T) {
		s := setup(t)
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := newRecord(owner, time.Duration(i)*time.Millisecond, "k")
				if err := s.Create(ctx, r, 0); err != nil {
					errs <- err
					return
				}
				errs <- s.Revoke(ctx, owner, r.ID, keyEpoch)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.List(ctx, owner, "", 0)
		if err != nil || len(keys) != 20 {
			t.Fatalf("List: %d keys, %v", len(keys), err)
		}
		for _, k := range keys {
			if k.Status != apikey.Revoked {
				t.Fatalf("key %s: %s", k.ID, k.Status)
			}
		}
	})

	t.Run("CreateStopsAtTheCap", func(t *testing.T) { testKeyCap(t, setup(t)) })
	t.Run("ConcurrentCreatesNeverPassTheCap", func(t *testing.T) { testKeyCapConcurrent(t, setup(t)) })
	t.Run("ListPages", func(t *testing.T) { testKeyPages(t, setup(t)) })
	t.Run("ExpiryFarAheadRoundTrips", func(t *testing.T) { testFarExpiry(t, setup(t)) })
	t.Run("ServiceRefusesAbsurdExpiries", func(t *testing.T) { testServiceExpiry(t, setup(t)) })
}

// testKeyCap: Create counts the owner's live keys against maxLive; revoked keys, keys
// expired at the new key's creation and other owners' keys do not count.
func testKeyCap(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	owner, stranger := ecoid.New(ecoid.User), ecoid.New(ecoid.User)
	var made []apikey.Record
	for i := range 3 {
		r := newRecord(owner, time.Duration(i)*time.Second, "cap"+strconv.Itoa(i))
		if i == 2 {
			r.ExpiresAt = keyEpoch.Add(time.Hour) // expiring later: counts
		}
		if err := s.Create(ctx, r, 3); err != nil {
			t.Fatalf("key %d under the cap: %v", i+1, err)
		}
		made = append(made, r)
	}
	over := newRecord(owner, time.Minute, "over")
	if err := s.Create(ctx, over, 3); !errors.Is(err, apikey.ErrTooManyKeys) {
		t.Fatalf("a 4th key under a cap of 3: %v, want ErrTooManyKeys", err)
	}
	if _, err := s.Get(ctx, over.ID); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("a refused key was stored: %v", err)
	}
	if err := s.Create(ctx, newRecord(stranger, time.Minute, "stranger"), 3); err != nil {
		t.Fatalf("another owner is not capped by this one's keys: %v", err)
	}
	if err := s.Create(ctx, over, 0); err != nil {
		t.Fatalf("maxLive 0 is no cap: %v", err)
	}
	// Now 4 live. Revoking two frees one slot under a cap of 3.
	for _, r := range made[:2] {
		if err := s.Revoke(ctx, owner, r.ID, keyEpoch.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(ctx, newRecord(owner, 3*time.Minute, "after revoke"), 3); err != nil {
		t.Fatalf("revoked keys still count: %v", err)
	}
	if err := s.Create(ctx, newRecord(owner, 4*time.Minute, "full again"), 3); !errors.Is(err, apikey.ErrTooManyKeys) {
		t.Fatalf("full again: %v, want ErrTooManyKeys", err)
	}
	// Two hours on, made[2] has expired and no longer counts.
	if err := s.Create(ctx, newRecord(owner, 2*time.Hour, "after expiry"), 3); err != nil {
		t.Fatalf("an expired key still counts: %v", err)
	}
}

// testKeyCapConcurrent: parallel Creates for one owner never pass the cap.
func testKeyCapConcurrent(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	owner := ecoid.New(ecoid.User)
	const limit, tries = 5, 24
	var wg sync.WaitGroup
	var ok, capped atomic.Int32
	errs := make(chan error, tries)
	start := make(chan struct{})
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch err := s.Create(ctx, newRecord(owner, time.Duration(i)*time.Millisecond, "p"+strconv.Itoa(i)), limit); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, apikey.ErrTooManyKeys):
				capped.Add(1)
			default:
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	keys, err := s.List(ctx, owner, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok.Load() != limit || capped.Load() != tries-limit || len(keys) != limit {
		t.Fatalf("%d parallel creates under a cap of %d: %d stored, %d refused, %d listed",
			tries, limit, ok.Load(), capped.Load(), len(keys))
	}
}

// testKeyPages: List walks an owner's keys in pages after a cursor.
func testKeyPages(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	owner, stranger := ecoid.New(ecoid.User), ecoid.New(ecoid.User)
	var made []apikey.Record
	for i := range 5 {
		// Pairs of keys share a creation time: the ID breaks the tie.
		r := newRecord(owner, time.Duration(4-i/2*2)*time.Second, "page"+strconv.Itoa(i))
		if err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		made = append(made, r)
	}
	slices.SortFunc(made, func(a, b apikey.Record) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(string(a.ID), string(b.ID))
	})
	var want []ecoid.ID
	for _, r := range made {
		want = append(want, r.ID)
	}
	foreign := newRecord(stranger, 0, "foreign")
	if err := s.Create(ctx, foreign, 0); err != nil {
		t.Fatal(err)
	}
	var got []ecoid.ID
	after := ecoid.ID("")
	for pages := 0; ; pages++ {
		keys, err := s.List(ctx, owner, after, 2)
		if err != nil {
			t.Fatalf("page after %q: %v", after, err)
		}
		if len(keys) > 2 || pages > 3 {
			t.Fatalf("page %d holds %d keys", pages, len(keys))
		}
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			got = append(got, k.ID)
		}
		after = keys[len(keys)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave\n%v\nwant (created_at, then ID)\n%v", got, want)
	}
	if all, err := s.List(ctx, owner, "", 0); err != nil || len(all) != 5 {
		t.Fatalf("limit 0: %d keys, %v", len(all), err)
	}
	if _, err := s.List(ctx, owner, ecoid.New(ecoid.APIKey), 2); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("an unknown cursor: %v, want ErrNotFound", err)
	}
	if _, err := s.List(ctx, owner, foreign.ID, 2); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("another owner's key as cursor: %v, want ErrNotFound", err)
	}
}

// testFarExpiry: expiries past year 2262, where UnixNano overflows, are kept exactly.
func testFarExpiry(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	for i, at := range []time.Time{
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	} {
		r := newRecord(ecoid.New(ecoid.User), time.Duration(i)*time.Second, "far"+strconv.Itoa(i))
		r.ExpiresAt = at
		if err := s.Create(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, r.ID)
		if err != nil || !got.ExpiresAt.Equal(at) {
			t.Fatalf("expiry %v came back as %v, %v", at, got.ExpiresAt, err)
		}
	}
}

// farExpiry stores every new key with an expiry in year 3000, as code other than
// apikey.Service might.
type farExpiry struct{ apikey.Store }

func (f farExpiry) Create(ctx context.Context, r apikey.Record, maxLive int) error {
	r.ExpiresAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	return f.Store.Create(ctx, r, maxLive)
}

// testServiceExpiry: the service refuses expiries in the past and past MaxKeyLifetime
// with ErrInvalidExpiry, and a key stored with an expiry past 2262 verifies.
func testServiceExpiry(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	svc := apikey.NewService(s, apikey.Config{})
	defer svc.Close(ctx)
	owner := ecoid.New(ecoid.User)
	now := time.Now()
	for _, at := range []time.Time{
		now.Add(-time.Minute),
		now.Add(apikey.MaxKeyLifetime + time.Hour),
		time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		_, plain, err := svc.Create(ctx, apikey.CreateParams{Owner: owner, Name: "far", ExpiresAt: at})
		var ie *apikey.InputError
		if !errors.Is(err, apikey.ErrInvalidExpiry) || !errors.As(err, &ie) || ie.Field != "expires_at" || plain != "" {
			t.Fatalf("expires_at %v: %v, want an *InputError for expires_at wrapping ErrInvalidExpiry", at, err)
		}
	}
	if keys, err := svc.List(ctx, owner); err != nil || len(keys) != 0 {
		t.Fatalf("refused keys were stored: %v %v", keys, err)
	}
	k, plain, err := svc.Create(ctx, apikey.CreateParams{Owner: owner, Name: "near", ExpiresAt: now.Add(apikey.MaxKeyLifetime - time.Hour)})
	if err != nil {
		t.Fatalf("an expiry within MaxKeyLifetime: %v", err)
	}
	if _, err := svc.Verify(ctx, plain); err != nil {
		t.Fatalf("a key expiring in %v: %v", k.ExpiresAt, err)
	}

	far := apikey.NewService(farExpiry{s}, apikey.Config{})
	defer far.Close(ctx)
	_, plain, err = far.Create(ctx, apikey.CreateParams{Owner: owner, Name: "stored far"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := far.Verify(ctx, plain); err != nil {
		t.Fatalf("a key stored with an expiry in year 3000 is dead at birth: %v", err)
	}
}
