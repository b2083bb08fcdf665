package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

var _ usage.Store = (*UsageStore)(nil)

// UsageStore is the in-memory usage.Store: the detailed log, the per-period call
// counter and the daily rollup.
type UsageStore struct {
	mu     sync.RWMutex
	ids    map[ecoid.ID]struct{}
	log    []usage.Record
	counts map[periodKey]int64
	daily  map[dayKey]usage.DailyCalls
}

type periodKey struct {
	user   ecoid.ID
	period time.Time
}

type dayKey struct {
	user ecoid.ID
	day  time.Time
}

// NewUsage returns an empty UsageStore.
func NewUsageStore() *UsageStore {
	return &UsageStore{
		ids:    map[ecoid.ID]struct{}{},
		counts: map[periodKey]int64{},
		daily:  map[dayKey]usage.DailyCalls{},
	}
}

// WriteBatch implements usage.Writer: all or nothing, skipping IDs already held; a record
// that fails Validate refuses the batch with an error wrapping usage.ErrInvalidRecord.
func (s *UsageStore) WriteBatch(ctx context.Context, batch []usage.Record) error {
	if err := ctx.Err(); err != nil {
		return usage.Retriable(err)
	}
	for i := range batch {
		if err := batch[i].Validate(); err != nil {
			return fmt.Errorf("memory: usage batch record %d: %w", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range batch {
		if _, dup := s.ids[r.ID]; dup {
			continue
		}
		s.ids[r.ID] = struct{}{}
		r.Time = r.Time.UTC().Truncate(time.Microsecond) // what PostgreSQL keeps
		r.Latency = r.Latency.Truncate(time.Microsecond)
		s.log = append(s.log, r)
	}
	return nil
}

// AddCall implements usage.Counter.
func (s *UsageStore) AddCall(_ context.Context, user ecoid.ID, period time.Time, limit int64, hardCap bool) (int64, bool, error) {
	k := periodKey{user, usage.PeriodStart(period)}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.counts[k]
	if hardCap && n >= limit {
		return n, false, nil
	}
	n++
	s.counts[k] = n
	return n, true, nil
}

// RemoveCall implements usage.Counter.
func (s *UsageStore) RemoveCall(_ context.Context, user ecoid.ID, period time.Time) error {
	k := periodKey{user, usage.PeriodStart(period)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts[k] > 0 {
		s.counts[k]--
	}
	return nil
}

// PeriodCalls implements usage.Counter.
func (s *UsageStore) PeriodCalls(_ context.Context, user ecoid.ID, period time.Time) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.counts[periodKey{user, usage.PeriodStart(period)}], nil
}

// each calls f for every logged record of user (every user when user is empty) in
// [from, to), under the read lock.
func (s *UsageStore) each(user ecoid.ID, from, to time.Time, f func(r *usage.Record)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range s.log {
		r := &s.log[i]
		if (user == "" || r.UserID == user) && !r.Time.Before(from) && r.Time.Before(to) {
			f(r)
		}
	}
}

// History implements usage.Reader.
func (s *UsageStore) History(_ context.Context, user ecoid.ID, from time.Time, days int) ([]usage.DailyCalls, error) {
	if days < 1 {
		return nil, fmt.Errorf("memory: usage history: days %d < 1", days)
	}
	start := usage.DayStart(from)
	byDay := map[time.Time]*usage.DailyCalls{}
	s.each(user, start, start.AddDate(0, 0, days), func(r *usage.Record) {
		day := usage.DayStart(r.Time)
		d := byDay[day]
		if d == nil {
			d = &usage.DailyCalls{Date: day}
			byDay[day] = d
		}
		d.Calls++
		if usage.IsError(r.Status) {
			d.Errors++
		}
	})
	sparse := make([]usage.DailyCalls, 0, len(byDay))
	for _, d := range byDay {
		sparse = append(sparse, *d)
	}
	return usage.FillDays(start, days, sparse), nil
}

// Endpoints implements usage.Reader.
func (s *UsageStore) Endpoints(_ context.Context, user ecoid.ID, from, to time.Time) ([]usage.EndpointStats, error) {
	type acc struct {
		calls, errors int64
		latencies     []float64 // microseconds
		sum           int64
	}
	type key struct{ method, endpoint string }
	groups := map[key]*acc{}
	s.each(user, from, to, func(r *usage.Record) {
		k := key{r.Method, r.Endpoint}
		a := groups[k]
		if a == nil {
			a = &acc{}
			groups[k] = a
		}
		a.calls++
		if usage.IsError(r.Status) {
			a.errors++
		}
		us := r.Latency.Microseconds()
		a.sum += us
		a.latencies = append(a.latencies, float64(us))
	})
	out := make([]usage.EndpointStats, 0, len(groups))
	for k, a := range groups {
		out = append(out, usage.NewEndpointStats(k.method, k.endpoint, a.calls, a.errors, a.sum, usage.Percentile(a.latencies, 0.95)))
	}
	usage.SortEndpoints(out)
	return out, nil
}

// TotalCalls implements usage.Reader.
func (s *UsageStore) TotalCalls(_ context.Context, from, to time.Time) (int64, error) {
	var n int64
	s.each("", from, to, func(*usage.Record) { n++ })
	return n, nil
}

// TopUsers implements usage.Reader.
func (s *UsageStore) TopUsers(_ context.Context, from, to time.Time, n int) ([]usage.UserCalls, error) {
	if n < 1 {
		return nil, nil
	}
	counts := map[ecoid.ID]int64{}
	s.each("", from, to, func(r *usage.Record) { counts[r.UserID]++ })
	out := make([]usage.UserCalls, 0, len(counts))
	for u, c := range counts {
		out = append(out, usage.UserCalls{UserID: u, Calls: c})
	}
	usage.SortUsers(out)
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// Aggregate implements usage.Reader: it replaces the day's rollup with a fresh count.
func (s *UsageStore) Aggregate(_ context.Context, day time.Time) error {
	start := usage.DayStart(day)
	fresh := map[dayKey]usage.DailyCalls{}
	s.each("", start, start.AddDate(0, 0, 1), func(r *usage.Record) {
		k := dayKey{r.UserID, start}
		d := fresh[k]
		d.Date = start
		d.Calls++
		if usage.IsError(r.Status) {
			d.Errors++
		}
		fresh[k] = d
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.daily {
		if k.day.Equal(start) {
			delete(s.daily, k)
		}
	}
	for k, d := range fresh {
		s.daily[k] = d
	}
	return nil
}

// Daily implements usage.Reader.
func (s *UsageStore) Daily(_ context.Context, user ecoid.ID, from, to time.Time) ([]usage.DailyCalls, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []usage.DailyCalls
	for d := usage.DayStart(from); d.Before(to); d = d.AddDate(0, 0, 1) {
		if d.Before(from) {
			continue
		}
		if dc, ok := s.daily[dayKey{user, d}]; ok {
			out = append(out, dc)
		}
	}
	return out, nil
}
