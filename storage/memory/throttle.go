package memory

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
)

// DefaultThrottleKeys is how many counters a ThrottleStore holds when NewThrottleStore
// is given zero.
const DefaultThrottleKeys = 100_000

// ThrottleStore is the in-process auth.ThrottleStore: auth.AttemptLimit.Reserve on a map
// under one lock, for a service that runs as one process (auth.Service uses the same
// when Config.Throttle is nil). It holds at most a fixed number of counters, kept in the
// order their windows opened: closed windows at the front are dropped as new ones open,
// and when the store is full the oldest window is dropped, so memory stays bounded and
// every call is O(1) even under a flood of distinct keys (at the price of forgetting the
// oldest counter). It is safe for concurrent use.
type ThrottleStore struct {
	maxKeys int
	mu      sync.Mutex
	keys    map[string]*list.Element // of *throttleCounter
	order   list.List                // oldest window first
}

type throttleCounter struct {
	key string
	auth.Attempts
	end time.Time // when the window closes
}

var _ auth.ThrottleStore = (*ThrottleStore)(nil)

// NewThrottleStore returns an empty ThrottleStore holding at most maxKeys counters
// (≤ 0: DefaultThrottleKeys).
func NewThrottleStore(maxKeys int) *ThrottleStore {
	if maxKeys <= 0 {
		maxKeys = DefaultThrottleKeys
	}
	return &ThrottleStore{maxKeys: maxKeys, keys: map[string]*list.Element{}}
}

// Reserve implements auth.ThrottleStore.
func (s *ThrottleStore) Reserve(_ context.Context, key string, limit auth.AttemptLimit, now time.Time) (auth.Reservation, error) {
	if !limit.Valid() {
		return auth.Reservation{}, auth.ErrInvalidAttemptLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.keys[key]
	if !ok {
		next, r := limit.Reserve(auth.Attempts{}, now)
		s.evict(now)
		s.keys[key] = s.order.PushBack(&throttleCounter{key: key, Attempts: next, end: next.Start.Add(limit.Window)})
		return r, nil
	}
	c := e.Value.(*throttleCounter)
	next, r := limit.Reserve(c.Attempts, now)
	if !next.Start.Equal(c.Start) { // a new window opened
		s.order.MoveToBack(e)
	}
	c.Attempts, c.end = next, next.Start.Add(limit.Window)
	return r, nil
}

// Release implements auth.ThrottleStore.
func (s *ThrottleStore) Release(_ context.Context, key string, start time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.keys[key]; ok {
		if c := e.Value.(*throttleCounter); c.Count > 0 && c.Start.Equal(start.Truncate(time.Microsecond)) {
			c.Count--
		}
	}
	return nil
}

// Reset implements auth.ThrottleStore.
func (s *ThrottleStore) Reset(_ context.Context, key string) error {
	s.mu.Lock()
	if e, ok := s.keys[key]; ok {
		s.order.Remove(e)
		delete(s.keys, key)
	}
	s.mu.Unlock()
	return nil
}

// Len returns how many counters the store holds.
func (s *ThrottleStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// evict makes room for one counter: it drops closed windows from the front, then the
// oldest window while the store is full. Called with mu held.
func (s *ThrottleStore) evict(now time.Time) {
	for e := s.order.Front(); e != nil; e = s.order.Front() {
		c := e.Value.(*throttleCounter)
		if now.Before(c.end) && len(s.keys) < s.maxKeys {
			return
		}
		s.order.Remove(e)
		delete(s.keys, c.key)
	}
}
