package totp_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth/totp"
)

// RFC 4226 Appendix D: HOTP of "12345678901234567890", 6 digits, counters 0..9.
func TestHOTPVectorsOfRFC4226(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	secret := []byte("12345678901234567890")
	for counter, w := range want {
		if got := (totp.Params{}).Code(secret, int64(counter)); got != w {
			t.Errorf("counter %d: %s, want %s", counter, got, w)
		}
	}
}

// RFC 6238 Appendix B: 8 digits, 30 s, the three hashes with their own seeds.
func TestTOTPVectorsOfRFC6238(t *testing.T) {
	seeds := map[totp.Algorithm][]byte{
		totp.SHA1:   []byte("12345678901234567890"),
		totp.SHA256: []byte("12345678901234567890123456789012"),
		totp.SHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	vectors := []struct {
		unix int64
		want map[totp.Algorithm]string
	}{
		{59, map[totp.Algorithm]string{totp.SHA1: "94287082", totp.SHA256: "46119246", totp.SHA512: "90693936"}},
		{1111111109, map[totp.Algorithm]string{totp.SHA1: "07081804", totp.SHA256: "68084774", totp.SHA512: "25091201"}},
		{1111111111, map[totp.Algorithm]string{totp.SHA1: "14050471", totp.SHA256: "67062674", totp.SHA512: "99943326"}},
		{1234567890, map[totp.Algorithm]string{totp.SHA1: "89005924", totp.SHA256: "91819424", totp.SHA512: "93441116"}},
		{2000000000, map[totp.Algorithm]string{totp.SHA1: "69279037", totp.SHA256: "90698825", totp.SHA512: "38618901"}},
		{20000000000, map[totp.Algorithm]string{totp.SHA1: "65353130", totp.SHA256: "77737706", totp.SHA512: "47863826"}},
	}
	for _, v := range vectors {
		at := time.Unix(v.unix, 0)
		for alg, want := range v.want {
			p := totp.Params{Digits: 8, Algorithm: alg}
			got := p.Code(seeds[alg], p.Step(at))
			if got != want {
				t.Errorf("%s at %d: %s, want %s", alg, v.unix, got, want)
			}
			if step, ok := p.Match(seeds[alg], want, at, 0); !ok || step != p.Step(at) {
				t.Errorf("%s at %d: Match = %d, %v", alg, v.unix, step, ok)
			}
		}
	}
}

func TestStep(t *testing.T) {
	var p totp.Params
	for unix, want := range map[int64]int64{0: 0, 29: 0, 30: 1, 59: 1, 1111111109: 37037036, -1: -1, -30: -1, -31: -2} {
		if got := p.Step(time.Unix(unix, 0)); got != want {
			t.Errorf("Step(%d) = %d, want %d", unix, got, want)
		}
	}
	if got := (totp.Params{Period: time.Minute}).Step(time.Unix(119, 0)); got != 1 {
		t.Errorf("60 s period: step %d", got)
	}
}

func TestMatchSkew(t *testing.T) {
	var p totp.Params
	secret, _ := totp.NewSecret()
	now := time.Unix(1_800_000_000, 0)
	cur := p.Step(now)
	for d, want := range map[int64]bool{-2: false, -1: true, 0: true, 1: true, 2: false} {
		code := p.Code(secret, cur+d)
		step, ok := p.Match(secret, code, now, 1)
		if ok != want || (ok && step != cur+d) {
			t.Errorf("code of step %+d: Match = %d, %v; want ok=%v", d, step-cur, ok, want)
		}
	}
	if _, ok := p.Match(secret, p.Code(secret, cur+1), now, 0); ok {
		t.Error("skew 0 accepted the next step")
	}
	if _, ok := p.Match(secret, "", now, 1); ok {
		t.Error("empty code accepted")
	}
}

func TestSecretRoundTrip(t *testing.T) {
	raw, text := totp.NewSecret()
	if len(raw) != totp.SecretBytes || len(text) != 32 || strings.ContainsAny(text, "=") {
		t.Fatalf("NewSecret: %d bytes, text %d chars", len(raw), len(text))
	}
	for _, in := range []string{text, strings.ToLower(text), text[:4] + " " + text[4:8] + "-" + text[8:]} {
		got, err := totp.DecodeSecret(in)
		if err != nil || string(got) != string(raw) {
			t.Fatalf("DecodeSecret(variant): %v", err)
		}
	}
	other, _ := totp.NewSecret()
	if string(other) == string(raw) {
		t.Fatal("two secrets are equal")
	}
	for _, bad := range []string{"", "AAAA", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", strings.Repeat("A", 400)} {
		if _, err := totp.DecodeSecret(bad); !errors.Is(err, totp.ErrInvalidSecret) {
			t.Errorf("DecodeSecret(%.10q): %v", bad, err)
		}
	}
}

func TestParseCode(t *testing.T) {
	var p totp.Params
	for in, want := range map[string]string{"123456": "123456", "123 456": "123456", " 123-456 ": "123456", "000000": "000000"} {
		if got, err := p.ParseCode(in); err != nil || got != want {
			t.Errorf("ParseCode(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "12345a", "-123456", "12-34-56", "１２３４５６", "123456\x00", strings.Repeat(" ", 100) + "123456"} {
		if got, err := p.ParseCode(bad); !errors.Is(err, totp.ErrInvalidCode) || got != "" {
			t.Errorf("ParseCode(%q) = %q, %v", bad, got, err)
		}
	}
	if got, err := (totp.Params{Digits: 8}).ParseCode("1234 5678"); err != nil || got != "12345678" {
		t.Errorf("8 digits: %q, %v", got, err)
	}
}

func TestURL(t *testing.T) {
	secret := []byte("12345678901234567890")
	raw := (totp.Params{}).URL("Acme Inc", "ann@example.com", secret)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Acme Inc:ann@example.com" {
		t.Fatalf("URL %s: scheme %q host %q path %q", raw, u.Scheme, u.Host, u.Path)
	}
	q := u.Query()
	if q.Get("secret") != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" || q.Get("issuer") != "Acme Inc" ||
		q.Get("algorithm") != "SHA1" || q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Fatalf("query %v", q)
	}
	if strings.Contains(raw, "+") {
		t.Fatalf("spaces encoded as +: %s", raw)
	}
	if got := (totp.Params{}).URL("a:b", "c", secret); !strings.HasPrefix(got, "otpauth://totp/a%3Ab:c?") {
		t.Fatalf("colon in issuer not escaped: %s", got)
	}
}

// FuzzParseCode: no panic; an accepted code is exactly six ASCII digits taken in order
// from the input, and parsing it again gives itself.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "123-456", "", "12345a", "１２３４５６"} {
		f.Add(s)
	}
	var p totp.Params
	f.Fuzz(func(t *testing.T, in string) {
		got, err := p.ParseCode(in)
		if err != nil {
			if !errors.Is(err, totp.ErrInvalidCode) || got != "" || (len(in) > 8 && strings.Contains(err.Error(), in)) {
				t.Fatalf("ParseCode(%q) = %q, %v", in, got, err)
			}
			return
		}
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, in)
		if len(got) != 6 || got != digits {
			t.Fatalf("ParseCode(%q) = %q", in, got)
		}
		if again, err := p.ParseCode(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q", got)
		}
	})
}

// FuzzDecodeSecret: no panic; an accepted secret has a legal size and encodes back to
// text DecodeSecret accepts as the same bytes.
func FuzzDecodeSecret(f *testing.F) {
	_, text := totp.NewSecret()
	for _, s := range []string{text, strings.ToLower(text), "AAAA", "", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ===="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		raw, err := totp.DecodeSecret(in)
		if err != nil {
			if !errors.Is(err, totp.ErrInvalidSecret) || raw != nil {
				t.Fatalf("DecodeSecret: %v", err)
			}
			return
		}
		if len(raw) < totp.MinSecretBytes || len(raw) > totp.MaxSecretBytes {
			t.Fatalf("accepted %d bytes", len(raw))
		}
		back, err := totp.DecodeSecret(totp.EncodeSecret(raw))
		if err != nil || string(back) != string(raw) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// BenchmarkMatch is one verification with one step of skew: three HMAC-SHA-1 codes.
func BenchmarkMatch(b *testing.B) {
	var p totp.Params
	secret, _ := totp.NewSecret()
	now := time.Unix(1_800_000_000, 0)
	code := p.Code(secret, p.Step(now))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.Match(secret, code, now, 1); !ok {
			b.Fatal("no match")
		}
	}
}
