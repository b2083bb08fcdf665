package usage

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Writer stores batches of records in the detailed log.
type Writer interface {
	// WriteBatch stores every record of batch, skipping each one whose ID the store
	// already holds (so sending a batch again after an unknown outcome is safe). It
	// stores all of the batch or none of it. A transient failure (lost connection,
	// timeout, serialization failure, deadlock) is reported as an error that IsRetriable
	// accepts, such as one wrapping ErrRetriable; any other error means the store refused
	// the batch for its content (a record that fails Validate is refused with an error
	// wrapping ErrInvalidRecord), and the Tracker splits the batch to find the record.
	WriteBatch(ctx context.Context, batch []Record) error
}

// Counter keeps the exact number of calls per user and quota period (eco_usage_records).
// It is exact under concurrency and across restarts: it is not derived from the log.
type Counter interface {
	// AddCall adds one call to user's count for period (a PeriodStart value) when
	// hardCap is false, or when it is true and the count is below limit, atomically. It
	// returns the count after the call and whether the call was added; when it was not,
	// count is the unchanged count.
	AddCall(ctx context.Context, user ecoid.ID, period time.Time, limit int64, hardCap bool) (count int64, added bool, err error)
	// RemoveCall takes one call back from user's count for period; a count of zero (or a
	// period never counted) stays zero and is not an error.
	RemoveCall(ctx context.Context, user ecoid.ID, period time.Time) error
	// PeriodCalls returns user's count for period (a PeriodStart value); 0 for a period
	// never counted.
	PeriodCalls(ctx context.Context, user ecoid.ID, period time.Time) (int64, error)
}

// Reader answers analytics questions from the log and the daily rollup. Ranges are
// [from, to): from inclusive, to exclusive. An empty result is not an error.
type Reader interface {
	// History returns days entries, one per UTC day from DayStart(from) on, oldest
	// first, with user's calls and errors (IsError) of each day in the log; a day
	// without calls is present with zeros. days must be at least 1.
	History(ctx context.Context, user ecoid.ID, from time.Time, days int) ([]DailyCalls, error)
	// Endpoints returns user's calls in [from, to) per method and endpoint, ordered by
	// calls (most first), then method, then endpoint.
	Endpoints(ctx context.Context, user ecoid.ID, from, to time.Time) ([]EndpointStats, error)
	// TotalCalls returns the number of calls of every user in [from, to), from the log.
	TotalCalls(ctx context.Context, from, to time.Time) (int64, error)
	// TopUsers returns the n users with the most calls in [from, to), from the log,
	// ordered by calls (most first), then user ID. n < 1 returns nothing.
	TopUsers(ctx context.Context, from, to time.Time, n int) ([]UserCalls, error)
	// Aggregate (re)computes the daily rollup (eco_usage_daily) of the UTC day that
	// holds day from the log: running it again, or after late records arrived, leaves
	// exactly the rollup of the log as it is then.
	Aggregate(ctx context.Context, day time.Time) error
	// Daily returns user's rolled-up days in [from, to), oldest first; days that have
	// not been aggregated, or had no calls, are absent.
	Daily(ctx context.Context, user ecoid.ID, from, to time.Time) ([]DailyCalls, error)
}

// Store is everything the usage package needs from storage. The memory and postgres
// adapters implement it; storagetest holds them to one contract.
type Store interface {
	Writer
	Counter
	Reader
}

// DailyCalls is one UTC day of a user's history.
type DailyCalls struct {
	Date   time.Time // midnight UTC that starts the day
	Calls  int64
	Errors int64 // calls answered with a status of 400 or above
}

// EndpointStats summarises the calls to one method and endpoint.
type EndpointStats struct {
	Method       string
	Endpoint     string
	Calls        int64
	ErrorRate    float64 // errors / calls, rounded to 4 decimals
	AvgLatencyMS float64 // rounded to 3 decimals (microseconds)
	P95LatencyMS float64 // the continuous 95th percentile (PostgreSQL percentile_cont), rounded to 3 decimals
}

// NewEndpointStats computes the rounded stats of one method and endpoint from its calls,
// errors, the sum of its latencies and their 95th percentile (both in microseconds).
// Every adapter builds its answers with it, so they round alike.
func NewEndpointStats(method, endpoint string, calls, errors, sumMicros int64, p95Micros float64) EndpointStats {
	s := EndpointStats{Method: method, Endpoint: endpoint, Calls: calls, P95LatencyMS: Round(p95Micros/1000, 3)}
	if calls > 0 {
		s.ErrorRate = Round(float64(errors)/float64(calls), 4)
		s.AvgLatencyMS = Round(float64(sumMicros)/float64(calls)/1000, 3)
	}
	return s
}

// UserCalls is one user's number of calls.
type UserCalls struct {
	UserID ecoid.ID
	Calls  int64
}

// Stats computations shared by the adapters, so that every store gives identical answers.

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

// FillDays returns days entries from DayStart(from) on, taking each day's counts from
// sparse (in any order) and zeros for the others. Adapters use it to implement History.
func FillDays(from time.Time, days int, sparse []DailyCalls) []DailyCalls {
	if days < 1 {
		return nil
	}
	start := DayStart(from)
	byDate := make(map[time.Time]DailyCalls, len(sparse))
	for _, d := range sparse {
		byDate[DayStart(d.Date)] = d
	}
	out := make([]DailyCalls, days)
	for i := range out {
		date := start.AddDate(0, 0, i)
		d := byDate[date]
		out[i] = DailyCalls{Date: date, Calls: d.Calls, Errors: d.Errors}
	}
	return out
}

// SortEndpoints orders stats by calls (most first), then method, then endpoint.
func SortEndpoints(stats []EndpointStats) {
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
func SortUsers(users []UserCalls) {
	sort.Slice(users, func(i, j int) bool {
		if users[i].Calls != users[j].Calls {
			return users[i].Calls > users[j].Calls
		}
		return users[i].UserID < users[j].UserID
	})
}
