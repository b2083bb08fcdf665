package memory

import (
	"context"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
)

var _ apikey.TokenStore = (*TokenStore)(nil)

// TokenStore is an in-process apikey.TokenStore: apikey.GCRA.Take over a map, for tests
// and single processes (where the plain Limiter is the better choice: nothing is shared).
// It is safe for concurrent use.
type TokenStore struct {
	now   func() time.Time
	mu    sync.Mutex
	state map[[2]string]gcraState
}

// NewTokenStore returns an empty TokenStore; WithClock sets its clock.
func NewTokenStore(opts ...Option) *TokenStore {
	var l Limiter
	for _, o := range opts {
		o(&l)
	}
	now := l.now
	if now == nil {
		now = time.Now
	}
	return &TokenStore{now: now, state: map[[2]string]gcraState{}}
}

// TakeTokens implements apikey.TokenStore.
func (s *TokenStore) TakeTokens(_ context.Context, key string, limit apikey.Limit, n int, hold time.Duration) (apikey.TokenGrant, error) {
	g, err := limit.GCRA()
	if err != nil {
		return apikey.TokenGrant{}, err
	}
	k := [2]string{limit.Policy(), key}
	now := s.now().UnixMicro()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state[k]
	granted, tat, seen, until := g.Take(st.tat, st.seen, now, n, hold.Microseconds())
	s.state[k] = gcraState{tat: tat, seen: seen}
	return apikey.TokenGrant{Granted: granted, TAT: tat, Now: seen, ValidUntil: until}, nil
}
