package memory

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/usagecalc"
	"github.com/nexus-ecosystem/nexus/usage"
)

var (
	_ usage.Store      = (*UsageStore)(nil)
	_ usage.Maintainer = (*UsageStore)(nil)
	_ usage.Pinger     = (*UsageStore)(nil)
)

// MaxUsageRows is the most detailed rows a UsageStore keeps. When a write takes it past
// this, the oldest eighth of the rows is dropped. A row costs about 100 bytes with its
// entry in the index of IDs (neither has pointers, so the garbage collector does not
// scan them), so the log stays under about 110 MB however long the process runs.
const MaxUsageRows = 1 << 20

// UsageStore is the in-memory usage.Store, for tests, demos and single processes.
//
// Its memory is bounded. Every write is folded at once into the daily rollup (per user,
// day, method and endpoint: calls, errors, latency sum and histogram) and into the
// period counters, which are exact and kept for the life of the store. The detailed log
// behind exact percentiles and sub-day ranges keeps at most MaxUsageRows rows, and
// Maintain drops rows older than its retention. Whole days are always answered from the
// rollup (O(days)); only the parts of days at a range's edges read the log. Record IDs
// are remembered while their rows are kept: a batch sent again after its rows were
// dropped would be counted twice, which the Tracker never does with this store (its
// writes do not fail). Key IDs and byte counts are not kept: nothing reads them.
type UsageStore struct {
	mu      sync.RWMutex
	maxRows int
	now     func() time.Time

	users     map[ecoid.ID]uint32
	userIDs   []ecoid.ID
	routes    map[route]uint32
	routeList []route

	rows   rowLog // the detailed log and the index of its IDs
	pruned int64  // rows at or before this Unix microsecond may have been dropped

	// The period counters are the quota's, on every API request: a periodKey → its
	// *atomic.Int64, outside mu, so a request never waits for a batch write holding mu.
	// A counter is found without a lock and moved by one atomic instruction (a
	// compare-and-swap under a hard cap, so the check and the count are one step). One
	// mutex over a map of counts made every request of every core write the mutex's
	// cache line twice (go test ./storage/memory -bench UsageAddCall). Counters are never
	// removed: one per user and month, as the map was.
	counts    sync.Map
	lastMonth atomic.Pointer[periodMonth] // the latest period converted by monthOf

	days   map[int32]*dayAgg // by days since the Unix epoch
	rolled map[int32]bool    // days Aggregate registered as closed
}

type route struct{ method, endpoint string }

// rowID is the 22 characters of a usage EcoID after its "eco_use_" prefix.
type rowID [22]byte

// usageRow is one detailed row: 48 bytes, no pointers. Status 0 marks a row dropped in
// place (see rowLog).
type usageRow struct {
	id      rowID
	status  uint16
	user    uint32
	route   uint32
	at      int64 // Unix microseconds
	latency int64 // microseconds
}

type dayAgg struct {
	calls, errors int64
	first, last   int64 // the earliest and latest row time of the day, Unix µs
	users         map[uint32]*userDay
}

type userDay struct {
	calls, errors int64
	routes        map[uint32]*routeAgg
}

type routeAgg struct {
	calls, errors, sum int64
	hist               usagecalc.Hist
}

// periodKey names a user's counter of one quota period, a UTC month.
type periodKey struct {
	user  ecoid.ID
	month int32 // months since January of year 0
}

// periodMonth is one conversion of monthOf.
type periodMonth struct {
	at    time.Time
	month int32
}

// key returns the counter of user for the quota period that holds t.
func (s *UsageStore) key(user ecoid.ID, t time.Time) periodKey {
	return periodKey{user, s.monthOf(t)}
}

// monthOf returns the UTC month that holds t. Callers pass the same period start on
// every call of a month, so the latest conversion is kept: the calendar computation (with
// the time.Time in the map key that it replaces) was 1 % of the ping route's instructions.
func (s *UsageStore) monthOf(t time.Time) int32 {
	if c := s.lastMonth.Load(); c != nil && c.at.Equal(t) {
		return c.month
	}
	y, m, _ := t.UTC().Date()
	c := &periodMonth{at: t, month: int32(y)*12 + int32(m) - 1}
	s.lastMonth.Store(c)
	return c.month
}

