package apikey

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/coarse"
	"github.com/nexus-ecosystem/nexus/internal/safetext"
)

// Defaults of Config and CreateParams.
const (
	DefaultRateLimitPerMinute = 60
	MaxRateLimitPerMinute     = 1_000_000
	MaxNameLen                = 100
	MaxScopes                 = 32
	MaxScopeLen               = 64
	// DefaultMaxKeysPerOwner is Config.MaxKeysPerOwner's default.
	DefaultMaxKeysPerOwner = 100
	// MaxKeyLifetime is how far ahead of now CreateParams.ExpiresAt may be.
	MaxKeyLifetime = 100 * 365 * 24 * time.Hour
	// DefaultListLimit and MaxListLimit bound ListParams.Limit.
	DefaultListLimit = 100
	MaxListLimit     = 100

	defaultCacheSize       = 10_000
	defaultCacheTTL        = 30 * time.Second
	defaultNegativeTTL     = 5 * time.Second
	defaultMismatchRefresh = time.Second
	defaultUsedInterval    = 5 * time.Second
	defaultUsedBatch       = 500
	lookupTimeout          = 10 * time.Second
)

// Config tunes a Service. The zero value of every field means the default it names.
type Config struct {
	// Now is the clock (default: the wall clock; Verify reads it through a coarse clock
	// that moves every 10 ms, so a key expires up to 10 ms late).
	Now func() time.Time
	// Logger receives warnings about failed background writes (default: discard).
	// Secrets and hashes are never logged.
	Logger *slog.Logger
	// CacheSize bounds how many keys the verify cache holds (default 10,000).
	CacheSize int
	// CacheTTL is how long a verified key is trusted without asking the store: the
	// bound on how stale a revocation or rotation made by another process can be
	// (default 30 s; negative: no caching).
	CacheTTL time.Duration
	// NegativeTTL is how long a well-formed key that the store does not know is
	// remembered as unknown (default 5 s).
	NegativeTTL time.Duration
	// MismatchRefresh: when a cached key is presented with another secret, the store is
	// asked again (the key may have been rotated by another process), but at most once
	// per this interval per key (default 1 s).
	MismatchRefresh time.Duration
	// UsedInterval is how often last_used_at is written, in one batch (default 5 s);
	// UsedBatch caps a batch (default 500), a full batch is written at once.
	UsedInterval time.Duration
	UsedBatch    int
	// MaxKeysPerOwner caps the live keys (active and not expired) of one owner: Create
	// answers ErrTooManyKeys beyond it (default 100; negative: no cap). Revoked and
	// expired keys do not count, and are still listed.
	MaxKeysPerOwner int
	// OnChange, when set, is called after a revocation or rotation has been committed,
	// with the key's ID, so that the caller can tell its other instances to drop the key
	// from their verify caches (they call Invalidate on hearing it). It is also called
	// when the store failed in a way that leaves unknown whether the change committed;
	// never for ErrNotFound or ErrRevoked. It runs on the caller's goroutine, before
	// Revoke or Rotate returns, with ctx stripped of its cancellation (a client that
	// hangs up after the commit must not stop the news), so it should be quick.
	OnChange func(ctx context.Context, id ecoid.ID)
	// LookupBudget, when positive, is the longest a Verify waits for the store to look
	// up a key that is not cached: past it, Verify fails with context.DeadlineExceeded
	// (a system error: Authenticate answers 503) while the lookup goes on for the next
	// caller. Cached keys never wait. Default 0: as long as the caller's context allows.
	LookupBudget time.Duration
}

// Service issues and verifies keys. It is safe for concurrent use. NewService starts a
// goroutine that writes last_used_at in batches; Close stops it.
type Service struct {
	store Store
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
	cache *cache

	flightMu sync.Mutex
	flight   map[ecoid.ID]*call

	uses      chan *entry
	stop      chan struct{}
	done      chan struct{}
	coarse    *coarse.Clock // nowNano's clock when Config.Now is not set
	closeOnce sync.Once
	flushErr  error
	pending   []*entry // what the writer held when it stopped
}

type call struct {
	done chan struct{}
	rec  Record
	err  error
	e    *entry // the leader's answer, as cached
	eErr error
}

