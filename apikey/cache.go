package apikey

import (
	"crypto/sha256"
	"sync/atomic"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/fencedmap"
)

// entry is one cached answer of the store: a record, or "not found". Entries are
// immutable once cached, except for the last-use bookkeeping.
type entry struct {
	id       ecoid.ID
	rec      Record
	notFound bool
	fetched  int64 // Unix nanoseconds
	expires  int64 // Unix nanoseconds: when the cached answer is stale

	keyExpires int64 // rec.ExpiresAt in Unix nanoseconds; MaxInt64 for never
	prevUntil  int64 // rec.PrevValidUntil in Unix nanoseconds; 0 for none

	// fastCur and fastPrev are secretHash of the plain keys whose hashes are rec.Hash
	// and rec.PrevHash, once a request has shown them (zero: not yet known). They let
	// a cached verification hash one SHA-256 block instead of two.
	fastCur, fastPrev Hash

	lastUsed atomic.Int64 // Unix microseconds of the latest verification
	queued   atomic.Bool  // waiting in the last_used_at queue
}

// matches reports whether h is the key's hash, or its previous hash during a rotation's
// grace period. Both comparisons run, in constant time.
func (e *entry) matches(h Hash, now int64) bool {
	cur := e.rec.Hash.Equal(h)
	prev := !e.rec.PrevHash.IsZero() && e.rec.PrevHash.Equal(h) && now < e.prevUntil
	return cur || prev
}

// matchesFast reports whether fast is the secretHash of the current key, or of the
// previous one during a rotation's grace period, in constant time.
func (e *entry) matchesFast(fast Hash, now int64) bool {
	cur := !e.fastCur.IsZero() && e.fastCur.Equal(fast)
	prev := !e.fastPrev.IsZero() && e.fastPrev.Equal(fast) && now < e.prevUntil
	return cur || prev
}

// fastComplete reports whether every secret that can still verify has its fast hash.
func (e *entry) fastComplete(now int64) bool {
	return !e.fastCur.IsZero() && (e.rec.PrevHash.IsZero() || !e.fastPrev.IsZero() || now >= e.prevUntil)
}

// secretHash is the SHA-256 of the secret part of a well-formed plain key: 49 bytes, one
// SHA-256 block where the whole key takes two. The cache compares it once the key's
// stored hash has matched; the ID is matched by the cache lookup itself.
func secretHash(plain string) Hash {
	var buf [SecretLen]byte
	copy(buf[:], plain[ecoid.Len+1:])
	return sha256.Sum256(buf[:])
}

// cache is a bounded map from key ID to entry whose lookups take no lock (see package
// fencedmap). A cache that is full drops an expired entry, or else an arbitrary one.
// BenchmarkVerifyCached/parallel, one key from two cores: 88–96 ns behind the sharded
// read locks it had before, 80–87 ns since, on the 2-core CI machine.
type cache struct {
	m *fencedmap.Map[ecoid.ID, entry]
}

func newCache(size int) *cache { return &cache{m: fencedmap.New[ecoid.ID, entry](size)} }

func (c *cache) get(id ecoid.ID) *entry { return c.m.Load(id) }

// epochNow returns the invalidation counter, to pass to put.
func (c *cache) epochNow() uint64 { return c.m.Gen() }

// put caches e unless the cache saw a remove or purge since epoch was read.
func (c *cache) put(id ecoid.ID, e *entry, epoch uint64, now int64) {
	c.m.Store(id, e, epoch, func(old *entry) bool { return old.expires <= now })
}

// upgrade returns e with the fast hash of the secret whose full hash h matched, and
// caches that copy in place of e if e is still the cached entry. An entry that knows it
// already is returned as it is.
func (c *cache) upgrade(id ecoid.ID, e *entry, h, fast Hash) *entry {
	cur := e.rec.Hash.Equal(h)
	if (cur && e.fastCur == fast) || (!cur && e.fastPrev == fast) {
		return e
	}
	n := &entry{id: e.id, rec: e.rec, fetched: e.fetched, expires: e.expires, keyExpires: e.keyExpires,
		prevUntil: e.prevUntil, fastCur: e.fastCur, fastPrev: e.fastPrev}
	if cur {
		n.fastCur = fast
	} else {
		n.fastPrev = fast
	}
	c.m.CompareAndSwap(id, e, n)
	return n
}

// remove drops id and makes lookups that started before it not cache their answer.
func (c *cache) remove(id ecoid.ID) { c.m.Delete(id) }

// purge drops every entry, and makes lookups that started before it not cache their
// answer.
func (c *cache) purge() { c.m.Purge() }

// len returns the number of cached entries.
func (c *cache) len() int { return c.m.Len() }
