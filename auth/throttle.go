package auth

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// ErrTooManyAttempts is matched (errors.Is) by *ThrottledError: too many attempts for
// one account (failed logins, or failed second factors). Servers answer it with 429 and
// a Retry-After header.
var ErrTooManyAttempts = errors.New("auth: too many failed login attempts")

// ErrInvalidAttemptLimit is returned by ThrottleStore.Reserve for an AttemptLimit with
// Max < 1 or Window < 1 µs.
var ErrInvalidAttemptLimit = errors.New("auth: invalid attempt limit")

// ThrottledError says how long a throttled caller must wait.
type ThrottledError struct {
	RetryAfter time.Duration // > 0
}

// Error names the wait in whole seconds.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%s: retry after %ds", ErrTooManyAttempts, RetryAfterSeconds(e.RetryAfter))
}

// Is makes errors.Is(err, ErrTooManyAttempts) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrTooManyAttempts }

// RetryAfterSeconds rounds d up to whole seconds, at least 1, for a Retry-After header.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		return 1
	}
	return s
}

// AttemptLimit is the rule of one attempt counter: at most Max attempts in a fixed
// window of Window that opens at the first attempt. Attempts are counted when they are
// reserved, before the expensive check they guard, so attempts still in flight count.
type AttemptLimit struct {
	Max    int
	Window time.Duration
}

// Valid reports whether l can be used: Max ≥ 1 and Window ≥ 1 µs (the precision every
// store keeps).
func (l AttemptLimit) Valid() bool { return l.Max >= 1 && l.Window >= time.Microsecond }

// Attempts is the state of one counter: Count attempts in the window that opened at
// Start. The zero value is a counter with no open window.
type Attempts struct {
	Count int
	Start time.Time
}

// Reservation is the answer of ThrottleStore.Reserve.
type Reservation struct {
	// OK is true when an attempt was counted and the caller may go on.
	OK bool
	// Count is the number of attempts in the window, this one included when OK.
	Count int
	// Start opens the window the attempt was counted in; pass it to Release.
	Start time.Time
	// RetryAfter is, when !OK, how long until the window closes (> 0, ≤ Window).
	RetryAfter time.Duration
}

// Reserve is the one algorithm every ThrottleStore runs atomically on a key's state at
// time now: when no window is open (a zero Start, or now ≥ Start+Window), it opens one
// at now holding this attempt; when the open window has room (Count < Max), it counts
// the attempt; otherwise it refuses, changing nothing, and says how long the window
// still runs. A clock behind Start (another instance's skew) is inside the window.
// Times are kept at microsecond precision.
func (l AttemptLimit) Reserve(a Attempts, now time.Time) (Attempts, Reservation) {
	now = now.Truncate(time.Microsecond)
	if a.Start.IsZero() || !now.Before(a.Start.Add(l.Window)) {
		a = Attempts{Count: 1, Start: now}
		return a, Reservation{OK: true, Count: 1, Start: now}
	}
	if a.Count < l.Max {
		a.Count++
		return a, Reservation{OK: true, Count: a.Count, Start: a.Start}
	}
	wait := a.Start.Add(l.Window).Sub(now)
	if wait > l.Window {
		wait = l.Window
	}
	return a, Reservation{Count: a.Count, Start: a.Start, RetryAfter: wait}
}

// ThrottleStore keeps keyed attempt counters that protect accounts: the login throttle
// and any other check an attacker could repeat (a second factor, a password reset). An
// in-process store is the default; storage/postgres and storage/redis keep the counters
// where every instance of a service shares them. Keys are opaque strings of any bytes;
// adapters may store them hashed. Implementations are safe for concurrent use, and each
// method is one atomic step: of n concurrent Reserve calls on a key with room for k more
// attempts, exactly min(n, k) succeed, across every process sharing the store.
type ThrottleStore interface {
	// Reserve runs AttemptLimit.Reserve on key's counter at now, atomically, and returns
	// its answer. Refused attempts are not counted. now is the caller's clock, so
	// instances whose clocks differ by s shift a window's end by at most s. It returns
	// ErrInvalidAttemptLimit for an invalid limit and the store's error when it fails.
	Reserve(ctx context.Context, key string, limit AttemptLimit, now time.Time) (Reservation, error)
	// Release gives back one attempt reserved in the window that opened at start (the
	// Reservation's Start): the count drops by one, never below zero. When the window has
	// closed or another one has opened since, or the key is unknown, it is a no-op that
	// returns nil.
	Release(ctx context.Context, key string, start time.Time) error
	// Reset forgets key's counter; resetting an unknown key is a no-op that returns nil.
	Reset(ctx context.Context, key string) error
}

// ThrottleKey returns the key of a throttle counter: kind (such as "login-ip") and parts
// joined so that no two different part lists give one key.
func ThrottleKey(kind string, parts ...string) string {
	n := len(kind)
	for _, p := range parts {
		n += len(p) + 6
	}
	b := make([]byte, 0, n)
	b = append(b, kind...)
	for _, p := range parts {
		b = fmt.Appendf(b, ":%d:", len(p))
		b = append(b, p...)
	}
	return string(b)
}

// ClientNetwork is the address a per-client counter is keyed by: an IPv4 address as
// it is (an IPv4-mapped IPv6 address as IPv4), an IPv6 address cut to its /64 (one
// subscriber usually holds a whole /64, so a per-address key would give them 2^64
// tries), and anything unparsable as given. An empty ip gives "".
func ClientNetwork(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// localThrottle is the default ThrottleStore: one process, at most maxKeys counters in
// the order their windows opened; closed windows at the front are dropped as new ones
// open, and the oldest when full, so memory stays bounded and each call is O(1).
// storage/memory.ThrottleStore is the same as an adapter.
type localThrottle struct {
	maxKeys int
	mu      sync.Mutex
	keys    map[string]*list.Element // of *throttleCounter
	order   list.List                // oldest window first
}

func newLocalThrottle(maxKeys int) *localThrottle {
	return &localThrottle{maxKeys: maxKeys, keys: map[string]*list.Element{}}
}

type throttleCounter struct {
	key string
	Attempts
	end time.Time // when the window closes
}

var _ ThrottleStore = (*localThrottle)(nil)

func (s *localThrottle) Reserve(_ context.Context, key string, limit AttemptLimit, now time.Time) (Reservation, error) {
	if !limit.Valid() {
		return Reservation{}, ErrInvalidAttemptLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.keys[key]
	if !ok {
		next, r := limit.Reserve(Attempts{}, now)
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

func (s *localThrottle) Release(_ context.Context, key string, start time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.keys[key]; ok {
		if c := e.Value.(*throttleCounter); c.Count > 0 && c.Start.Equal(start.Truncate(time.Microsecond)) {
			c.Count--
		}
	}
	return nil
}

func (s *localThrottle) Reset(_ context.Context, key string) error {
	s.mu.Lock()
	if e, ok := s.keys[key]; ok {
		s.order.Remove(e)
		delete(s.keys, key)
	}
	s.mu.Unlock()
	return nil
}

// evict makes room for one counter: it drops closed windows from the front, then the
// oldest window while the store is full. Called with mu held.
func (s *localThrottle) evict(now time.Time) {
	for e := s.order.Front(); e != nil; e = s.order.Front() {
		c := e.Value.(*throttleCounter)
		if now.Before(c.end) && len(s.keys) < s.maxKeys {
			return
		}
		s.order.Remove(e)
		delete(s.keys, c.key)
	}
}