// NewService returns a Service over store.
func NewService(store Store, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = defaultCacheSize
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = defaultCacheTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = defaultNegativeTTL
	}
	if cfg.MismatchRefresh <= 0 {
		cfg.MismatchRefresh = defaultMismatchRefresh
	}
	if cfg.UsedInterval <= 0 {
		cfg.UsedInterval = defaultUsedInterval
	}
	if cfg.UsedBatch <= 0 {
		cfg.UsedBatch = defaultUsedBatch
	}
	if cfg.MaxKeysPerOwner == 0 {
		cfg.MaxKeysPerOwner = DefaultMaxKeysPerOwner
	}
	s := &Service{
		store:  store,
		cfg:    cfg,
		now:    cfg.Now,
		log:    cfg.Logger,
		cache:  newCache(cfg.CacheSize),
		flight: map[ecoid.ID]*call{},
		uses:   make(chan *entry, 4*cfg.UsedBatch),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.coarse = coarse.New(coarse.HotPathTick) // a key expires, and a cached answer goes stale, up to a tick late
	go s.writeUses()
	return s
}

// CreateParams describes a new key.
type CreateParams struct {
	// Owner is the EcoID of the user who owns the key (required).
	Owner ecoid.ID
	// Name is a label for people: 1 to 100 characters, no control characters;
	// surrounding space is trimmed.
	Name string
	// Scopes are the permissions the key carries: at most 32, each 1 to 64 characters
	// of a-z, 0-9 and ":._-". Duplicates are dropped; order is kept.
	Scopes []string
	// RateLimitPerMinute is the key's own rate limit, 1 to 1,000,000; 0 means 60.
	RateLimitPerMinute int
	// ExpiresAt, when not zero, is when the key stops working; it must be in the future
	// and at most MaxKeyLifetime (100 years) ahead, else ErrInvalidExpiry.
	ExpiresAt time.Time
}

// InputError says which argument is bad and why. It wraps ErrInvalidInput, and Err
// when that is set.
type InputError struct {
	// Field is "owner", "name", "scopes", "rate_limit_per_minute", "expires_at",
	// "grace", "cursor" or "limit".
	Field   string
	Message string
	// Err, when not nil, is a sentinel for the problem (ErrInvalidExpiry).
	Err error
}

func (e *InputError) Error() string { return "apikey: invalid " + e.Field + ": " + e.Message }

// Unwrap returns ErrInvalidInput, and Err when it is set.
func (e *InputError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidInput}
	}
	return []error{ErrInvalidInput, e.Err}
}

func inputError(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Create issues a key and returns it with its plain form, which is never available
// again. Bad arguments give an *InputError (errors.Is ErrInvalidInput; an expiry in the
// past or too far ahead is also ErrInvalidExpiry); an owner at Config.MaxKeysPerOwner
// live keys gets ErrTooManyKeys.
func (s *Service) Create(ctx context.Context, p CreateParams) (Key, string, error) {
	now := s.clock()
	if !p.Owner.Valid() {
		return Key{}, "", inputError("owner", "not an EcoID")
	}
	name, err := checkName(p.Name)
	if err != nil {
		return Key{}, "", err
	}
	scopes, err := checkScopes(p.Scopes)
	if err != nil {
		return Key{}, "", err
	}
	limit := p.RateLimitPerMinute
	if limit == 0 {
		limit = DefaultRateLimitPerMinute
	}
	if limit < 1 || limit > MaxRateLimitPerMinute {
		return Key{}, "", inputError("rate_limit_per_minute", "must be between 1 and %d", MaxRateLimitPerMinute)
	}
	expires := time.Time{}
	if !p.ExpiresAt.IsZero() {
		expires = p.ExpiresAt.UTC().Truncate(time.Microsecond)
		if !expires.After(now) {
			return Key{}, "", &InputError{Field: "expires_at", Message: "must be in the future", Err: ErrInvalidExpiry}
		}
		// Sub saturates, so an expiry past year 2262 (where UnixNano overflows) lands here.
		if expires.Sub(now) > MaxKeyLifetime {
			return Key{}, "", &InputError{Field: "expires_at", Message: "must be at most 100 years ahead", Err: ErrInvalidExpiry}
		}
	}
	id := ecoid.NewAt(ecoid.APIKey, now)
	plain := newPlain(id)
	k := Key{
		ID: id, Owner: p.Owner, Name: name, Scopes: scopes, Status: Active,
		RateLimitPerMinute: limit, CreatedAt: now, ExpiresAt: expires,
	}
	if err := s.store.Create(ctx, Record{Key: k, Hash: HashKey(plain)}, max(s.cfg.MaxKeysPerOwner, 0)); err != nil {
		return Key{}, "", fmt.Errorf("apikey: create: %w", err)
	}
	s.cache.remove(id)
	return k, plain, nil
}

func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", inputError("name", "is required")
	case !utf8.ValidString(name):
		return "", inputError("name", "is not valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return "", inputError("name", "is longer than %d characters", MaxNameLen)
	case !safetext.Clean(name):
		return "", inputError("name", "has a control or bidirectional-override character")
	}
	return name, nil
}

