package storagetest

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// NewTokenStore returns a fresh apikey.TokenStore for one test, reading time from now.
type NewTokenStore func(t *testing.T, now func() time.Time) apikey.TokenStore

// RunTokens runs the apikey.TokenStore contract, and apikey.LeasedLimiter over it as two
// instances would use it, against an adapter.
func RunTokens(t *testing.T, newStore NewTokenStore) {
	t.Helper()
	t.Run("TakeFollowsGCRATake", func(t *testing.T) { testTakeFollowsGCRA(t, newStore) })
	t.Run("TwoInstancesNeverPassABurst", func(t *testing.T) { testTokensBurst(t, newStore) })
	t.Run("TwoInstancesNeverPassTheRate", func(t *testing.T) { testTokensRate(t, newStore) })
	t.Run("ALimitChangeDropsHeldTokens", func(t *testing.T) { testTokensLimitChange(t, newStore) })
}

func testTakeFollowsGCRA(t *testing.T, newStore NewTokenStore) {
	clock := newLeaseClock()
	s := newStore(t, clock.now)
	limit := apikey.Limit{Name: "take", Count: 10, Period: 10 * time.Second}
	g, _ := limit.GCRA()
	var tat, seen int64
	steps := []struct {
		advance time.Duration
		n       int
		hold    time.Duration
	}{{0, 3, time.Second}, {0, 20, time.Second}, {0, 1, 0}, {500 * time.Millisecond, 2, 0},
		{3 * time.Second, 4, 2 * time.Second}, {time.Minute, 1, 0}, {0, 50, time.Hour}, {0, 1, 0}}
	key := string(ecoid.New(ecoid.APIKey))
	for i, st := range steps {
		clock.add(st.advance)
		got, err := s.TakeTokens(context.Background(), key, limit, st.n, st.hold)
		if err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
		var want apikey.TokenGrant
		want.Granted, tat, seen, want.ValidUntil = g.Take(tat, seen, clock.now().UnixMicro(), st.n, st.hold.Microseconds())
		want.TAT, want.Now = tat, seen
		if got != want {
			t.Fatalf("take %d (%+v): %+v, want GCRA.Take's %+v", i, st, got, want)
		}
	}
	if _, err := s.TakeTokens(context.Background(), key, apikey.Limit{Count: 0, Period: time.Second}, 1, 0); err == nil {
		t.Fatal("an invalid limit was accepted")
	}
}

// With the clock frozen, any number of goroutines on two instances get at most one
// burst, and at most the hold's worth of it less.
func testTokensBurst(t *testing.T, newStore NewTokenStore) {
	clock := newLeaseClock()
	s := newStore(t, clock.now)
	limit := apikey.Limit{Count: 100, Period: time.Minute}
	hold := time.Second
	var allowed atomic.Int64
	var wg sync.WaitGroup
	key := string(ecoid.New(ecoid.APIKey))
	for range 2 {
		l := apikey.NewLeasedLimiter(s, apikey.WithLeaseClock(clock.now), apikey.WithHold(hold))
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 40 {
					d, err := l.Allow(context.Background(), key, limit)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	lost := int64(hold / (limit.Period / time.Duration(limit.Count))) // the guard of the first take
	if n := allowed.Load(); n > 100 || n < 100-lost-1 {
		t.Fatalf("two instances allowed %d of a burst of 100 (want %d..100)", n, 100-lost-1)
	}
}

// Under a moving clock, with requests alternating at random between two instances, no
// span of time ever holds more allowed requests than GCRA permits: Count + span/Interval.
func testTokensRate(t *testing.T, newStore NewTokenStore) {
	clock := newLeaseClock()
	s := newStore(t, clock.now)
	limit := apikey.Limit{Count: 200, Period: 2 * time.Second} // interval 10 ms
	g, _ := limit.GCRA()
	instances := []*apikey.LeasedLimiter{
		apikey.NewLeasedLimiter(s, apikey.WithLeaseClock(clock.now), apikey.WithHold(50*time.Millisecond)),
		apikey.NewLeasedLimiter(s, apikey.WithLeaseClock(clock.now), apikey.WithHold(50*time.Millisecond)),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	key := string(ecoid.New(ecoid.APIKey))
	var times []int64
	for i := range 4000 {
		// Bursts past the limit, pauses past the period, and steady traffic around the
		// rate, so tokens are held across every kind of change.
		switch phase := i % 1000; {
		case phase < 300:
		case phase < 302:
			clock.add(time.Duration(1000+rng.IntN(3000)) * time.Millisecond)
		default:
			clock.add(time.Duration(rng.IntN(20)) * time.Millisecond)
		}
		d, err := instances[rng.IntN(2)].Allow(context.Background(), key, limit)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			times = append(times, clock.now().UnixMicro())
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for i := range times {
		for j := i; j < len(times); j++ {
			span := times[j] - times[i]
			if int64(j-i+1) > int64(g.Count)+span/g.Interval {
				t.Fatalf("%d requests allowed within %v: GCRA allows at most %d", j-i+1,
					time.Duration(span)*time.Microsecond, int64(g.Count)+span/g.Interval)
			}
		}
	}
	if len(times) < 1000 {
		t.Fatalf("only %d requests allowed: the leases lose too much", len(times))
	}
}

// countingTokens counts the takes that reach the store.
type countingTokens struct {
	apikey.TokenStore
	takes atomic.Int64
}

func (c *countingTokens) TakeTokens(ctx context.Context, key string, limit apikey.Limit, n int, hold time.Duration) (apikey.TokenGrant, error) {
	c.takes.Add(1)
	return c.TokenStore.TakeTokens(ctx, key, limit, n, hold)
}

// Tokens taken under one limit are not served under another: the first decision under a
// new limit asks the store. And leases do their job: most decisions do not.
func testTokensLimitChange(t *testing.T, newStore NewTokenStore) {
	clock := newLeaseClock()
	s := &countingTokens{TokenStore: newStore(t, clock.now)}
	l := apikey.NewLeasedLimiter(s, apikey.WithLeaseClock(clock.now))
	key := string(ecoid.New(ecoid.APIKey))
	for range 1000 {
		clock.add(time.Millisecond)
		if d, _ := l.Allow(context.Background(), key, apikey.PerMinute(100_000)); !d.Allowed {
			t.Fatal("refused under 100,000 a minute")
		}
	}
	if n := s.takes.Load(); n > 100 {
		t.Fatalf("1,000 decisions made %d store round trips; leases should spare most", n)
	}
	before := s.takes.Load()
	if _, err := l.Allow(context.Background(), key, apikey.PerMinute(50)); err != nil {
		t.Fatal(err)
	}
	if s.takes.Load() != before+1 {
		t.Fatal("a decision under a new limit was served from tokens taken under the old one")
	}
}
