package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Clock is a fake clock for limiter tests: it moves only when told to. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var limiterEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testLimiter(t *testing.T, newStores NewStores) {
	setup := func(t *testing.T) (apikey.Limiter, *Clock, string) {
		t.Helper()
		st := newStores(t)
		if st.Limiter == nil {
			t.Skip("Stores.Limiter is nil: this backend has no rate limiter")
		}
		clock := NewClock(limiterEpoch)
		// A fresh subject per test keeps tests apart on shared servers.
		return st.Limiter(clock.Now), clock, string(ecoid.New(ecoid.APIKey))
	}
	ctx := context.Background()
	allow := func(t *testing.T, l apikey.Limiter, key string, limit apikey.Limit) apikey.Decision {
		t.Helper()
		d, err := l.Allow(ctx, key, limit)
		if err != nil {
			t.Fatalf("Allow(%q, %+v): %v", key, limit, err)
		}
		return d
	}
	perMin := func(n int) apikey.Limit { return apikey.Limit{Count: n, Period: time.Minute} }

	t.Run("BurstThenRefuse", func(t *testing.T) {
		l, clock, key := setup(t)
		for i := 0; i < 5; i++ {
			d := allow(t, l, key, perMin(5))
			if !d.Allowed || d.Limit != 5 || d.Remaining != 4-i || d.RetryAfter != 0 {
				t.Fatalf("request %d: %+v", i+1, d)
			}
			if want := time.Duration(i+1) * 12 * time.Second; d.ResetAfter != want || !d.ResetAt.Equal(clock.Now().Add(want)) {
				t.Fatalf("request %d: reset after %v at %v, want %v", i+1, d.ResetAfter, d.ResetAt, want)
			}
		}
		d := allow(t, l, key, perMin(5))
		if d.Allowed || d.Remaining != 0 || d.RetryAfter != 12*time.Second || d.ResetAfter != time.Minute {
			t.Fatalf("request 6: %+v", d)
		}
		// A refused request consumes nothing: the wait stays the same.
		if d := allow(t, l, key, perMin(5)); d.Allowed || d.RetryAfter != 12*time.Second {
			t.Fatalf("request 7: %+v", d)
		}
	})

	t.Run("RefillsOneIntervalAtATime", func(t *testing.T) {
		l, clock, key := setup(t)
		for i := 0; i < 5; i++ {
			allow(t, l, key, perMin(5))
		}
		clock.Advance(11 * time.Second)
		if d := allow(t, l, key, perMin(5)); d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("after 11 s: %+v", d)
		}
		clock.Advance(time.Second)
		if d := allow(t, l, key, perMin(5)); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("after 12 s: %+v", d)
		}
		if d := allow(t, l, key, perMin(5)); d.Allowed {
			t.Fatalf("second request after 12 s: %+v", d)
		}
		clock.Advance(time.Hour)
		for i := 0; i < 5; i++ {
			if d := allow(t, l, key, perMin(5)); !d.Allowed || d.Remaining != 4-i {
				t.Fatalf("after an idle hour, request %d: %+v", i+1, d)
			}
		}
	})

	t.Run("SubjectsAndPoliciesAreSeparate", func(t *testing.T) {
		l, _, key := setup(t)
		other := key + "-other"
		a := apikey.Limit{Name: "a", Count: 2, Period: time.Minute}
		b := apikey.Limit{Name: "b", Count: 2, Period: time.Minute}
		allow(t, l, key, a)
		allow(t, l, key, a)
		if d := allow(t, l, key, a); d.Allowed {
			t.Fatalf("third under policy a: %+v", d)
		}
		if d := allow(t, l, key, b); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("policy b is not separate: %+v", d)
		}
		if d := allow(t, l, other, a); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("another subject is not separate: %+v", d)
		}
		// The empty name is the default policy.
		allow(t, l, key, apikey.Limit{Count: 1, Period: time.Minute})
		if d := allow(t, l, key, apikey.Limit{Name: apikey.DefaultPolicy, Count: 1, Period: time.Minute}); d.Allowed {
			t.Fatalf("the empty name is not the default policy: %+v", d)
		}
	})

	t.Run("ChangingTheLimitDoesNotResetTheCount", func(t *testing.T) {
		l, clock, key := setup(t)
		for i := 0; i < 5; i++ {
			allow(t, l, key, perMin(5))
		}
		if d := allow(t, l, key, perMin(3)); d.Allowed {
			t.Fatalf("a lower limit reset the count: %+v", d)
		}
		if d := allow(t, l, key, perMin(10)); d.Allowed || d.RetryAfter != 6*time.Second {
			t.Fatalf("a higher limit: %+v", d)
		}
		clock.Advance(6 * time.Second)
		if d := allow(t, l, key, perMin(10)); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("a higher limit after one of its intervals: %+v", d)
		}
	})

	t.Run("TimeNeverMovesBackwards", func(t *testing.T) {
		l, clock, key := setup(t)
		allow(t, l, key, perMin(2))
		allow(t, l, key, perMin(2))
		clock.Advance(30 * time.Second)
		if d := allow(t, l, key, perMin(2)); !d.Allowed {
			t.Fatalf("after 30 s: %+v", d)
		}
		clock.Set(limiterEpoch) // a caller with an older clock reading
		d := allow(t, l, key, perMin(2))
		if d.Allowed || d.RetryAfter != 30*time.Second || d.ResetAfter != time.Minute {
			t.Fatalf("with an earlier time the limiter must act at the latest time seen: %+v", d)
		}
		clock.Set(limiterEpoch.Add(60 * time.Second))
		if d := allow(t, l, key, perMin(2)); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("at +60 s: %+v", d)
		}
	})

	t.Run("InvalidLimits", func(t *testing.T) {
		l, _, key := setup(t)
		for _, lim := range []apikey.Limit{
			{Count: 0, Period: time.Minute},
			{Count: -1, Period: time.Minute},
			{Count: 1, Period: 0},
			{Count: 1, Period: 999 * time.Nanosecond},
			{Count: 61, Period: 60 * time.Microsecond},
		} {
			if _, err := l.Allow(ctx, key, lim); !errors.Is(err, apikey.ErrInvalidLimit) {
				t.Errorf("Allow(%+v) = %v, want ErrInvalidLimit", lim, err)
			}
		}
	})

	t.Run("HighLimits", func(t *testing.T) {
		l, _, key := setup(t)
		lim := perMin(1_000_000)
		for i := 0; i < 300; i++ {
			if d := allow(t, l, key, lim); !d.Allowed || d.Remaining != 999_999-i {
				t.Fatalf("request %d: %+v", i+1, d)
			}
		}
	})

	t.Run("SameAnswersAsTheReference", func(t *testing.T) {
		l, clock, key := setup(t)
		subjects := []string{key + "-a", key + "-b", key + "-c"}
		limits := []apikey.Limit{perMin(3), perMin(7), {Name: "burst", Count: 2, Period: 10 * time.Second}}
		type state struct{ tat, seen int64 }
		ref := map[string]state{}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 400; i++ {
			clock.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
			if rng.IntN(20) == 0 {
				clock.Advance(-time.Duration(rng.IntN(5000)) * time.Millisecond)
			}
			subject, lim := subjects[rng.IntN(len(subjects))], limits[rng.IntN(len(limits))]
			got := allow(t, l, subject, lim)

			g, _ := lim.GCRA()
			refKey := lim.Policy() + "\x00" + subject
			st := ref[refKey]
			allowed, tat, seen := g.Step(st.tat, st.seen, clock.Now().UnixMicro())
			ref[refKey] = state{tat, seen}
			if want := g.Decision(allowed, tat, seen); got != want {
				t.Fatalf("step %d (%s %+v): got %+v, want %+v", i, subject, lim, got, want)
			}
		}
	})

	t.Run("RacingCallersWithSkewedClocks", func(t *testing.T) {
		st := newStores(t)
		if st.Limiter == nil {
			t.Skip("Stores.Limiter is nil: this backend has no rate limiter")
		}
		// Every call reads a different time, up to 10 s before or after the base: callers
		// race with clocks that disagree, and time seen by the limiter jumps back and
		// forth. With one request per 144 s, nothing refills within that spread, so
		// exactly the burst is allowed.
		var calls atomic.Int64
		skewed := func() time.Time {
			n := calls.Add(1)
			return limiterEpoch.Add(time.Duration(n*7919%20_000-10_000) * time.Millisecond)
		}
		l := st.Limiter(skewed)
		key := string(ecoid.New(ecoid.APIKey))
		lim := apikey.Limit{Count: 25, Period: time.Hour}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := l.Allow(ctx, key, lim)
				if err != nil {
					t.Error(err)
				} else if d.Allowed {
					allowed.Add(1)
				}
			}()
		}
		wg.Wait()
		if allowed.Load() != 25 {
			t.Fatalf("%d of 100 allowed with skewed clocks, want exactly 25", allowed.Load())
		}
	})

	t.Run("ExactUnderConcurrency", func(t *testing.T) {
		l, _, key := setup(t)
		const n, m = 25, 200
		for round := 0; round < 3; round++ {
			subject := fmt.Sprintf("%s-%d", key, round)
			lim := apikey.Limit{Count: n, Period: time.Hour}
			var allowed, refused atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, m)
			for i := 0; i < m; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					d, err := l.Allow(ctx, subject, lim)
					switch {
					case err != nil:
						errs <- err
					case d.Allowed:
						allowed.Add(1)
					default:
						refused.Add(1)
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if allowed.Load() != n || refused.Load() != m-n {
				t.Fatalf("round %d: %d allowed and %d refused of %d, want exactly %d allowed", round, allowed.Load(), refused.Load(), m, n)
			}
		}
	})
}