func checkScopes(in []string) ([]string, error) {
	if len(in) > MaxScopes {
		return nil, inputError("scopes", "more than %d", MaxScopes)
	}
	out := make([]string, 0, len(in))
	for _, sc := range in {
		if sc == "" || len(sc) > MaxScopeLen {
			return nil, inputError("scopes", "each scope must be 1 to %d characters", MaxScopeLen)
		}
		for i := 0; i < len(sc); i++ {
			c := sc[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == ':' || c == '.' || c == '_' || c == '-') {
				return nil, inputError("scopes", "a scope may hold only a-z, 0-9 and \":._-\"")
			}
		}
		if !containsString(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// List returns all the owner's keys, oldest first, without secrets or hashes. Revoked
// keys stay listed, so the list grows with every key ever made: an answer to a client
// should be a page of ListPage.
func (s *Service) List(ctx context.Context, owner ecoid.ID) ([]Key, error) {
	keys, err := s.store.List(ctx, owner, "", 0)
	if err != nil {
		return nil, fmt.Errorf("apikey: list: %w", err)
	}
	if keys == nil {
		keys = []Key{}
	}
	return keys, nil
}

// ListParams selects a page of ListPage.
type ListParams struct {
	// After is the Next of the previous page; the zero ID asks for the first page.
	After ecoid.ID
	// Limit is the most keys a page holds, 1 to MaxListLimit; 0 means DefaultListLimit.
	Limit int
}

// Page is one page of an owner's keys, oldest first.
type Page struct {
	Keys []Key // never nil
	// Next is the cursor of the next page (ListParams.After); zero on the last page.
	Next ecoid.ID
}

// ListPage returns a page of the owner's keys, oldest first, without secrets or
// hashes. Keys created while a client walks the pages show up on its last page. A
// cursor that is not one of the owner's key IDs, or a bad limit, is an *InputError.
func (s *Service) ListPage(ctx context.Context, owner ecoid.ID, p ListParams) (Page, error) {
	limit := p.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return Page{}, inputError("limit", "must be between 1 and %d", MaxListLimit)
	}
	if p.After != "" && (p.After.Type() != ecoid.APIKey || !p.After.Valid()) {
		return Page{}, inputError("cursor", "is not an API key ID")
	}
	keys, err := s.store.List(ctx, owner, p.After, limit+1)
	if errors.Is(err, ErrNotFound) {
		return Page{}, inputError("cursor", "is not one of your keys")
	}
	if err != nil {
		return Page{}, fmt.Errorf("apikey: list: %w", err)
	}
	page := Page{Keys: keys}
	if len(keys) > limit {
		page.Keys = keys[:limit:limit]
		page.Next = keys[limit-1].ID
	}
	if page.Keys == nil {
		page.Keys = []Key{}
	}
	return page, nil
}

// Revoke revokes the owner's key; it stops verifying at once in this process and within
// CacheTTL in others, or as soon as they hear of it through Config.OnChange and call
// Invalidate. Another owner's key, or an unknown one, is ErrNotFound. Revoking
// twice is not an error.
func (s *Service) Revoke(ctx context.Context, owner, id ecoid.ID) error {
	err := s.store.Revoke(ctx, owner, id, s.clock())
	s.cache.remove(id)
	s.changed(ctx, id, err)
	if err != nil {
		return fmt.Errorf("apikey: revoke: %w", err)
	}
	return nil
}

// Rotate gives the owner's key a new secret and returns the new plain key; the ID,
// name, scopes and limit stay. The old secret stops working at once when grace is 0,
// otherwise after grace (at most 7 days), in this process; other processes follow as
// for Revoke. Another owner's key, or an unknown one, is ErrNotFound; a revoked key is
// ErrRevoked.
func (s *Service) Rotate(ctx context.Context, owner, id ecoid.ID, grace time.Duration) (string, error) {
	if grace < 0 || grace > 7*24*time.Hour {
		return "", inputError("grace", "must be between 0 and 7 days")
	}
	if id.Type() != ecoid.APIKey || !id.Valid() {
		return "", fmt.Errorf("apikey: rotate: %w", ErrNotFound)
	}
	now := s.clock()
	plain := newPlain(id)
	prevUntil := time.Time{}
	if grace > 0 {
		prevUntil = now.Add(grace)
	}
	err := s.store.Rotate(ctx, owner, id, HashKey(plain), prevUntil, now)
	s.cache.remove(id)
	s.changed(ctx, id, err)
	if err != nil {
		return "", fmt.Errorf("apikey: rotate: %w", err)
	}
	return plain, nil
}

// changed calls Config.OnChange after a revocation or rotation that committed, or may
// have: every outcome but ErrNotFound and ErrRevoked, which change nothing.
func (s *Service) changed(ctx context.Context, id ecoid.ID, err error) {
	if s.cfg.OnChange == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrRevoked) {
		return
	}
	s.cfg.OnChange(context.WithoutCancel(ctx), id)
}

// Invalidate drops the key id from this process's verify cache: the next Verify of it
// asks the store. Lookups already in flight do not cache their answer. An ID that is
// not cached is no error. Call it when another instance reports a change to the key
// (see Config.OnChange); Revoke and Rotate through this Service invalidate by
// themselves. It is safe for concurrent use and does not block on the store.
func (s *Service) Invalidate(id ecoid.ID) { s.cache.remove(id) }

// PurgeCache drops every cached answer, positive and negative, as Invalidate does for
// one key. Call it when the stream of change notifications had a gap (a reconnect), so
// that no cached key outlives a change this process missed.
func (s *Service) PurgeCache() { s.cache.purge() }

// nowNano returns the time in Unix nanoseconds for Verify: Config.Now when it is set,
// otherwise a coarse clock (package internal/coarse), an atomic load rather than a clock
// read on every call.
func (s *Service) nowNano() int64 {
	if s.cfg.Now != nil {
		return s.cfg.Now().UnixNano()
	}
	return s.coarse.UnixNano()
}

// clock returns now in UTC with the microsecond precision stores keep.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Verify checks a plain key and returns its metadata. It returns an error wrapping
// ErrMalformed for a string that is not a key (no store lookup happens), ErrInvalidKey
// for an unknown key or a wrong secret, ErrRevoked, ErrExpired, or a system error from
// the store. A verified key is answered from the cache for up to CacheTTL; a cached
// verification does not allocate. The returned Key's Scopes must not be modified.
func (s *Service) Verify(ctx context.Context, plain string) (Key, error) {
	now := s.nowNano()
	// The hot path: a key this instance has verified before. The cache lookup matches
	// the ID part byte for byte, the dot is checked, and the fast hash covers the rest
	// (the secret and its checksum); both were filled only from a string that passed
	// Parse, so a string they match is that string again, and Parse's checks would learn
	// nothing (the checksum above all: eight kilobytes of CRC tables that a loaded server
	// no longer has in its CPU cache). Everything else goes through Parse first, so the
	// errors are unchanged.
	var fast Hash
	if len(plain) == PlainLen && plain[ecoid.Len] == '.' {
		fast = secretHash(plain)
		if e := s.cache.get(ecoid.ID(plain[:ecoid.Len])); e != nil && now < e.expires && !e.notFound && e.matchesFast(fast, now) {
			return s.accept(e, now)
		}
	}
	id, err := Parse(plain)
	if err != nil {
		return Key{}, err
	}
	e := s.cache.get(id)
	if e != nil && now < e.expires {
		if e.notFound {
			return Key{}, ErrInvalidKey
		}
		// The entry may have changed since the fast path looked: another request can have
		// cached the key, or learnt its fast hash, in between. Without this check such a
		// request was refused as invalid (a fresh key verified by many requests at once).
		if e.matchesFast(fast, now) {
			return s.accept(e, now)
		}
		if !e.fastComplete(now) {
			if h := HashKey(plain); e.matches(h, now) {
				return s.accept(s.cache.upgrade(id, e, h, fast), now)
			}
		}
		if now-e.fetched < int64(s.cfg.MismatchRefresh) {
			return Key{}, ErrInvalidKey
		}
	}
	e, err = s.load(ctx, id, now)
	if err != nil {
		return Key{}, err
	}
	h := HashKey(plain)
	if e.notFound || !e.matches(h, now) {
		return Key{}, ErrInvalidKey
	}
	return s.accept(s.cache.upgrade(id, e, h, fast), now)
}

// accept checks the status and expiry of a key whose secret matched.
func (s *Service) accept(e *entry, now int64) (Key, error) {
	if e.rec.Status != Active {
		return Key{}, ErrRevoked
	}
	if now >= e.keyExpires {
		return Key{}, ErrExpired
	}
	s.markUsed(e, now)
	return e.rec.Key, nil
}

// load fetches a key from the store, collapsing concurrent lookups of one ID into one,
// and caches the answer (a key, or "not found").
func (s *Service) load(ctx context.Context, id ecoid.ID, now int64) (*entry, error) {
	s.flightMu.Lock()
	if c, ok := s.flight[id]; ok {
		s.flightMu.Unlock()
		if err := s.waitLookup(ctx, c); err != nil {
			return nil, err
		}
		return s.entryFrom(id, c.rec, c.err, now)
	}
	c := &call{done: make(chan struct{})}
	s.flight[id] = c
	s.flightMu.Unlock()

	// The lookup serves every waiter, so the leader's cancellation must not fail the
	// others: it runs detached, bounded by lookupTimeout, and caches its answer itself.
	// The leader waits for it as the others do, so its own deadline still holds.
	epoch := s.cache.epochNow()
	go func() {
		getCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		c.rec, c.err = s.store.Get(getCtx, id)
		cancel()
		c.e, c.eErr = s.entryFrom(id, c.rec, c.err, now)
		if c.eErr == nil && s.cfg.CacheTTL > 0 {
			s.cache.put(id, c.e, epoch, now) // before waking anyone, so they find it cached
		}
		s.flightMu.Lock()
		delete(s.flight, id)
		s.flightMu.Unlock()
		close(c.done)
	}()
	if err := s.waitLookup(ctx, c); err != nil {
		return nil, err
	}
	return c.e, c.eErr
}

// waitLookup waits for the lookup c, at most until ctx ends or Config.LookupBudget has
// passed.
func (s *Service) waitLookup(ctx context.Context, c *call) error {
	var budget <-chan time.Time
	if s.cfg.LookupBudget > 0 {
		t := time.NewTimer(s.cfg.LookupBudget)
		defer t.Stop()
		budget = t.C
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-budget:
		return fmt.Errorf("apikey: key lookup over its budget of %v: %w", s.cfg.LookupBudget, context.DeadlineExceeded)
	}
}

func (s *Service) entryFrom(id ecoid.ID, rec Record, err error, now int64) (*entry, error) {
	switch {
	case errors.Is(err, ErrNotFound):
		return &entry{id: id, notFound: true, fetched: now, expires: now + int64(s.cfg.NegativeTTL)}, nil
	case err != nil:
		return nil, fmt.Errorf("apikey: verify: %w", err)
	}
	e := &entry{id: id, rec: rec, fetched: now, expires: now + int64(s.cfg.CacheTTL), keyExpires: math.MaxInt64}
	if !rec.ExpiresAt.IsZero() {
		e.keyExpires = unixNano(rec.ExpiresAt)
	}
	if !rec.PrevValidUntil.IsZero() {
		e.prevUntil = unixNano(rec.PrevValidUntil)
	}
	return e, nil
}

// unixNano is t.UnixNano, saturated instead of overflowing outside the years 1678 to
// 2262: a stored expiry far ahead (written by other code) must not make a key dead at
// birth.
func unixNano(t time.Time) int64 {
	switch sec := t.Unix(); {
	case sec >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	case sec <= math.MinInt64/int64(time.Second):
		return math.MinInt64
	}
	return t.UnixNano()
}

// markUsed queues the key for the next last_used_at batch, at most once per batch.
func (s *Service) markUsed(e *entry, now int64) {
	// Recording a use at most once a second per key keeps parallel verifications of
	// one key from fighting over its cache line; last_used_at is exact to a second.
	at := now / 1000
	if at-e.lastUsed.Load() >= 1_000_000 {
		e.lastUsed.Store(at)
	}
	if e.queued.Load() || !e.queued.CompareAndSwap(false, true) {
		return
	}
	select {
	case s.uses <- e:
	default: // the queue is full: a later use will queue the key again
		e.queued.Store(false)
	}
}

// writeUses is the background writer of last_used_at. A key is written at most once per
// UsedInterval however busy it is: a written key stays marked queued until the next tick
// (so its uses meanwhile do not queue it again), and at that tick it is written again
// only if it was used since. Without that, more busy keys than UsedBatch would be
// rewritten back to back, as fast as the store takes them.
func (s *Service) writeUses() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.UsedInterval)
	defer tick.Stop()
	batch := make([]*entry, 0, s.cfg.UsedBatch)
	var held []heldUse // written since the last tick, still marked queued
	for {
		select {
		case e := <-s.uses:
			batch = append(batch, e)
			if len(batch) >= s.cfg.UsedBatch && s.flushErr == nil { // while failing, wait for the tick
				batch, held = s.flushUses(context.Background(), batch, held)
			}
		case <-tick.C:
			for _, h := range held {
				if h.e.lastUsed.Load() > h.at {
					batch = append(batch, h.e) // used since it was written: write it again
				} else {
					h.e.queued.Store(false)
				}
			}
			held = held[:0]
			batch, held = s.flushUses(context.Background(), batch, held)
		case <-s.stop:
			for _, h := range held {
				if h.e.lastUsed.Load() > h.at {
					batch = append(batch, h.e)
				}
			}
			s.pending = batch // Close writes it, with its ctx
			return
		}
	}
}

