package apikey

import (
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

func TestNewPlainParses(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		id := ecoid.New(ecoid.APIKey)
		plain := newPlain(id)
		if len(plain) != PlainLen || plain[:ecoid.Len] != string(id) || plain[ecoid.Len] != '.' {
			t.Fatalf("layout of %q", plain)
		}
		got, err := Parse(plain)
		if err != nil || got != id {
			t.Fatalf("Parse(%q) = %q, %v", plain, got, err)
		}
		secret := plain[ecoid.Len+1:]
		if seen[secret] {
			t.Fatal("a secret repeated")
		}
		seen[secret] = true
	}
}

func TestSecretCharactersAreUniform(t *testing.T) {
	var counts [62]int
	const n = 2000
	for i := 0; i < n; i++ {
		plain := newPlain(ecoid.New(ecoid.APIKey))
		for _, c := range []byte(plain[ecoid.Len+1 : ecoid.Len+1+randomLen]) {
			counts[base62Value[c]]++
		}
	}
	// Each character is expected n*43/62 ≈ 1387 times; allow a wide margin.
	for v, c := range counts {
		if c < 1150 || c > 1650 {
			t.Fatalf("base62 digit %c appears %d times in %d secrets", base62[v], c, n)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := newPlain(ecoid.New(ecoid.APIKey))
	flip := func(i int) string {
		b := []byte(good)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := map[string]string{
		"empty":                  "",
		"short":                  good[:len(good)-1],
		"long":                   good + "a",
		"space":                  " " + good[1:],
		"no dot":                 good[:ecoid.Len] + "x" + good[ecoid.Len+1:],
		"user ID":                newPlain(ecoid.New(ecoid.User)),
		"bad ID":                 "eco_api_!" + good[9:],
		"non-base62 secret":      good[:40] + "-" + good[41:],
		"typo in the secret":     flip(50),
		"typo in the ID":         flip(20),
		"typo in the checksum":   flip(PlainLen - 1),
		"two characters swapped": good[:45] + string(good[46]) + string(good[45]) + good[47:],
		"high byte":              good[:60] + "\xff" + good[61:],
	}
	for name, s := range cases {
		if s == good {
			continue // a swap of two equal characters
		}
		_, err := Parse(s)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
		if err != nil && len(s) > ecoid.Len+10 && strings.Contains(err.Error(), s[ecoid.Len+1:ecoid.Len+10]) {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}

func TestHashKey(t *testing.T) {
	plain := newPlain(ecoid.New(ecoid.APIKey))
	if HashKey(plain) != Hash(sha256.Sum256([]byte(plain))) {
		t.Fatal("HashKey is not SHA-256 of the plain key")
	}
	if HashKey("short") != Hash(sha256.Sum256([]byte("short"))) {
		t.Fatal("HashKey of another length")
	}
	h := HashKey(plain)
	if !h.Equal(HashKey(plain)) || h.Equal(HashKey(plain+"x")) || h.IsZero() || !(Hash{}).IsZero() {
		t.Fatal("Equal or IsZero")
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	plain := newPlain(ecoid.New(ecoid.APIKey))
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(plain); _ = HashKey(plain) }); n != 0 {
		t.Fatalf("Parse and HashKey allocate %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(newPlain(ecoid.New(ecoid.APIKey)))
	f.Add("eco_api_0Ub2cYzA9fKq3XwT7mNpLs.")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || id != "" {
				t.Fatalf("Parse(%q) = %q, %v", s, id, err)
			}
			return
		}
		// Whatever parses is a key newPlain could have made: same ID, same checksum.
		if id.Type() != ecoid.APIKey || !id.Valid() || s[:ecoid.Len] != string(id) || len(s) != PlainLen {
			t.Fatalf("Parse(%q) accepted it as %q", s, id)
		}
		b := []byte(s)
		putChecksum(b)
		if string(b) != s {
			t.Fatalf("Parse(%q) accepted a wrong checksum", s)
		}
	})
}

func TestCRCStringMatchesHashCRC32(t *testing.T) {
	for n := 0; n < 100; n++ {
		s := strings.Repeat("aZ9.x", 20)[:n]
		if got, want := crcString(s), crc32.ChecksumIEEE([]byte(s)); got != want {
			t.Fatalf("len %d: %08x, want %08x", n, got, want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	plain := newPlain(ecoid.New(ecoid.APIKey))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Parse(plain)
	}
}

// Equal compares every byte: hashes that differ in any one bit of any byte differ.
func TestHashEqualEveryByte(t *testing.T) {
	h := HashKey("eco_api_0Ub2cYzA9fKq3XwT7mNpLs.abc")
	if !h.Equal(h) {
		t.Fatal("a hash differs from itself")
	}
	for i := range h {
		for bit := range 8 {
			o := h
			o[i] ^= 1 << bit
			if h.Equal(o) || o.Equal(h) {
				t.Fatalf("hashes differing in bit %d of byte %d are equal", bit, i)
			}
		}
	}
}
