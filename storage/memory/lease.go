package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

var _ usage.BlockCounter = (*UsageStore)(nil)

// TakeCalls implements usage.BlockCounter, under the counters' lock, as AddCall.
func (s *UsageStore) TakeCalls(_ context.Context, user ecoid.ID, period time.Time, n, limit int64, hardCap bool) (int64, int64, error) {
	if n < 1 {
		return 0, 0, fmt.Errorf("memory: take calls: n %d < 1", n)
	}
	k := s.key(user, period)
	s.countMu.Lock()
	defer s.countMu.Unlock()
	count := s.counts[k]
	granted := n
	if hardCap {
		granted = max(0, min(n, limit-count))
	}
	if granted > 0 {
		count += granted
		s.counts[k] = count
	}
	return granted, count, nil
}

// ReturnCalls implements usage.BlockCounter.
func (s *UsageStore) ReturnCalls(_ context.Context, user ecoid.ID, period time.Time, n int64) error {
	k := s.key(user, period)
	s.countMu.Lock()
	defer s.countMu.Unlock()
	if c, ok := s.counts[k]; ok && n > 0 {
		s.counts[k] = max(0, c-n)
	}
	return nil
}