// heldUse is a key written with the last-use time at.
type heldUse struct {
	e  *entry
	at int64
}

// flushUses writes one batch and returns what is left to write, and held with the
// written keys added (when held is not nil: Close passes nil). After a failure nothing
// is added to held and the batch itself is returned, its keys still queued, so the next
// flush retries it: a store outage loses no last_used_at. What is kept is capped at
// maxHeldUses times UsedBatch keys, the oldest dropped (and logged) beyond.
func (s *Service) flushUses(ctx context.Context, batch []*entry, held []heldUse) ([]*entry, []heldUse) {
	if len(batch) == 0 {
		return batch, held
	}
	uses := make([]Use, len(batch))
	ats := make([]int64, len(batch))
	for i, e := range batch {
		ats[i] = e.lastUsed.Load()
		uses[i] = Use{ID: e.id, At: time.UnixMicro(ats[i]).UTC()}
	}
	err := s.store.MarkUsed(ctx, uses)
	s.flushErr = err
	if err == nil {
		for i, e := range batch {
			held = append(held, heldUse{e, ats[i]})
		}
		return batch[:0], held
	}
	s.log.Warn("apikey: writing last_used_at failed; keeping the batch for the next try", "keys", len(uses), "err", err)
	if over := len(batch) - maxHeldUses*s.cfg.UsedBatch; over > 0 {
		for _, e := range batch[:over] {
			e.queued.Store(false)
		}
		s.log.Error("apikey: dropping last_used_at of keys the store has not taken", "keys", over)
		batch = append(batch[:0], batch[over:]...)
	}
	return batch, held
}