const dayMicros = int64(24 * time.Hour / time.Microsecond)

func dayOf(us int64) int32 { return int32(floorDiv(us, dayMicros)) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func dayTime(d int32) time.Time { return time.UnixMicro(int64(d) * dayMicros).UTC() }

// NewUsageStore returns an empty UsageStore.
func NewUsageStore() *UsageStore { return newUsageStore(MaxUsageRows) }

// newUsageStore returns an empty UsageStore that keeps at most maxRows detailed rows.
func newUsageStore(maxRows int) *UsageStore {
	return &UsageStore{
		maxRows: maxRows,
		now:     time.Now,
		users:   map[ecoid.ID]uint32{},
		routes:  map[route]uint32{},
		rows:    newRowLog(maxRows),
		pruned:  math.MinInt64,
		days:    map[int32]*dayAgg{},
		rolled:  map[int32]bool{},
	}
}

// WriteBatch implements usage.Writer: all or nothing, skipping IDs already held; a record
// that fails Validate refuses the batch with an error wrapping usage.ErrInvalidRecord.
// Times and latencies are kept to the microsecond, as PostgreSQL keeps them.
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
	for i := range batch {
		r := &batch[i]
		var id rowID
		copy(id[:], r.ID[len(r.ID)-len(id):])
		if s.rows.held(&id) {
			continue
		}
		row := usageRow{id: id, status: uint16(r.Status), user: s.user(r.UserID),
			route: s.route(r.Method, r.Endpoint), at: r.Time.UnixMicro(), latency: r.Latency.Microseconds()}
		s.rows.add(row)
		s.fold(&row)
	}
	if n := s.rows.rows; n > s.maxRows {
		s.rows.dropOldest(n-s.maxRows+s.maxRows/8, s.prune)
	}
	return nil
}

// prune notes that row has been dropped from the log.
func (s *UsageStore) prune(row *usageRow) { s.pruned = max(s.pruned, row.at) }

func (s *UsageStore) user(id ecoid.ID) uint32 {
	if n, ok := s.users[id]; ok {
		return n
	}
	n := uint32(len(s.userIDs))
	s.users[id] = n
	s.userIDs = append(s.userIDs, id)
	return n
}

func (s *UsageStore) route(method, endpoint string) uint32 {
	k := route{method, endpoint}
	if n, ok := s.routes[k]; ok {
		return n
	}
	n := uint32(len(s.routeList))
	s.routes[k] = n
	s.routeList = append(s.routeList, k)
	return n
}

// fold adds a row to the rollup of its day.
func (s *UsageStore) fold(r *usageRow) {
	d := dayOf(r.at)
	day := s.days[d]
	if day == nil {
		day = &dayAgg{first: r.at, last: r.at, users: map[uint32]*userDay{}}
		s.days[d] = day
	}
	day.first, day.last = min(day.first, r.at), max(day.last, r.at)
	ud := day.users[r.user]
	if ud == nil {
		ud = &userDay{routes: map[uint32]*routeAgg{}}
		day.users[r.user] = ud
	}
	ra := ud.routes[r.route]
	if ra == nil {
		ra = &routeAgg{hist: usagecalc.Hist{}}
		ud.routes[r.route] = ra
	}
	isErr := int64(0)
	if usage.IsError(int(r.status)) {
		isErr = 1
	}
	day.calls, day.errors = day.calls+1, day.errors+isErr
	ud.calls, ud.errors = ud.calls+1, ud.errors+isErr
	ra.calls, ra.errors, ra.sum = ra.calls+1, ra.errors+isErr, ra.sum+r.latency
	ra.hist.Add(r.latency, 1)
}

// Ping implements usage.Pinger: the store always answers, unless ctx has ended.
func (s *UsageStore) Ping(ctx context.Context) error { return ctx.Err() }

