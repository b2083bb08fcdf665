package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
	"github.com/nexus-ecosystem/nexus/usage"
)

// migrationsBefore returns the embedded migrations older than version.
func migrationsBefore(t *testing.T, version string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(postgres.Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") && e.Name() < version {
			body, _ := fs.ReadFile(postgres.Migrations(), e.Name())
			out[e.Name()] = &fstest.MapFile{Data: body}
		}
	}
	return out
}

// partitionsOf returns how many rows each partition of eco_api_usage holds.
func partitionsOf(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT tableoid::regclass::text, count(*) FROM eco_api_usage GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	return out
}

// Migrating a database whose usage log was one plain table keeps every row, each in the
// partition of its month.
func TestUsageMigrationKeepsOldRows(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewUnmigrated(t)
	if err := postgres.MigrateFS(ctx, db, migrationsBefore(t, "0010")); err != nil {
		t.Fatal(err)
	}
	old := postgres.NewUsageStore(db) // writes the old table the way the old code did
	user := ecoid.New(ecoid.User)
	var batch []usage.Record
	for i := range 90 {
		at := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i) // Nov 2025 .. Jan 2026
		batch = append(batch, storagetest.UsageRecord(user, at, "GET", "/a", 200, time.Millisecond))
	}
	if _, err := db.Exec(`INSERT INTO eco_api_usage (id, key_id, user_id, endpoint, method, status, latency_us, bytes, created_at)
		SELECT unnest($1::text[]), '', $2, '/a', 'GET', 200, 1000, 0, unnest($3::timestamptz[])`,
		idsOf(batch), string(user), timesOf(batch)); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	parts := partitionsOf(t, db)
	if parts["eco_api_usage_p202511"] != 30 || parts["eco_api_usage_p202512"] != 31 || parts["eco_api_usage_p202601"] != 29 || parts["eco_api_usage_default"] != 0 {
		t.Fatalf("rows per partition after migrating: %v", parts)
	}
	if err := old.WriteBatch(ctx, batch); err != nil { // the same records again: stored once
		t.Fatal(err)
	}
	if n, _ := old.TotalCalls(ctx, time.Time{}, time.Now()); n != 90 {
		t.Fatalf("TotalCalls after migrating and a re-sent batch: %d, want 90", n)
	}
	for _, m := range []time.Time{usage.PeriodStart(time.Now()), usage.PeriodEnd(time.Now())} {
		var ok bool
		name := "eco_api_usage_p" + m.Format("200601")
		if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil || !ok {
			t.Fatalf("partition %s not created ahead: %v", name, err)
		}
	}
}

func idsOf(batch []usage.Record) any {
	s := make([]string, len(batch))
	for i, r := range batch {
		s[i] = string(r.ID)
	}
	return "{" + strings.Join(s, ",") + "}"
}

func timesOf(batch []usage.Record) any {
	s := make([]string, len(batch))
	for i, r := range batch {
		s[i] = `"` + r.Time.UTC().Format(time.RFC3339Nano) + `"`
	}
	return "{" + strings.Join(s, ",") + "}"
}

// Maintain moves rows out of the default partition into their month's, and drops whole
// months older than the retention once they are rolled up; the rollup stays.
func TestUsageMaintainPartitionsAndRetention(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	s := postgres.NewUsageStore(db)
	user := ecoid.New(ecoid.User)
	var batch []usage.Record
	for i := range 60 { // 2026-01-01 .. 2026-03-01, into the default partition
		at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, i)
		batch = append(batch, storagetest.UsageRecord(user, at, "GET", "/a", 200, time.Millisecond))
	}
	if err := s.WriteBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	if err := s.Maintain(ctx, now, 40*24*time.Hour); err != nil { // cutoff Feb 3: January goes
		t.Fatal(err)
	}
	parts := partitionsOf(t, db)
	if parts["eco_api_usage_p202601"] != 0 || parts["eco_api_usage_p202602"] != 28 || parts["eco_api_usage_p202603"] != 1 || parts["eco_api_usage_default"] != 0 {
		t.Fatalf("rows per partition after Maintain: %v", parts)
	}
	h, err := s.History(ctx, user, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range h {
		if d.Calls != 1 {
			t.Fatalf("history after January's log was dropped: %v", d)
		}
	}
	// Aggregating a dropped day again keeps its rollup.
	if err := s.Aggregate(ctx, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Daily(ctx, user, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 11, 0, 0, 0, 0, time.UTC)); len(d) != 1 || d[0].Calls != 1 {
		t.Fatalf("Daily of a dropped day after Aggregate: %v", d)
	}
	if err := s.Maintain(ctx, now, 40*24*time.Hour); err != nil { // again: nothing to do
		t.Fatal(err)
	}
}

