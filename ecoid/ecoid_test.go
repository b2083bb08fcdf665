package ecoid

import (
	"database/sql"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewFormat(t *testing.T) {
	for _, typ := range []Type{User, Org, Project, APIKey, Session, Subscription, Event, Usage, "abc"} {
		id := New(typ)
		if len(id) != Len {
			t.Fatalf("New(%q) = %q: length %d, want %d", typ, id, len(id), Len)
		}
		if !strings.HasPrefix(string(id), "eco_"+string(typ)+"_") {
			t.Fatalf("New(%q) = %q: wrong prefix", typ, id)
		}
		if _, err := Parse(string(id)); err != nil {
			t.Fatalf("Parse(New(%q)) failed: %v", typ, err)
		}
		if id.Type() != typ {
			t.Fatalf("Type() = %q, want %q", id.Type(), typ)
		}
	}
}

func TestTimeRoundTrip(t *testing.T) {
	for _, ts := range []time.Time{
		time.Unix(0, 0),
		time.Date(2026, 11, 25, 4, 47, 42, 123_000_000, time.UTC),
		time.UnixMilli(maxMillis),
	} {
		id := NewAt(User, ts)
		if got := id.Time(); !got.Equal(ts.Truncate(time.Millisecond)) {
			t.Errorf("NewAt(%v).Time() = %v", ts, got)
		}
	}
	for i := 0; i < 1000; i++ {
		before := time.Now().Truncate(time.Millisecond)
		got := New(User).Time()
		after := time.Now()
		if got.Before(before) || got.After(after) {
			t.Fatalf("New().Time() = %v, outside [%v, %v]", got, before, after)
		}
	}
}

func TestNewAtClampsOutOfRangeTimes(t *testing.T) {
	if got := NewAt(User, time.Unix(-10, 0)).Time(); !got.Equal(time.Unix(0, 0)) {
		t.Errorf("time before 1970 stamped as %v, want the epoch", got)
	}
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := NewAt(User, far).Time(); got.UnixMilli() != maxMillis {
		t.Errorf("time after the range stamped as %v, want the maximum", got)
	}
}

func TestNewPanicsOnBadType(t *testing.T) {
	for _, typ := range []Type{"", "us", "usrr", "USR", "u1r", "us_"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%q) did not panic", typ)
				}
			}()
			New(typ)
		}()
	}
}

func TestIDsSortByCreationTime(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := 0; i < 1000; i++ {
		ids = append(ids, string(NewAt(Event, base.Add(time.Duration(i)*time.Millisecond*7919))))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("IDs created in time order do not sort in byte order")
	}
}

func TestNewIsUniqueUnderConcurrency(t *testing.T) {
	const goroutines, each = 16, 5000
	var mu sync.Mutex
	seen := make(map[ID]struct{}, goroutines*each)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]ID, each)
			for i := range local {
				local[i] = New(Event)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if _, dup := seen[id]; dup {
					t.Errorf("duplicate ID %s", id)
				}
				seen[id] = struct{}{}
			}
		}()
	}
	wg.Wait()
}

// TestRandomDigitsAreUniform checks that every base62 digit appears in the random part
// about equally often, which catches a modulo bias or a stuck buffer.
func TestRandomDigitsAreUniform(t *testing.T) {
	var counts [62]int
	const n = 20000
	for i := 0; i < n; i++ {
		id := New(Event)
		for j := randStart; j < Len; j++ {
			counts[base62Value[id[j]]]++
		}
	}
	want := float64(n*randLen) / 62
	for d, c := range counts {
		if dev := (float64(c) - want) / want; dev > 0.1 || dev < -0.1 {
			t.Errorf("digit %c appears %d times, want about %.0f", alphabet[d], c, want)
		}
	}
}

