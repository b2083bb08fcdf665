package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/usagecalc"
	"github.com/nexus-ecosystem/nexus/usage"
)

// readPlan says how to answer a range: rolled are the whole days read from the rollup
// ("YYYY-MM-DD"), and [lo[i], hi[i]) the intervals read from the log (adjacent days
// merged into one interval).
type readPlan struct {
	rolled []string
	lo, hi []string // RFC 3339 instants, microsecond precision
}

func (p readPlan) args() (rolled, lo, hi string) {
	return dateArray(p.rolled), dateArray(p.lo), dateArray(p.hi)
}

func instant(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }

// plan asks which whole days of [from, to) are rolled up (one indexed lookup of at most
// as many days as the range has) and returns how to answer the range.
func (s *UsageStore) plan(ctx context.Context, from, to time.Time) (readPlan, error) {
	spans := usagecalc.Spans(from, to)
	var whole []string
	for _, sp := range spans {
		if sp.Whole {
			whole = append(whole, dateString(sp.Day))
		}
	}
	rolled := map[string]bool{}
	if len(whole) > 0 {
		var days []string
		if err := s.db.SelectContext(ctx, &days, `SELECT to_char(day, 'YYYY-MM-DD') FROM eco_usage_rollup_days
			WHERE day = ANY($1::date[])`, dateArray(whole)); err != nil {
			return readPlan{}, err
		}
		for _, d := range days {
			rolled[d] = true
		}
	}
	var p readPlan
	for _, sp := range spans {
		day := dateString(sp.Day)
		if sp.Whole && rolled[day] {
			p.rolled = append(p.rolled, day)
			continue
		}
		if n := len(p.hi); n > 0 && p.hi[n-1] == instant(sp.From) {
			p.hi[n-1] = instant(sp.To)
			continue
		}
		p.lo, p.hi = append(p.lo, instant(sp.From)), append(p.hi, instant(sp.To))
	}
	return p, nil
}

// logIntervals is the FROM item of the log's intervals, $2 and $3 their bounds.
const logIntervals = `unnest($2::timestamptz[], $3::timestamptz[]) AS o(lo, hi)`

type dayRow struct {
	Day    string `db:"day"`
	Calls  int64  `db:"calls"`
	Errors int64  `db:"errors"`
}

// selectDays runs a query of (day, calls, errors) rows and converts them; nil when there
// are none.
func (s *UsageStore) selectDays(ctx context.Context, op, query string, args ...any) ([]usage.DailyCalls, error) {
	var rows []dayRow
	if err := s.db.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("postgres: usage %s: %w", op, err)
	}
	var out []usage.DailyCalls
	for _, r := range rows {
		d, err := time.Parse(time.DateOnly, r.Day)
		if err != nil {
			return nil, fmt.Errorf("postgres: usage %s: bad day %q: %w", op, r.Day, err)
		}
		out = append(out, usage.DailyCalls{Date: d, Calls: r.Calls, Errors: r.Errors})
	}
	return out, nil
}

// historySQL reads the rolled-up days ($4) from eco_usage_daily and the others from the
// log, one indexed range scan per interval.
const historySQL = `SELECT to_char(day, 'YYYY-MM-DD') AS day, calls, errors FROM eco_usage_daily
	WHERE user_id = $1 AND day = ANY($4::date[])
UNION ALL
SELECT to_char(l.day, 'YYYY-MM-DD'), l.calls, l.errors FROM ` + logIntervals + ` CROSS JOIN LATERAL (
	SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS calls,
		count(*) FILTER (WHERE status >= 400) AS errors
	FROM eco_api_usage WHERE user_id = $1 AND created_at >= o.lo AND created_at < o.hi GROUP BY 1) AS l`

// History implements usage.Reader: closed, rolled-up days cost one rollup row each; only
// the other days (today, days not rolled up yet) read the log.
func (s *UsageStore) History(ctx context.Context, user ecoid.ID, from time.Time, days int) ([]usage.DailyCalls, error) {
	if days < 1 {
		return nil, fmt.Errorf("postgres: usage history: days %d < 1", days)
	}
	start := usage.DayStart(from)
	query, args, err := s.historyQuery(ctx, user, start, days)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage history: %w", err)
	}
	sparse, err := s.selectDays(ctx, "history", query, args...)
	if err != nil {
		return nil, err
	}
	return usagecalc.FillDays(start, days, sparse), nil
}