// rowsRead runs EXPLAIN ANALYZE on query and sums the rows its scans of the usage log
// (every partition of eco_api_usage) returned.
func rowsRead(t *testing.T, db *sql.DB, query string, args ...any) (logRows, rollupRows float64) {
	t.Helper()
	var out string
	if err := db.QueryRow(`EXPLAIN (ANALYZE, FORMAT JSON) `+query, args...).Scan(&out); err != nil {
		t.Fatal(err)
	}
	var plans []struct{ Plan map[string]any }
	if err := json.Unmarshal([]byte(out), &plans); err != nil {
		t.Fatal(err)
	}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		rel, _ := n["Relation Name"].(string)
		rows, _ := n["Actual Rows"].(float64)
		loops, _ := n["Actual Loops"].(float64)
		switch {
		case strings.HasPrefix(rel, "eco_api_usage"):
			logRows += rows * loops
		case rel == "eco_usage_daily":
			rollupRows += rows * loops
		}
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			walk(c.(map[string]any))
		}
	}
	walk(plans[0].Plan)
	return logRows, rollupRows
}

// A 30-day history of a user with many logged calls reads one rollup row per closed day
// and only today's rows of the log.
func TestUsageHistoryCostsDaysNotCalls(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	s := postgres.NewUsageStore(db)
	user := ecoid.New(ecoid.User)
	now := time.Now().UTC()
	today := usage.DayStart(now)
	start := today.AddDate(0, 0, -29)
	const perDay = 1000
	if _, err := db.Exec(`INSERT INTO eco_api_usage (id, user_id, endpoint, method, status, latency_us, bytes, created_at)
		SELECT 'eco_use_' || lpad(i::text, 22, '0'), $1, '/a', 'GET', 200, i % 5000, 0,
			$2::timestamptz + (i / $3) * interval '1 day' + (i % $3) * ($4::bigint / $3) * interval '1 microsecond'
		FROM generate_series(0, 29 * $3 - 1) AS i`, string(user), start, perDay, int64(24*time.Hour/time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	todays := 0
	for i := range 50 {
		at := today.Add(time.Duration(i) * time.Millisecond)
		if at.After(now) {
			break
		}
		if err := s.WriteBatch(ctx, []usage.Record{storagetest.UsageRecord(user, at, "GET", "/a", 200, time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		todays++
	}
	if err := s.Maintain(ctx, now, 0); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, user, start, 30)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range h[:29] {
		if d.Calls != perDay {
			t.Fatalf("day %d: %d calls, want %d", i, d.Calls, perDay)
		}
	}
	if h[29].Calls != int64(todays) {
		t.Fatalf("today: %d calls, want %d", h[29].Calls, todays)
	}
	query, args, err := postgres.HistoryQuery(s, ctx, user, start, 30)
	if err != nil {
		t.Fatal(err)
	}
	logRows, rollupRows := rowsRead(t, db, query, args...)
	if logRows != float64(todays) || rollupRows != 29 {
		t.Fatalf("a 30-day history read %v log rows and %v rollup rows; want %d (today's) and 29", logRows, rollupRows, todays)
	}
}

// Two instances running Maintain at once (each with its own pool) create each partition
// once and roll every day up once, without errors.
func TestUsageMaintainConcurrently(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	s := postgres.NewUsageStore(db)
	user := ecoid.New(ecoid.User)
	var batch []usage.Record
	for i := range 40 {
		at := time.Date(2025, 6, 20, 12, 0, 0, 0, time.UTC).AddDate(0, 0, i) // into the default partition
		batch = append(batch, storagetest.UsageRecord(user, at, "GET", "/a", 200, time.Millisecond))
	}
	if err := s.WriteBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 8, 15, 0, 0, 0, 0, time.UTC)
	errc := make(chan error, 4)
	for range 4 {
		go func() { errc <- s.Maintain(ctx, now, 0) }()
	}
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatalf("concurrent Maintain: %v", err)
		}
	}
	parts := partitionsOf(t, db)
	if parts["eco_api_usage_p202506"] != 11 || parts["eco_api_usage_p202507"] != 29 || parts["eco_api_usage_default"] != 0 {
		t.Fatalf("rows per partition: %v", parts)
	}
	daily, err := s.Daily(ctx, user, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), now)
	if err != nil || len(daily) != 40 {
		t.Fatalf("Daily: %d days, %v", len(daily), err)
	}
}