func TestParse(t *testing.T) {
	valid := "eco_usr_0000000000000000000000"
	tests := []struct {
		name, in, wantMsg string
	}{
		{"empty", "", "length 0, want 30"},
		{"too short", valid[:29], "length 29"},
		{"too long", valid + "0", "length 31"},
		{"bad prefix", "ECO_usr_0000000000000000000000", `missing "eco_" prefix`},
		{"upper type", "eco_USR_0000000000000000000000", "type must be three lowercase"},
		{"digit type", "eco_us1_0000000000000000000000", "type must be three lowercase"},
		{"no separator", "eco_usr-0000000000000000000000", `missing "_" after the type`},
		{"non base62 in time", "eco_usr_0000-00000000000000000", "byte 12 is not base62"},
		{"non base62 in random", "eco_usr_00000000000000000000_0", "byte 28 is not base62"},
		{"non ASCII", "eco_usr_000000000000000000000\xff", "byte 29 is not base62"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error = %v, want ErrInvalid", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Parse(%q) error = %q, want it to say %q", tt.in, err, tt.wantMsg)
			}
		})
	}
	if id, err := Parse(valid); err != nil || string(id) != valid {
		t.Fatalf("Parse(%q) = %q, %v", valid, id, err)
	}
}

func TestParseShortensLongInputInErrors(t *testing.T) {
	_, err := Parse(strings.Repeat("x", 10000))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for huge input is %d bytes long", len(err.Error()))
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	s := string(New(User))
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(s) }); n != 0 {
		t.Fatalf("Parse allocates %v times, want 0", n)
	}
	if raceEnabled {
		t.Log("New's allocation count is not checked under -race (sync.Pool drops items there)")
		return
	}
	if n := testing.AllocsPerRun(100, func() { _ = New(User) }); n != 1 {
		t.Fatalf("New allocates %v times, want 1", n)
	}
}

func TestAccessorsOnMalformedID(t *testing.T) {
	bad := ID("eco_usr_000000000000000000000!")
	if bad.Type() != "" || !bad.Time().IsZero() || bad.Valid() {
		t.Fatal("accessors of a malformed ID must report nothing")
	}
	if ID("").Type() != "" || !ID("").IsZero() {
		t.Fatal("the zero ID has no type")
	}
}

func TestSQL(t *testing.T) {
	id := New(Project)
	v, err := id.Value()
	if err != nil || v != string(id) {
		t.Fatalf("Value() = %v, %v", v, err)
	}
	if _, err := ID("nope").Value(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Value of a malformed ID: %v, want ErrInvalid", err)
	}
	for _, src := range []any{string(id), []byte(id)} {
		var got ID
		if err := got.Scan(src); err != nil || got != id {
			t.Fatalf("Scan(%T) = %q, %v", src, got, err)
		}
	}
	for _, src := range []any{nil, 42, "eco_usr_bad", []byte("x")} {
		var got ID
		if err := got.Scan(src); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Scan(%#v) error = %v, want ErrInvalid", src, err)
		}
	}
	var null sql.Null[ID]
	if err := null.Scan(nil); err != nil || null.Valid {
		t.Fatalf("sql.Null[ID].Scan(nil) = %v", err)
	}
}

func TestJSON(t *testing.T) {
	type doc struct {
		ID ID `json:"id"`
	}
	in := doc{ID: New(User)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("round trip: %v, %+v", err, out)
	}
	if b, err := json.Marshal(doc{}); err != nil || string(b) != `{"id":""}` {
		t.Fatalf("zero ID marshals as %s, %v", b, err)
	}
	if _, err := json.Marshal(doc{ID: "junk"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("marshal of a malformed ID: %v", err)
	}
	for _, bad := range []string{`{"id":""}`, `{"id":"eco_usr_x"}`, `{"id":"ECO_USR_0000000000000000000000"}`} {
		if err := json.Unmarshal([]byte(bad), &out); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Unmarshal(%s) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = New(User)
	}
}

func BenchmarkNewParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = New(User)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	s := string(New(User))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
