package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

var _ usage.BlockCounter = (*UsageStore)(nil)

// TakeCalls implements usage.BlockCounter (and, for one call, AddCall) on the user's
// counter of the month, in one compare-and-swap: the check against the cap and the count
// are one step.
func (s *UsageStore) TakeCalls(_ context.Context, user ecoid.ID, period time.Time, n, limit int64, hardCap bool) (int64, int64, error) {
	if n < 1 {
		return 0, 0, fmt.Errorf("memory: take calls: n %d < 1", n)
	}
	c := s.counter(s.key(user, period))
	if !hardCap {
		return n, c.Add(n), nil
	}
	for {
		count := c.Load()
		granted := max(0, min(n, limit-count))
		if granted == 0 {
			return 0, count, nil
		}
		if c.CompareAndSwap(count, count+granted) {
			return granted, count + granted, nil
		}
	}
}

// ReturnCalls implements usage.BlockCounter.
func (s *UsageStore) ReturnCalls(_ context.Context, user ecoid.ID, period time.Time, n int64) error {
	if n <= 0 {
		return nil
	}
	c := s.existing(user, period)
	if c == nil {
		return nil
	}
	for {
		count := c.Load()
		if count <= 0 || c.CompareAndSwap(count, max(0, count-n)) {
			return nil
		}
	}
}
