package usagecalc

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// Bucket must agree with PostgreSQL's width_bucket(v, Bounds()): the number of bounds at
// or below v.
func TestBucketIsWidthBucketOfBounds(t *testing.T) {
	bounds := Bounds()
	widthBucket := func(v int64) int { return sort.Search(len(bounds), func(i int) bool { return bounds[i] > v }) }
	check := func(v int64) {
		if got, want := Bucket(v), widthBucket(v); got != want {
			t.Fatalf("Bucket(%d) = %d, width_bucket = %d", v, got, want)
		}
	}
	for v := int64(-1); v < 5000; v++ {
		check(v)
	}
	for _, b := range bounds {
		check(b - 1)
		check(b)
	}
	check(math.MaxInt64)
	for i := 1; i < NumBuckets-1; i++ {
		lo, hi := Lower(i), Lower(i+1)
		if i >= subs && float64(hi-lo) > float64(lo)/subs {
			t.Fatalf("bucket %d [%d, %d) is wider than 1/16 of its lower bound", i, lo, hi)
		}
	}
}

func TestQuantileIsWithinOneBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 1 + r.IntN(500)
		values := make([]float64, n)
		h := Hist{}
		for i := range values {
			v := int64(r.ExpFloat64() * float64(1+trial*1000))
			values[i] = float64(v)
			h.Add(v, 1)
		}
		exact := Percentile(values, 0.95)
		est := h.Quantile(0.95)
		if math.Abs(est-exact) > exact/subs+1 {
			t.Fatalf("trial %d: estimate %.1f, exact %.1f", trial, est, exact)
		}
	}
	if (Hist{}).Quantile(0.95) != 0 {
		t.Fatal("empty histogram")
	}
	if Percentile(nil, 0.95) != 0 || Percentile([]float64{7}, 0.95) != 7 {
		t.Fatal("Percentile of tiny inputs")
	}
}

func TestSpansAndClosed(t *testing.T) {
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	got := Spans(day.Add(6*time.Hour), day.AddDate(0, 0, 2).Add(time.Hour))
	if len(got) != 3 || got[0].Whole || !got[1].Whole || got[2].Whole ||
		!got[0].From.Equal(day.Add(6*time.Hour)) || !got[2].To.Equal(day.AddDate(0, 0, 2).Add(time.Hour)) {
		t.Fatalf("Spans = %+v", got)
	}
	if len(Spans(day, day)) != 0 || len(Spans(day, day.AddDate(0, 0, 1))) != 1 {
		t.Fatal("empty or one-day range")
	}
	end := day.AddDate(0, 0, 1)
	if Closed(day, end) || !Closed(day, end.Add(Settle)) {
		t.Fatal("Closed waits Settle after the day ends")
	}
	if MaybeClosed(day, end.Add(-Settle-time.Second)) || !MaybeClosed(day, end.Add(-Settle)) {
		t.Fatal("MaybeClosed starts Settle before the day ends")
	}
	if FillDays(day, 0, nil) != nil {
		t.Fatal("FillDays(0)")
	}
}