func (s *UsageStore) historyQuery(ctx context.Context, user ecoid.ID, start time.Time, days int) (string, []any, error) {
	p, err := s.plan(ctx, start, start.AddDate(0, 0, days))
	if err != nil {
		return "", nil, err
	}
	rolled, lo, hi := p.args()
	return historySQL, []any{string(user), lo, hi, rolled}, nil
}

// endpointsExactSQL computes the stats of a range that no rollup covers from the log, with
// the exact percentile.
const endpointsExactSQL = `SELECT method, endpoint, count(*) AS calls,
		count(*) FILTER (WHERE status >= 400) AS errors, sum(latency_us)::bigint AS sum_us,
		percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_us) AS p95_us
	FROM eco_api_usage WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
	GROUP BY method, endpoint`

// endpointsRollupSQL reads the rolled-up days ($4) from eco_usage_daily_endpoints and
// builds the same histograms ($5: the bucket bounds) for the log's intervals.
const endpointsRollupSQL = `SELECT method, endpoint, calls, errors, latency_sum_us AS sum_us,
		latency_buckets::bigint[] AS buckets, latency_counts AS counts
	FROM eco_usage_daily_endpoints WHERE user_id = $1 AND day = ANY($4::date[])
UNION ALL
SELECT method, endpoint, sum(n)::bigint, sum(e)::bigint, sum(s)::bigint,
		array_agg(b::bigint ORDER BY b), array_agg(n ORDER BY b)
	FROM (SELECT l.method, l.endpoint, width_bucket(l.latency_us, $5::bigint[]) AS b, count(*) AS n,
			count(*) FILTER (WHERE l.status >= 400) AS e, sum(l.latency_us) AS s
		FROM ` + logIntervals + ` CROSS JOIN LATERAL (
			SELECT method, endpoint, status, latency_us FROM eco_api_usage
			WHERE user_id = $1 AND created_at >= o.lo AND created_at < o.hi) AS l
		GROUP BY 1, 2, 3) AS g
	GROUP BY method, endpoint`

// Endpoints implements usage.Reader. A range without rolled-up days is computed from the
// log with the exact percentile (percentile_cont); otherwise the rolled-up days' rows and
// histograms are merged with the log's intervals, and the percentile is estimated from the
// merged histogram. Rates and rounding are computed in Go by the same code as the memory
// store, so both give identical answers.
func (s *UsageStore) Endpoints(ctx context.Context, user ecoid.ID, from, to time.Time) ([]usage.EndpointStats, error) {
	out := []usage.EndpointStats{}
	if !from.Before(to) {
		return out, nil
	}
	p, err := s.plan(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage endpoints: %w", err)
	}
	if len(p.rolled) == 0 {
		var rows []struct {
			Method   string  `db:"method"`
			Endpoint string  `db:"endpoint"`
			Calls    int64   `db:"calls"`
			Errors   int64   `db:"errors"`
			Sum      int64   `db:"sum_us"`
			P95      float64 `db:"p95_us"`
		}
		if err := s.db.SelectContext(ctx, &rows, endpointsExactSQL, string(user), from, to); err != nil {
			return nil, fmt.Errorf("postgres: usage endpoints: %w", err)
		}
		for _, r := range rows {
			out = append(out, usagecalc.EndpointStats(r.Method, r.Endpoint, r.Calls, r.Errors, r.Sum, r.P95))
		}
		usagecalc.SortEndpoints(out)
		return out, nil
	}
	var rows []struct {
		Method   string        `db:"method"`
		Endpoint string        `db:"endpoint"`
		Calls    int64         `db:"calls"`
		Errors   int64         `db:"errors"`
		Sum      int64         `db:"sum_us"`
		Buckets  pq.Int64Array `db:"buckets"`
		Counts   pq.Int64Array `db:"counts"`
	}
	rolled, lo, hi := p.args()
	if err := s.db.SelectContext(ctx, &rows, endpointsRollupSQL, string(user), lo, hi, rolled, pq.Int64Array(usagecalc.Bounds())); err != nil {
		return nil, fmt.Errorf("postgres: usage endpoints: %w", err)
	}
	type acc struct {
		calls, errors, sum int64
		hist               usagecalc.Hist
	}
	type key struct{ method, endpoint string }
	groups := map[key]*acc{}
	for _, r := range rows {
		k := key{r.Method, r.Endpoint}
		a := groups[k]
		if a == nil {
			a = &acc{hist: usagecalc.Hist{}}
			groups[k] = a
		}
		a.calls, a.errors, a.sum = a.calls+r.Calls, a.errors+r.Errors, a.sum+r.Sum
		for i := range min(len(r.Buckets), len(r.Counts)) {
			a.hist[int(r.Buckets[i])] += r.Counts[i]
		}
	}
	for k, a := range groups {
		out = append(out, usagecalc.EndpointStats(k.method, k.endpoint, a.calls, a.errors, a.sum, a.hist.Quantile(0.95)))
	}
	usagecalc.SortEndpoints(out)
	return out, nil
}

