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
	mu   sync.RWMutex
	keys map[ecoid.ID]*apikey.Record
}

var _ apikey.Store = (*KeyStore)(nil)

// NewKeyStore returns an empty KeyStore.
func NewKeyStore() *KeyStore {
	return &KeyStore{keys: map[ecoid.ID]*apikey.Record{}}
}

// clone returns a deep copy, so callers never share the store's slices.
func clone(r apikey.Record) apikey.Record {
	r.Scopes = append(make([]string, 0, len(r.Scopes)), r.Scopes...)
	return r
}

// Create implements apikey.Store.
func (s *KeyStore) Create(_ context.Context, r apikey.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[r.ID]; ok {
		return apikey.ErrConflict
	}
	c := clone(r)
	s.keys[r.ID] = &c
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
func (s *KeyStore) List(_ context.Context, owner ecoid.ID) ([]apikey.Key, error) {
	s.mu.RLock()
	out := []apikey.Key{}
	for _, r := range s.keys {
		if r.Owner == owner {
			out = append(out, clone(*r).Key)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b apikey.Key) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
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
