// Package fencedmap is the bounded, lock-free-to-read map behind the hot path's caches
// (apikey's key cache, billing.TermsCache).
//
// A read takes no lock and writes no shared memory: the entries are in a sync.Map, made
// for exactly this (written once, read many times). The caches had shards behind read
// locks before; a read lock is an atomic counter, so with one busy key or customer every
// request on every core wrote the same cache line.
//
// Invalidation fences reads in flight: Delete and Purge bump a generation before they
// delete. A caller reads Gen before it asks the source of truth and passes it to Store,
// which stores only if the generation has not moved, then reads it again and takes its
// entry back out if it moved meanwhile. Either the delete comes after the store (and
// removes it) or the second read sees the new generation: an answer older than an
// invalidation is never left behind.
package fencedmap

import (
	"sync"
	"sync/atomic"
)

// Map is a bounded map from K to *V, safe for concurrent use. The zero value is not
// usable; call New.
type Map[K comparable, V any] struct {
	max  int64
	gen  atomic.Uint64
	size atomic.Int64 // entries in m
	m    sync.Map     // K → *V
}

// New returns an empty map of at most size entries (at least 1) once no Store is in
// flight.
func New[K comparable, V any](size int) *Map[K, V] {
	return &Map[K, V]{max: int64(max(1, size))}
}

// Load returns k's entry, or nil.
func (m *Map[K, V]) Load(k K) *V {
	if v, ok := m.m.Load(k); ok {
		return v.(*V)
	}
	return nil
}

// Gen returns the invalidation generation, to pass to Store.
func (m *Map[K, V]) Gen() uint64 { return m.gen.Load() }

// Store puts v under k unless Delete or Purge ran since gen was read. A map taken past
// its size evicts until it is back within it: among the first eight entries, the first
// for which stale reports true, else the first of them.
func (m *Map[K, V]) Store(k K, v *V, gen uint64, stale func(*V) bool) {
	if m.gen.Load() != gen {
		return
	}
	if _, replaced := m.m.Swap(k, v); !replaced {
		for n := m.size.Add(1); n > m.max; {
			victim, ok := m.victim(k, stale)
			if !ok {
				break
			}
			if _, ok := m.m.LoadAndDelete(victim); ok {
				n = m.size.Add(-1)
			}
		}
	}
	if m.gen.Load() != gen { // invalidated while storing: see the package comment
		if m.m.CompareAndDelete(k, v) {
			m.size.Add(-1)
		}
	}
}

// victim picks the entry to evict to make room for keep; false when there is none but
// keep.
func (m *Map[K, V]) victim(keep K, stale func(*V) bool) (K, bool) {
	var victim K
	found, seen := false, 0
	m.m.Range(func(k, v any) bool {
		key := k.(K)
		if key == keep {
			return true
		}
		old := stale(v.(*V))
		if !found || old {
			victim, found = key, true
		}
		seen++
		return !old && seen < 8
	})
	return victim, found
}

// CompareAndSwap replaces k's entry with next if it is still old.
func (m *Map[K, V]) CompareAndSwap(k K, old, next *V) { m.m.CompareAndSwap(k, old, next) }

// Delete drops k's entry, and makes stores of reads that began before it store nothing.
func (m *Map[K, V]) Delete(k K) {
	m.gen.Add(1) // before the delete: see the package comment
	if _, ok := m.m.LoadAndDelete(k); ok {
		m.size.Add(-1)
	}
}

// Purge drops every entry, with the same guarantee as Delete.
func (m *Map[K, V]) Purge() {
	m.gen.Add(1)
	m.m.Range(func(k, _ any) bool {
		if _, ok := m.m.LoadAndDelete(k); ok {
			m.size.Add(-1)
		}
		return true
	})
}

// Len returns the number of entries.
func (m *Map[K, V]) Len() int { return int(m.size.Load()) }
