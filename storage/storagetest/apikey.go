package storagetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"sync"
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
		if err := s.Create(ctx, r); err != nil {
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
		if err := s.Create(ctx, r); err != nil {
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
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		r2 := newRecord(stranger, time.Second, "b")
		r2.ID = r.ID
		if err := s.Create(ctx, r2); !errors.Is(err, apikey.ErrConflict) {
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
		if err := s.Create(ctx, r); err != nil {
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
		if keys, err := s.List(ctx, owner); err != nil || keys == nil || len(keys) != 0 {
			t.Fatalf("empty List: %v %#v", err, keys)
		}
		var want []apikey.Key
		for i, seed := range []string{"c", "a", "b"} {
			r := newRecord(owner, time.Duration(3-i)*time.Minute, seed)
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			want = append([]apikey.Key{r.Key}, want...)
		}
		if err := s.Create(ctx, newRecord(stranger, 0, "x")); err != nil {
			t.Fatal(err)
		}
		got, err := s.List(ctx, owner)
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
		if err := s.Create(ctx, r); err != nil {
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
		if err := s.Create(ctx, r); err != nil {
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
		if err := s.Create(ctx, r); err != nil {
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
			if err := s.Create(ctx, r); err != nil {
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
				if err := s.Create(ctx, r); err != nil {
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
		keys, err := s.List(ctx, owner)
		if err != nil || len(keys) != 20 {
			t.Fatalf("List: %d keys, %v", len(keys), err)
		}
		for _, k := range keys {
			if k.Status != apikey.Revoked {
				t.Fatalf("key %s: %s", k.ID, k.Status)
			}
		}
	})
}
