package billing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzSignatureHeader checks the Stripe-Signature parser on arbitrary headers: it never
// panics; what it accepts has exactly one t= element whose value is the canonical form of
// the instant returned, and one to maxSignatures 32-byte v1 signatures; and verification
// accepts a header only when it carries the HMAC of that very timestamp, so adding a
// second t= to a valid header is always refused.
func FuzzSignatureHeader(f *testing.F) {
	for _, seed := range []string{
		"t=1773144000,v1=" + strings.Repeat("ab", 32),
		"t=1773144000,t=1770724800,v1=" + strings.Repeat("ab", 32),
		"v1=" + strings.Repeat("00", 32) + ",t=1,v0=x",
		"t=01773144000,v1=" + strings.Repeat("ab", 32),
		"t=,v1=,=,,t=99999999999999999999",
		"t=1773144000,v1=zz",
		"",
	} {
		f.Add(seed, []byte(`{"id":"evt_1"}`))
	}
	const secret = "whsec_fuzz"
	f.Fuzz(func(t *testing.T, header string, payload []byte) {
		h, err := parseSignatureHeader(header)
		if err == nil {
			ts := 0
			for _, part := range strings.Split(header, ",") {
				if strings.HasPrefix(part, "t=") {
					ts++
				}
			}
			if ts != 1 {
				t.Fatalf("accepted %q with %d timestamps", header, ts)
			}
			if strconv.FormatInt(h.at.Unix(), 10) != h.timestamp || h.at.Unix() <= 0 {
				t.Fatalf("timestamp %q parsed as %v", h.timestamp, h.at)
			}
			if len(h.v1) == 0 || len(h.v1) > maxSignatures {
				t.Fatalf("%d v1 signatures accepted", len(h.v1))
			}
			for _, s := range h.v1 {
				if len(s) != sha256.Size {
					t.Fatalf("v1 of %d bytes", len(s))
				}
			}
		}
		// A valid signature for a timestamp, with the fuzzed header appended: accepted only
		// when the result still parses, so never with a second t=.
		at := time.Unix(1773144000, 0)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("1773144000."))
		mac.Write(payload)
		valid := "t=1773144000,v1=" + hex.EncodeToString(mac.Sum(nil))
		combined := valid + "," + header
		verr := verifySignature(payload, combined, secret, at)
		if _, perr := parseSignatureHeader(combined); (perr == nil) != (verr == nil) {
			t.Fatalf("parse error %v but verify error %v for %q", perr, verr, combined)
		}
		if verr == nil && strings.Contains(","+header, ",t=") {
			t.Fatalf("a second timestamp was accepted: %q", combined)
		}
		if err := verifySignature(payload, valid, secret, at.Add(WebhookTolerance+time.Second)); err == nil {
			t.Fatal("a signature past the tolerance verified")
		}
	})
}
