package storagetest

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/usage"
)

// rollupFixture writes four days of calls of two users (day 1 has none) and returns the
// users and the first day.
func rollupFixture(t *testing.T, s usage.Store) (user, other ecoid.ID, day0 time.Time) {
	t.Helper()
	user, other = ecoid.New(ecoid.User), ecoid.New(ecoid.User)
	day0 = usage.DayStart(usageBase)
	var batch []usage.Record
	for d, n := range []int{30, 0, 50, 20} {
		for i := range n {
			at := day0.AddDate(0, 0, d).Add(time.Duration(i) * 17 * time.Minute)
			status := 200
			if i%5 == 0 {
				status = 500
			}
			method, endpoint := "GET", "/api/v1/ping"
			if i%3 == 0 {
				method, endpoint = "POST", "/api/v1/items"
			}
			batch = append(batch, UsageRecord(user, at, method, endpoint, status, time.Duration(1+i*i%97)*time.Millisecond))
			if i%2 == 0 {
				batch = append(batch, UsageRecord(other, at, "GET", "/a", 200, time.Millisecond))
			}
		}
	}
	mustWrite(t, s, batch)
	return user, other, day0
}

type rollupAnswers struct {
	history []usage.DailyCalls
	eps     []usage.EndpointStats
	total   int64
	top     []usage.UserCalls
}

func readAll(t *testing.T, s usage.Store, user ecoid.ID, day0 time.Time) rollupAnswers {
	t.Helper()
	ctx := context.Background()
	var a rollupAnswers
	var err error
	if a.history, err = s.History(ctx, user, day0, 5); err != nil {
		t.Fatal(err)
	}
	from, to := day0.Add(6*time.Hour), day0.AddDate(0, 0, 4) // a partial first day
	if a.eps, err = s.Endpoints(ctx, user, from, to); err != nil {
		t.Fatal(err)
	}
	if a.total, err = s.TotalCalls(ctx, from, to); err != nil {
		t.Fatal(err)
	}
	if a.top, err = s.TopUsers(ctx, from, to, 5); err != nil {
		t.Fatal(err)
	}
	return a
}

func runUsageRollup(t *testing.T, store func(t *testing.T) usage.Store) {
	ctx := context.Background()

	t.Run("RollupAnswersLikeTheLog", func(t *testing.T) {
		s := store(t)
		user, _, day0 := rollupFixture(t, s)
		before := readAll(t, s, user, day0)
		for d := range 5 {
			if err := s.Aggregate(ctx, day0.AddDate(0, 0, d)); err != nil {
				t.Fatal(err)
			}
		}
		after := readAll(t, s, user, day0)
		if fmt.Sprint(before.history) != fmt.Sprint(after.history) || before.total != after.total ||
			fmt.Sprint(before.top) != fmt.Sprint(after.top) {
			t.Fatalf("answers changed once rolled up:\nbefore %+v\n after %+v", before, after)
		}
		if len(before.eps) != len(after.eps) {
			t.Fatalf("endpoints changed: %v / %v", before.eps, after.eps)
		}
		for i, b := range before.eps {
			a := after.eps[i]
			if a.Method != b.Method || a.Endpoint != b.Endpoint || a.Calls != b.Calls || a.ErrorRate != b.ErrorRate || a.AvgLatencyMS != b.AvgLatencyMS {
				t.Fatalf("endpoint %d: rolled up %+v, from the log %+v", i, a, b)
			}
			if math.Abs(a.P95LatencyMS-b.P95LatencyMS) > b.P95LatencyMS/16+0.001 {
				t.Fatalf("endpoint %d: estimated p95 %.3f ms, exact %.3f ms: more than 1/16 apart", i, a.P95LatencyMS, b.P95LatencyMS)
			}
		}
		daily, err := s.Daily(ctx, user, day0, day0.AddDate(0, 0, 5))
		if err != nil || len(daily) != 3 || daily[1].Calls != 50 || daily[1].Errors != 10 {
			t.Fatalf("Daily = %v %v", daily, err)
		}
	})

	t.Run("LateRecordOfARolledUpDayCountsAtOnce", func(t *testing.T) {
		s := store(t)
		user, _, day0 := rollupFixture(t, s)
		if err := s.Aggregate(ctx, day0); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, s, []usage.Record{UsageRecord(user, day0.Add(23*time.Hour), "GET", "/late", 404, time.Millisecond)})
		h, err := s.History(ctx, user, day0, 1)
		if err != nil || h[0].Calls != 31 || h[0].Errors != 7 {
			t.Fatalf("history after a late record: %v %v, want 31 calls, 7 errors", h, err)
		}
		if n, _ := s.TotalCalls(ctx, day0, day0.AddDate(0, 0, 1)); n != 31+15 {
			t.Fatalf("TotalCalls after a late record: %d", n)
		}
		if err := s.Aggregate(ctx, day0); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Daily(ctx, user, day0, day0.AddDate(0, 0, 1)); len(d) != 1 || d[0].Calls != 31 {
			t.Fatalf("Daily after aggregating again: %v", d)
		}
	})

	t.Run("AnOpenDayIsNotRolledUp", func(t *testing.T) {
		s := store(t)
		user := ecoid.New(ecoid.User)
		now := time.Now().UTC()
		today := usage.DayStart(now)
		mustWrite(t, s, []usage.Record{UsageRecord(user, today, "GET", "/a", 200, time.Millisecond)})
		if err := s.Aggregate(ctx, today); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Daily(ctx, user, today, today.AddDate(0, 0, 1)); len(d) != 0 {
			t.Fatalf("today is listed as rolled up: %v", d)
		}
		mustWrite(t, s, []usage.Record{UsageRecord(user, today.Add(time.Microsecond), "GET", "/a", 200, time.Millisecond)})
		if h, _ := s.History(ctx, user, today, 1); h[0].Calls != 2 {
			t.Fatalf("today's history: %v", h)
		}
	})

	t.Run("MaintainRollsUpClosedDays", func(t *testing.T) {
		s := store(t)
		m, ok := s.(usage.Maintainer)
		if !ok {
			t.Skip("the store has no Maintain")
		}
		user, _, day0 := rollupFixture(t, s)
		now := day0.AddDate(0, 0, 3).Add(time.Hour) // day 3 is still open
		for range 2 {
			if err := m.Maintain(ctx, now, 0); err != nil {
				t.Fatal(err)
			}
		}
		daily, err := s.Daily(ctx, user, day0, day0.AddDate(0, 0, 5))
		if err != nil || len(daily) != 2 || daily[0].Calls != 30 || daily[1].Calls != 50 {
			t.Fatalf("Daily after Maintain: %v %v", daily, err)
		}
		if h, _ := s.History(ctx, user, day0, 4); h[3].Calls != 20 {
			t.Fatalf("the open day from the log: %v", h)
		}
	})
}
