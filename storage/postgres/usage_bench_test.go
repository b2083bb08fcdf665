package postgres_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/usage"
)

// benchRecords returns n distinct, valid records of 50 users.
func benchRecords(n int) []usage.Record {
	users := make([]ecoid.ID, 50)
	for i := range users {
		users[i] = ecoid.New(ecoid.User)
	}
	key := ecoid.New(ecoid.APIKey)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	out := make([]usage.Record, n)
	for i := range out {
		t := start.Add(time.Duration(i) * 37 * time.Millisecond)
		out[i] = usage.Record{ID: ecoid.NewAt(ecoid.Usage, t), KeyID: key, UserID: users[i%len(users)],
			Endpoint: "/api/v1/items/{id}", Method: "GET", Status: 200 + (i%10)*30,
			Latency: time.Duration(500+i%5000) * time.Microsecond, Bytes: int64(i % 4096), Time: t}
	}
	return out
}

// flushRate writes records in batches of size, one after another as the Tracker does,
// and returns rows per second.
func flushRate(b *testing.B, s *postgres.UsageStore, records []usage.Record, size int) float64 {
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < len(records); i += size {
		if err := s.WriteBatch(ctx, records[i:min(i+size, len(records))]); err != nil {
			b.Fatal(err)
		}
	}
	return float64(len(records)) / time.Since(start).Seconds()
}

// psqlCopyRate loads the same rows with `psql \copy` from a CSV file into a fresh schema
// and returns rows per second (the psql process's whole run, connection included).
func psqlCopyRate(b *testing.B, records []usage.Record) float64 {
	psql, err := exec.LookPath("psql")
	if err != nil {
		b.Skip("psql is not installed")
	}
	db := pgtest.New(b)
	var schema string
	if err := db.QueryRow(`SELECT current_schema()`).Scan(&schema); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "usage.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := csv.NewWriter(f)
	for _, r := range records {
		_ = w.Write([]string{string(r.ID), string(r.KeyID), string(r.UserID), r.Endpoint, r.Method,
			strconv.Itoa(r.Status), strconv.FormatInt(r.Latency.Microseconds(), 10),
			strconv.FormatInt(r.Bytes, 10), r.Time.Format(time.RFC3339Nano)})
	}
	w.Flush()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", testenv.Postgres(b), "-c",
		`\copy eco_api_usage (id, key_id, user_id, endpoint, method, status, latency_us, bytes, created_at) FROM '`+path+`' WITH (FORMAT csv)`)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+schema)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("psql: %v: %s", err, out)
	}
	rate := float64(len(records)) / time.Since(start).Seconds()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM eco_api_usage`).Scan(&n); err != nil || n != len(records) {
		b.Fatalf("psql loaded %d rows (%v), want %d", n, err, len(records))
	}
	return rate
}

// trackerRate pushes records through a Tracker with its default batching (a write starts
// at 100 waiting records and carries up to 1,000) and returns rows per second from the
// first Track to the end of Close.
func trackerRate(b *testing.B, s *postgres.UsageStore, records []usage.Record) float64 {
	tr := usage.NewTracker(s, usage.Config{BufferSize: len(records)})
	start := time.Now()
	for _, r := range records {
		if !tr.Track(r) {
			b.Fatal("Track refused a record")
		}
	}
	if err := tr.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	return float64(len(records)) / time.Since(start).Seconds()
}

// BenchmarkUsageFlushVsPsqlCopy writes the same 100,000 rows with `psql \copy`, through a
// Tracker (default batching), and with WriteBatch in fixed batches of 100 and 1,000, and
// reports rows per second and each rate as a percentage of psql's.
func BenchmarkUsageFlushVsPsqlCopy(b *testing.B) {
	records := benchRecords(100_000)
	for range b.N {
		copyRate := psqlCopyRate(b, records)
		b.ReportMetric(copyRate, "psql-rows/s")
		rate := trackerRate(b, postgres.NewUsageStore(pgtest.New(b)), records)
		b.ReportMetric(rate, "tracker-rows/s")
		b.ReportMetric(100*rate/copyRate, "tracker-%-of-psql")
		for _, size := range []int{100, 1000} {
			rate := flushRate(b, postgres.NewUsageStore(pgtest.New(b)), records, size)
			b.ReportMetric(rate, fmt.Sprintf("batch%d-rows/s", size))
			b.ReportMetric(100*rate/copyRate, fmt.Sprintf("batch%d-%%-of-psql", size))
		}
	}
}

// BenchmarkUsageHistory30Days is the 30-day history of a user with 1M logged calls, read
// from the log alone (nothing rolled up) and then with the 29 closed days rolled up.
func BenchmarkUsageHistory30Days(b *testing.B) {
	ctx := context.Background()
	db := pgtest.New(b)
	s := postgres.NewUsageStore(db)
	user := ecoid.New(ecoid.User)
	now := time.Now().UTC()
	start := usage.DayStart(now).AddDate(0, 0, -29)
	const calls = 1_000_000
	perDay := int64(calls / 30)
	if _, err := db.Exec(`INSERT INTO eco_api_usage (id, user_id, endpoint, method, status, latency_us, bytes, created_at)
		SELECT 'eco_use_' || lpad(i::text, 22, '0'), $1, '/a', 'GET', 200, i % 5000, 0,
			$2::timestamptz + (i / $3) * interval '1 day' + (i % $3) * ($4::bigint / $3) * interval '1 microsecond'
		FROM generate_series(0, 29 * $3 - 1) AS i`, string(user), start, perDay, int64(24*time.Hour/time.Microsecond)); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`ANALYZE eco_api_usage`); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B) {
		for range b.N {
			if _, err := s.History(ctx, user, start, 30); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("log", run)
	if err := s.Maintain(ctx, now, 0); err != nil {
		b.Fatal(err)
	}
	b.Run("rollup", run)
}
