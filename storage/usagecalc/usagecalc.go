// Package usagecalc holds the computations every usage.Store adapter shares, so that the
// memory and postgres adapters give identical answers: rounding, percentiles, the latency
// histogram of the daily rollup, and the split of a time range into days.
//
// It is for adapter authors, not for users of usage: the helpers left usage's public API so
// that the domain package speaks only of behaviour. It is public (not internal) so that a
// third-party usage.Store can give the same answers as the bundled adapters.
package usagecalc

import (
	"math"
	"sort"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

// Round rounds x to the given number of decimals, the way the adapters round analytics.
func Round(x float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(x*p) / p
}

// Percentile returns the continuous percentile p (0..1) of values, interpolating linearly
// between the two nearest ranks exactly as PostgreSQL's percentile_cont does. values is
// sorted in place; an empty slice gives 0.
func Percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sort.Float64s(values)
	pos := p * float64(len(values)-1)
	lo := math.Floor(pos)
	hi := math.Ceil(pos)
	if lo == hi {
		return values[int(lo)]
	}
	return values[int(lo)] + (pos-lo)*(values[int(hi)]-values[int(lo)])
}

// EndpointStats computes the rounded stats of one method and endpoint from its calls,
// errors, the sum of its latencies and their 95th percentile (both in microseconds).
func EndpointStats(method, endpoint string, calls, errors, sumMicros int64, p95Micros float64) usage.EndpointStats {
	s := usage.EndpointStats{Method: method, Endpoint: endpoint, Calls: calls, P95LatencyMS: Round(p95Micros/1000, 3)}
	if calls > 0 {
		s.ErrorRate = Round(float64(errors)/float64(calls), 4)
		s.AvgLatencyMS = Round(float64(sumMicros)/float64(calls)/1000, 3)
	}
	return s
}

// FillDays returns days entries from DayStart(from) on, taking each day's counts from
// sparse (in any order, several entries of one day added up) and zeros for the others.
func FillDays(from time.Time, days int, sparse []usage.DailyCalls) []usage.DailyCalls {
	if days < 1 {
		return nil
	}
	start := usage.DayStart(from)
	out := make([]usage.DailyCalls, days)
	for i := range out {
		out[i].Date = start.AddDate(0, 0, i)
	}
	for _, d := range sparse {
		i := int(usage.DayStart(d.Date).Sub(start) / (24 * time.Hour))
		if i >= 0 && i < days {
			out[i].Calls += d.Calls
			out[i].Errors += d.Errors
		}
	}
	return out
}

// SortEndpoints orders stats by calls (most first), then method, then endpoint.
func SortEndpoints(stats []usage.EndpointStats) {
	sort.Slice(stats, func(i, j int) bool {
		a, b := stats[i], stats[j]
		if a.Calls != b.Calls {
			return a.Calls > b.Calls
		}
		if a.Method != b.Method {
			return a.Method < b.Method
		}
		return a.Endpoint < b.Endpoint
	})
}

// SortUsers orders users by calls (most first), then user ID.
func SortUsers(users []usage.UserCalls) {
	sort.Slice(users, func(i, j int) bool {
		if users[i].Calls != users[j].Calls {
			return users[i].Calls > users[j].Calls
		}
		return users[i].UserID < users[j].UserID
	})
}

// TopUsers sums calls per user, sorts them with SortUsers and keeps the first n.
func TopUsers(counts map[string]int64, n int) []usage.UserCalls {
	out := make([]usage.UserCalls, 0, len(counts))
	for u, c := range counts {
		if c > 0 {
			out = append(out, usage.UserCalls{UserID: ecoid.ID(u), Calls: c})
		}
	}
	SortUsers(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}
