package ecoid

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that what it accepts is exactly the set of
// well-formed IDs, and that an accepted ID round-trips through every accessor.
func FuzzParse(f *testing.F) {
	f.Add("eco_usr_0000000000000000000000")
	f.Add(string(NewAt(APIKey, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))))
	f.Add("eco_USR_0000000000000000000000")
	f.Add("")
	f.Add("eco_usr_zzzzzzzzzzzzzzzzzzzzzz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if id != "" {
				t.Fatalf("Parse returned %q with an error", id)
			}
			return
		}
		if string(id) != s || len(id) != Len || !id.Type().Valid() {
			t.Fatalf("Parse(%q) accepted a malformed ID", s)
		}
		// Re-encoding the stamped time must give back the same time digits.
		again := NewAt(id.Type(), id.Time())
		if again[:randStart] != id[:randStart] {
			t.Fatalf("time digits of %q do not round-trip: %q", id, again)
		}
		var scanned ID
		if err := scanned.Scan(s); err != nil || scanned != id {
			t.Fatalf("Scan disagrees with Parse on %q: %v", s, err)
		}
	})
}
