package usagecalc

import (
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/nexus-ecosystem/nexus/usage"
)

// The latency histogram of the rollup is log-linear over microseconds: values below 16 µs
// have a bucket each, and every power of two above is split into 16 equal buckets, so a
// bucket is at most 1/16 (6.25 %) as wide as its lower bound. Values from 2^41 µs (about
// 25 days) on share the last bucket.
const (
	subBits = 4
	subs    = 1 << subBits
	maxExp  = 40

	// NumBuckets is the number of histogram buckets.
	NumBuckets = subs + (maxExp-subBits+1)*subs
)

// Bucket returns the histogram bucket of a latency in microseconds: the number of
// Bounds at or below it, which is what PostgreSQL's width_bucket(us, Bounds()) returns.
func Bucket(us int64) int {
	if us < subs {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1
	if e > maxExp {
		return NumBuckets - 1
	}
	return subs + (e-subBits)*subs + int(us>>(e-subBits))&(subs-1)
}

// Lower returns the smallest latency (µs) of bucket b.
func Lower(b int) int64 {
	if b < subs {
		return int64(b)
	}
	e := (b-subs)/subs + subBits
	return int64(subs+(b-subs)%subs) << (e - subBits)
}

// Bounds returns the lower bounds of buckets 1..NumBuckets-1, ascending: the thresholds
// of width_bucket in SQL, so that SQL and Go put a latency in the same bucket.
func Bounds() []int64 {
	out := make([]int64, NumBuckets-1)
	for i := range out {
		out[i] = Lower(i + 1)
	}
	return out
}

// Hist counts latencies per bucket.
type Hist map[int]int64

// Add counts n latencies of us microseconds.
func (h Hist) Add(us int64, n int64) { h[Bucket(us)] += n }

// Merge adds o's counts to h.
func (h Hist) Merge(o Hist) {
	for b, n := range o {
		h[b] += n
	}
}

// Quantile estimates the continuous quantile p (0..1) of the counted latencies, in
// microseconds, the way percentile_cont computes it: it estimates the values at the two
// ranks around p (each bucket's values taken as spread evenly over it) and interpolates
// between them. Each estimated value lies inside the bucket of the true one, so the
// result is within one bucket (6.25 %) of the exact percentile; buckets below 16 µs are
// exact. An empty histogram gives 0.
func (h Hist) Quantile(p float64) float64 {
	var total int64
	keys := make([]int, 0, len(h))
	for b, n := range h {
		if n > 0 {
			keys = append(keys, b)
			total += n
		}
	}
	if total == 0 {
		return 0
	}
	slices.Sort(keys)
	pos := p * float64(total-1)
	lo := int64(math.Floor(pos))
	a, b := h.valueAt(keys, lo), h.valueAt(keys, min(lo+1, total-1))
	return a + (pos-float64(lo))*(b-a)
}

// valueAt estimates the value of rank k (0-based) among the counted latencies.
func (h Hist) valueAt(keys []int, k int64) float64 {
	var cum int64
	for _, b := range keys {
		n := h[b]
		if k < cum+n {
			lo := Lower(b)
			if b < subs || b == NumBuckets-1 {
				return float64(lo)
			}
			width := float64(Lower(b+1) - lo)
			return float64(lo) + (float64(k-cum)+0.5)/float64(n)*width
		}
		cum += n
	}
	return float64(Lower(keys[len(keys)-1]))
}

// Settle is how long after its end a day may be recorded as rolled up: Aggregate
// registers a day only once it ended at least Settle ago, and a write into a day that
// ended before now+Settle (by the writer's clock) withdraws the day's registration, so
// clocks that disagree by less than twice Settle cannot hide a late record.
const Settle = 5 * time.Minute

// Closed reports whether the day that starts at day may be registered as rolled up at
// now.
func Closed(day, now time.Time) bool {
	return !usage.DayStart(day).AddDate(0, 0, 1).After(now.Add(-Settle))
}

// MaybeClosed reports whether a record at t falls in a day that a store may have
// registered as rolled up, judged by a writer whose clock reads now.
func MaybeClosed(t, now time.Time) bool {
	return !usage.DayStart(t).AddDate(0, 0, 1).After(now.Add(Settle))
}

// Span is the part of one UTC day inside a range.
type Span struct {
	Day      time.Time // midnight UTC starting the day
	From, To time.Time // the part of [from, to) in that day
	Whole    bool      // the whole day is in the range
}

// Spans splits [from, to) into the UTC days it touches, oldest first; nil when the range
// is empty.
func Spans(from, to time.Time) []Span {
	from, to = from.UTC(), to.UTC()
	var out []Span
	for d := usage.DayStart(from); d.Before(to); d = d.AddDate(0, 0, 1) {
		end := d.AddDate(0, 0, 1)
		s := Span{Day: d, From: d, To: end, Whole: true}
		if from.After(d) {
			s.From, s.Whole = from, false
		}
		if to.Before(end) {
			s.To, s.Whole = to, false
		}
		out = append(out, s)
	}
	return out
}
