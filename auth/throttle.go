package auth

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrTooManyAttempts is matched (errors.Is) by *ThrottledError: too many failed logins
// for one email. Servers answer it with 429 and a Retry-After header.
var ErrTooManyAttempts = errors.New("auth: too many failed login attempts")

// ThrottledError says how long a throttled email must wait.
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

// throttle counts failed logins per key in fixed windows that start at the first failure.
// It holds at most maxKeys keys; when full, expired windows are swept and, if that frees
// nothing, the oldest window is dropped, so memory stays bounded.
type throttle struct {
	max     int
	window  time.Duration
	maxKeys int

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	count int
	start time.Time
}

func newThrottle(max int, window time.Duration, maxKeys int) *throttle {
	return &throttle{max: max, window: window, maxKeys: maxKeys, keys: map[string]*failures{}}
}

// check returns how long key must wait, or 0 when it may try.
func (t *throttle) check(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.keys[key]
	if !ok {
		return 0
	}
	end := f.start.Add(t.window)
	if !now.Before(end) {
		delete(t.keys, key)
		return 0
	}
	if f.count >= t.max {
		return end.Sub(now)
	}
	return 0
}

// fail records one failure for key.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.keys[key]
	if ok && !now.Before(f.start.Add(t.window)) {
		ok = false
	}
	if !ok {
		if len(t.keys) >= t.maxKeys {
			t.evict(now)
		}
		f = &failures{start: now}
		t.keys[key] = f
	}
	f.count++
}

// reset forgets key, after a successful login.
func (t *throttle) reset(key string) {
	t.mu.Lock()
	delete(t.keys, key)
	t.mu.Unlock()
}

// evict drops expired windows, or the oldest one if none has expired. Called with mu held.
func (t *throttle) evict(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, f := range t.keys {
		if !now.Before(f.start.Add(t.window)) {
			delete(t.keys, k)
			continue
		}
		if oldestKey == "" || f.start.Before(oldest) {
			oldestKey, oldest = k, f.start
		}
	}
	if len(t.keys) >= t.maxKeys && oldestKey != "" {
		delete(t.keys, oldestKey)
	}
}
