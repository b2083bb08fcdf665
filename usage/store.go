package usage

import (
	"context"
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
	// A record for a day already rolled up (a late record) makes the store read that day
	// from the log again until the next Aggregate of it.
	WriteBatch(ctx context.Context, batch []Record) error
}

// Counter keeps the exact number of calls per user and quota period. It is exact under
// concurrency and across restarts: it is not derived from the log, and no retention
// setting ever drops it.
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

// Reader answers analytics questions. Ranges are [from, to): from inclusive, to
// exclusive. An empty result is not an error.
//
// A store keeps two views of the calls: the detailed log (one entry per record, which a
// retention setting may thin out) and the daily rollup (per user, day, method and
// endpoint: calls, errors, latency sum and a latency histogram), which Aggregate
// computes and which is kept. A whole UTC day of a range is answered from the rollup
// once Aggregate has rolled it up after it closed, so a long range costs O(days), not
// O(calls); the parts of days at the range's edges, today, and days not rolled up yet
// are answered from the log. Counts are the same either way. Detailed rows dropped by
// retention are only answered through whole rolled-up days.
type Reader interface {
	// History returns days entries, one per UTC day from DayStart(from) on, oldest
	// first, with user's calls and errors (IsError) of each day; a day without calls is
	// present with zeros. days must be at least 1.
	History(ctx context.Context, user ecoid.ID, from time.Time, days int) ([]DailyCalls, error)
	// Endpoints returns user's calls in [from, to) per method and endpoint, ordered by
	// calls (most first), then method, then endpoint. See EndpointStats for how exact
	// the 95th percentile is.
	Endpoints(ctx context.Context, user ecoid.ID, from, to time.Time) ([]EndpointStats, error)
	// TotalCalls returns the number of calls of every user in [from, to).
	TotalCalls(ctx context.Context, from, to time.Time) (int64, error)
	// TopUsers returns the n users with the most calls in [from, to), ordered by calls
	// (most first), then user ID. n < 1 returns nothing.
	TopUsers(ctx context.Context, from, to time.Time, n int) ([]UserCalls, error)
	// Aggregate (re)computes the daily rollup of the UTC day that holds day from the log:
	// running it again, or after late records arrived, leaves exactly the rollup of the
	// log as it is then; running it at once from several processes is safe. A day that
	// ended a few minutes ago or more (the store's clock) is then answered from the
	// rollup; a day still open is computed but still read from the log. Rolling up a day
	// whose detailed rows retention has dropped keeps the rollup it has.
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

// Maintainer is a store that needs periodic upkeep; RunMaintenance calls it.
type Maintainer interface {
	// Maintain rolls up (Aggregate) every closed day that has calls and is not rolled up
	// yet or received late records, prepares storage for the coming months, and, when
	// retention is positive, drops detailed log rows older than now-retention (a store
	// may keep them longer, to the end of a storage unit such as a month). Rollups and
	// period counters are never dropped. Maintain is idempotent and safe to run from
	// several processes at once.
	Maintain(ctx context.Context, now time.Time, retention time.Duration) error
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
	// P95LatencyMS is the 95th percentile, rounded to 3 decimals. It is exact (the
	// continuous percentile, PostgreSQL's percentile_cont) when the whole range is
	// answered from the detailed log; when any day of it comes from the rollup, it is
	// estimated from the rollup's latency histogram, whose buckets are at most 1/16 as
	// wide as their lower bound: the estimate is within about 6.25 % of the exact value.
	P95LatencyMS float64
}

// UserCalls is one user's number of calls.
type UserCalls struct {
	UserID ecoid.ID
	Calls  int64
}