// closeTries is how often Close tries its last write.
const closeTries = 10

// maxHeldUses bounds the last_used_at batches kept while the store fails.
const maxHeldUses = 20

// Close stops the background writer and writes the last_used_at times it holds. It
// retries that write a few times while the store fails (about a second, or until ctx
// ends), and returns its last error (saying how many keys were not written), or ctx's
// error if the writer did not stop before ctx ended. Verify keeps working after Close,
// but uses are no longer recorded.
func (s *Service) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		select {
		case <-s.done:
		case <-ctx.Done():
			err = ctx.Err()
			return
		}
		batch := s.pending
		for {
			select {
			case e := <-s.uses:
				batch = append(batch, e)
				continue
			default:
			}
			break
		}
		// Retry a failing store (closeTries times, 100 ms apart, or until ctx ends), so an
		// outage that is over by now costs nothing and Close reports only what could not
		// be written.
		for try := 1; ; try++ {
			batch, _ = s.flushUses(ctx, batch, nil)
			if s.flushErr == nil || try == closeTries {
				break
			}
			timer := time.NewTimer(100 * time.Millisecond)
			select {
			case <-timer.C:
				continue
			case <-ctx.Done():
				timer.Stop()
			}
			break
		}
		if err = s.flushErr; err != nil {
			err = fmt.Errorf("apikey: close: %d keys' last_used_at not written: %w", len(batch), err)
		}
	})
	return err
}
