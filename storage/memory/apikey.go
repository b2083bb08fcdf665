package memory

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// KeyStore is an apikey.Store in memory. The zero value is not usable; call
// NewKeyStore. It is safe for concurrent use.
type KeyStore struct {
	mu      sync.RWMutex
	keys    map[ecoid.ID]*apikey.Record
	byOwner map[ecoid.ID][]*apikey.Record // each owner's keys, oldest first
}

var _ apikey.Store = (*KeyStore)(nil)

// NewKeyStore returns an empty KeyStore.
func NewKeyStore() *KeyStore {
	return &KeyStore{keys: map[ecoid.ID]*apikey.Record{}, byOwner: map[ecoid.ID][]*apikey.Record{}}
}

// clone returns a deep copy, so callers never share the store's slices.
func clone(r apikey.Record) apikey.Record {
	r.Scopes = append(make([]string, 0, len(r.Scopes)), r.Scopes...)
	return r
}

// order is the order of List: created_at, then ID.
func order(a, b *apikey.Record) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// live reports whether r counts against the owner's cap at time at.
func live(r *apikey.Record, at time.Time) bool {
	return r.Status == apikey.Active && (r.ExpiresAt.IsZero() || r.ExpiresAt.After(at))
}

// Create implements apikey.Store. The cap is checked under the store's lock.
func (s *KeyStore) Create(_ context.Context, r apikey.Record, maxLive int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[r.ID]; ok {
		return apikey.ErrConflict
	}
	owned := s.byOwner[r.Owner]
	if maxLive > 0 {
		n := 0
		for _, o := range owned {
			if live(o, r.CreatedAt) {
				n++
			}
		}
		if n >= maxLive {
			return apikey.ErrTooManyKeys
		}
	}
	c := clone(r)
	s.keys[r.ID] = &c
	i, _ := slices.BinarySearchFunc(owned, &c, order)
	s.byOwner[r.Owner] = slices.Insert(owned, i, &c)
	return nil
}

// Get implements apikey.Store.
func (s *KeyStore) Get(_ context.Context, id ecoid.ID) (apikey.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.keys[id]
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return clone(*r), nil
}

// List implements apikey.Store.
func (s *KeyStore) List(_ context.Context, owner, after ecoid.ID, limit int) ([]apikey.Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	owned := s.byOwner[owner]
	if after != "" {
		a, ok := s.keys[after]
		if !ok || a.Owner != owner {
			return nil, apikey.ErrNotFound
		}
		i, _ := slices.BinarySearchFunc(owned, a, order)
		owned = owned[i+1:]
	}
	if limit > 0 && len(owned) > limit {
		owned = owned[:limit]
	}
	out := make([]apikey.Key, len(owned))
	for i, r := range owned {
		out[i] = clone(*r).Key
	}
	return out, nil
}

// owned returns the owner's key, or ErrNotFound. The caller holds s.mu.
func (s *KeyStore) owned(owner, id ecoid.ID) (*apikey.Record, error) {
	r, ok := s.keys[id]
	if !ok || r.Owner != owner {
		return nil, apikey.ErrNotFound
	}
	return r, nil
}

// Revoke implements apikey.Store.
func (s *KeyStore) Revoke(_ context.Context, owner, id ecoid.ID, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.owned(owner, id)
	if err != nil {
		return err
	}
	r.Status = apikey.Revoked
	return nil
}

// Rotate implements apikey.Store.
func (s *KeyStore) Rotate(_ context.Context, owner, id ecoid.ID, hash apikey.Hash, prevValidUntil, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.owned(owner, id)
	if err != nil {
		return err
	}
	if r.Status != apikey.Active {
		return apikey.ErrRevoked
	}
	if prevValidUntil.After(at) {
		r.PrevHash, r.PrevValidUntil = r.Hash, prevValidUntil
	} else {
		r.PrevHash, r.PrevValidUntil = apikey.Hash{}, time.Time{}
	}
	r.Hash = hash
	r.RotatedAt = at
	return nil
}

// MarkUsed implements apikey.Store.
func (s *KeyStore) MarkUsed(_ context.Context, uses []apikey.Use) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range uses {
		if r, ok := s.keys[u.ID]; ok && u.At.After(r.LastUsedAt) {
			r.LastUsedAt = u.At
		}
	}
	return nil
}