// AddCall implements usage.Counter: TakeCalls of one call.
func (s *UsageStore) AddCall(ctx context.Context, user ecoid.ID, period time.Time, limit int64, hardCap bool) (int64, bool, error) {
	granted, count, err := s.TakeCalls(ctx, user, period, 1, limit, hardCap)
	return count, granted == 1, err
}

// RemoveCall implements usage.Counter: ReturnCalls of one call.
func (s *UsageStore) RemoveCall(ctx context.Context, user ecoid.ID, period time.Time) error {
	return s.ReturnCalls(ctx, user, period, 1)
}

// PeriodCalls implements usage.Counter.
func (s *UsageStore) PeriodCalls(_ context.Context, user ecoid.ID, period time.Time) (int64, error) {
	if c := s.existing(user, period); c != nil {
		return c.Load(), nil
	}
	return 0, nil
}

// existing returns the counter of user for period, or nil if none was made.
func (s *UsageStore) existing(user ecoid.ID, period time.Time) *atomic.Int64 {
	if v, ok := s.counts.Load(s.key(user, period)); ok {
		return v.(*atomic.Int64)
	}
	return nil
}

// counter returns the counter of k, made on its first call.
func (s *UsageStore) counter(k periodKey) *atomic.Int64 {
	if v, ok := s.counts.Load(k); ok {
		return v.(*atomic.Int64)
	}
	v, _ := s.counts.LoadOrStore(k, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// plan splits [from, to) into the days answered whole from the rollup and the parts
// answered from the log. A partial span that holds every row of its day is answered
// whole too. Call with the lock held.
func (s *UsageStore) plan(from, to time.Time) (whole []int32, partial []usagecalc.Span) {
	for _, sp := range usagecalc.Spans(from, to) {
		d := dayOf(sp.Day.UnixMicro())
		day := s.days[d]
		switch {
		case day == nil:
			// no calls that day
		case sp.Whole || (sp.From.UnixMicro() <= day.first && sp.To.UnixMicro() > day.last):
			whole = append(whole, d)
		default:
			partial = append(partial, sp)
		}
	}
	return whole, partial
}

// scan calls f for every logged row of user (every user when all) inside one of spans.
// Call with the lock held.
func (s *UsageStore) scan(user uint32, all bool, spans []usagecalc.Span, f func(r *usageRow)) {
	if len(spans) == 0 {
		return
	}
	lo, hi := spans[0].From.UnixMicro(), spans[len(spans)-1].To.UnixMicro()
	s.rows.each(func(r *usageRow) {
		if (!all && r.user != user) || r.at < lo || r.at >= hi {
			return
		}
		for _, sp := range spans {
			if r.at >= sp.From.UnixMicro() && r.at < sp.To.UnixMicro() {
				f(r)
				return
			}
		}
	})
}

// History implements usage.Reader; it reads only the rollup.
func (s *UsageStore) History(_ context.Context, user ecoid.ID, from time.Time, days int) ([]usage.DailyCalls, error) {
	if days < 1 {
		return nil, fmt.Errorf("memory: usage history: days %d < 1", days)
	}
	start := usage.DayStart(from)
	out := usagecalc.FillDays(start, days, nil)
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[user]
	if !ok {
		return out, nil
	}
	first := dayOf(start.UnixMicro())
	for i := range out {
		if day := s.days[first+int32(i)]; day != nil {
			if ud := day.users[u]; ud != nil {
				out[i].Calls, out[i].Errors = ud.calls, ud.errors
			}
		}
	}
	return out, nil
}

type endpointAcc struct {
	calls, errors, sum int64
	hist               usagecalc.Hist
	latencies          []float64
}

// Endpoints implements usage.Reader. The percentile is exact when no whole day of the
// range is rolled up and the log still holds every row of the range; otherwise it is
// estimated from the histograms.
func (s *UsageStore) Endpoints(_ context.Context, user ecoid.ID, from, to time.Time) ([]usage.EndpointStats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[user]
	if !ok || !from.Before(to) {
		return []usage.EndpointStats{}, nil
	}
	whole, partial := s.plan(from, to)
	exact := from.UnixMicro() > s.pruned
	for _, d := range whole {
		if s.rolled[d] {
			exact = false
		}
	}
	groups := map[uint32]*endpointAcc{}
	acc := func(r uint32) *endpointAcc {
		a := groups[r]
		if a == nil {
			a = &endpointAcc{hist: usagecalc.Hist{}}
			groups[r] = a
		}
		return a
	}
	add := func(r *usageRow) {
		a := acc(r.route)
		a.calls++
		if usage.IsError(int(r.status)) {
			a.errors++
		}
		a.sum += r.latency
		if exact {
			a.latencies = append(a.latencies, float64(r.latency))
		} else {
			a.hist.Add(r.latency, 1)
		}
	}
	if exact {
		s.scan(u, false, usagecalc.Spans(from, to), add)
	} else {
		for _, d := range whole {
			if ud := s.days[d].users[u]; ud != nil {
				for r, ra := range ud.routes {
					a := acc(r)
					a.calls, a.errors, a.sum = a.calls+ra.calls, a.errors+ra.errors, a.sum+ra.sum
					a.hist.Merge(ra.hist)
				}
			}
		}
		s.scan(u, false, partial, add)
	}
	out := make([]usage.EndpointStats, 0, len(groups))
	for r, a := range groups {
		p95 := a.hist.Quantile(0.95)
		if exact {
			p95 = usagecalc.Percentile(a.latencies, 0.95)
		}
		rt := s.routeList[r]
		out = append(out, usagecalc.EndpointStats(rt.method, rt.endpoint, a.calls, a.errors, a.sum, p95))
	}
	usagecalc.SortEndpoints(out)
	return out, nil
}

// TotalCalls implements usage.Reader.
func (s *UsageStore) TotalCalls(_ context.Context, from, to time.Time) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	whole, partial := s.plan(from, to)
	var n int64
	for _, d := range whole {
		n += s.days[d].calls
	}
	s.scan(0, true, partial, func(*usageRow) { n++ })
	return n, nil
}

// TopUsers implements usage.Reader.
func (s *UsageStore) TopUsers(_ context.Context, from, to time.Time, n int) ([]usage.UserCalls, error) {
	if n < 1 {
		return nil, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	whole, partial := s.plan(from, to)
	counts := map[string]int64{}
	for _, d := range whole {
		for u, ud := range s.days[d].users {
			counts[string(s.userIDs[u])] += ud.calls
		}
	}
	s.scan(0, true, partial, func(r *usageRow) { counts[string(s.userIDs[r.user])]++ })
	return usagecalc.TopUsers(counts, n), nil
}

// Aggregate implements usage.Reader. The rollup of every day is kept up to date by each
// write (and so survives the detailed rows that retention drops); Aggregate registers a
// closed day as rolled up, which makes Daily list it.
func (s *UsageStore) Aggregate(_ context.Context, day time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if usagecalc.Closed(day, s.now()) {
		s.rolled[dayOf(usage.DayStart(day).UnixMicro())] = true
	}
	return nil
}

// Maintain implements usage.Maintainer: it registers every closed day with calls as
// rolled up and, when retention is positive, drops the detailed rows older than
// now-retention.
func (s *UsageStore) Maintain(ctx context.Context, now time.Time, retention time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := range s.days {
		if usagecalc.Closed(dayTime(d), now) {
			s.rolled[d] = true
		}
	}
	if retention > 0 {
		s.rows.dropBefore(now.Add(-retention).UnixMicro(), s.prune)
	}
	return nil
}

// Daily implements usage.Reader.
func (s *UsageStore) Daily(_ context.Context, user ecoid.ID, from, to time.Time) ([]usage.DailyCalls, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []usage.DailyCalls
	u, ok := s.users[user]
	if !ok {
		return nil, nil
	}
	for day := usage.DayStart(from); day.Before(to); day = day.AddDate(0, 0, 1) {
		d := dayOf(day.UnixMicro())
		if day.Before(from) || !s.rolled[d] || s.days[d] == nil {
			continue
		}
		if ud := s.days[d].users[u]; ud != nil {
			out = append(out, usage.DailyCalls{Date: day, Calls: ud.calls, Errors: ud.errors})
		}
	}
	return out, nil
}