// TotalCalls implements usage.Reader: rolled-up days from eco_usage_daily, the rest from
// the log.
func (s *UsageStore) TotalCalls(ctx context.Context, from, to time.Time) (int64, error) {
	if !from.Before(to) {
		return 0, nil
	}
	p, err := s.plan(ctx, from, to)
	if err != nil {
		return 0, fmt.Errorf("postgres: usage total calls: %w", err)
	}
	rolled, lo, hi := p.args()
	var n int64
	if err := s.db.GetContext(ctx, &n, `SELECT
		COALESCE((SELECT sum(calls) FROM eco_usage_daily WHERE day = ANY($1::date[])), 0)::bigint +
		COALESCE((SELECT sum(l.n) FROM `+logIntervals+` CROSS JOIN LATERAL (
			SELECT count(*) AS n FROM eco_api_usage WHERE created_at >= o.lo AND created_at < o.hi) AS l), 0)::bigint`,
		rolled, lo, hi); err != nil {
		return 0, fmt.Errorf("postgres: usage total calls: %w", err)
	}
	return n, nil
}

// TopUsers implements usage.Reader. Ties are ordered by user ID in byte order (COLLATE
// "C"), as in Go.
func (s *UsageStore) TopUsers(ctx context.Context, from, to time.Time, n int) ([]usage.UserCalls, error) {
	if n < 1 || !from.Before(to) {
		return nil, nil
	}
	p, err := s.plan(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage top users: %w", err)
	}
	rolled, lo, hi := p.args()
	var rows []struct {
		UserID string `db:"user_id"`
		Calls  int64  `db:"calls"`
	}
	err = s.db.SelectContext(ctx, &rows, `SELECT user_id, sum(calls)::bigint AS calls FROM (
			SELECT user_id, calls FROM eco_usage_daily WHERE day = ANY($1::date[])
			UNION ALL
			SELECT l.user_id, l.calls FROM `+logIntervals+` CROSS JOIN LATERAL (
				SELECT user_id, count(*) AS calls FROM eco_api_usage
				WHERE created_at >= o.lo AND created_at < o.hi GROUP BY user_id) AS l
		) AS u
		GROUP BY user_id ORDER BY calls DESC, user_id COLLATE "C" LIMIT $4`, rolled, lo, hi, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage top users: %w", err)
	}
	out := make([]usage.UserCalls, len(rows))
	for i, r := range rows {
		out[i] = usage.UserCalls{UserID: ecoid.ID(r.UserID), Calls: r.Calls}
	}
	return out, nil
}

// Daily implements usage.Reader.
func (s *UsageStore) Daily(ctx context.Context, user ecoid.ID, from, to time.Time) ([]usage.DailyCalls, error) {
	first := usage.DayStart(from)
	if first.Before(from) {
		first = first.AddDate(0, 0, 1)
	}
	end := usage.DayStart(to) // days strictly before to
	if end.Before(to) {
		end = end.AddDate(0, 0, 1)
	}
	return s.selectDays(ctx, "daily", `SELECT to_char(d.day, 'YYYY-MM-DD') AS day, d.calls, d.errors
		FROM eco_usage_daily d JOIN eco_usage_rollup_days r ON r.day = d.day
		WHERE d.user_id = $1 AND d.day >= $2::date AND d.day < $3::date ORDER BY d.day`,
		string(user), dateString(first), dateString(end))
}
