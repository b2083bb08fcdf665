package billing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxSignatures bounds the v1 signatures one Stripe-Signature header may carry. Stripe
// sends one per active endpoint secret (two while a secret is rolled).
const maxSignatures = 8

// signatureHeader is a parsed Stripe-Signature header.
type signatureHeader struct {
	timestamp string    // the t= value exactly as signed (canonical decimal seconds)
	at        time.Time // the same instant
	v1        [][]byte  // the v1 signatures (HMAC-SHA256, 32 bytes each)
}

// parseSignatureHeader parses a Stripe-Signature header strictly:
// "t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…][,<other scheme>=…]". Exactly one t= with
// a canonical positive decimal (no sign, no leading zero, at most 12 digits), at least one
// and at most maxSignatures v1= values of 64 hex digits, every part a key=value pair with
// a non-empty key. Other schemes (v0, future ones) are ignored. Any other shape wraps
// ErrInvalidSignature: in particular a second t=, which would let a replayed signature
// be checked against one timestamp and its tolerance against another.
func parseSignatureHeader(header string) (signatureHeader, error) {
	var h signatureHeader
	if header == "" {
		return h, fmt.Errorf("%w: no Stripe-Signature header", ErrInvalidSignature)
	}
	seenT := false
	for part := range strings.SplitSeq(header, ",") {
		key, value, ok := strings.Cut(part, "=")
		if !ok || key == "" {
			return signatureHeader{}, fmt.Errorf("%w: malformed header element", ErrInvalidSignature)
		}
		switch key {
		case "t":
			if seenT {
				return signatureHeader{}, fmt.Errorf("%w: more than one timestamp", ErrInvalidSignature)
			}
			seenT = true
			sec, err := parseUnixSeconds(value)
			if err != nil {
				return signatureHeader{}, err
			}
			h.timestamp, h.at = value, time.Unix(sec, 0).UTC()
		case "v1":
			if len(h.v1) == maxSignatures {
				return signatureHeader{}, fmt.Errorf("%w: more than %d signatures", ErrInvalidSignature, maxSignatures)
			}
			if len(value) != 2*sha256.Size {
				return signatureHeader{}, fmt.Errorf("%w: malformed v1 signature", ErrInvalidSignature)
			}
			sig, err := hex.DecodeString(value)
			if err != nil {
				return signatureHeader{}, fmt.Errorf("%w: malformed v1 signature", ErrInvalidSignature)
			}
			h.v1 = append(h.v1, sig)
		}
	}
	switch {
	case !seenT:
		return signatureHeader{}, fmt.Errorf("%w: no timestamp", ErrInvalidSignature)
	case len(h.v1) == 0:
		return signatureHeader{}, fmt.Errorf("%w: no v1 signature", ErrInvalidSignature)
	}
	return h, nil
}

// parseUnixSeconds accepts only the canonical decimal form Stripe writes, so the string
// that is signed and the number that is checked are one and the same.
func parseUnixSeconds(s string) (int64, error) {
	if s == "" || len(s) > 12 || s[0] == '0' {
		return 0, fmt.Errorf("%w: malformed timestamp", ErrInvalidSignature)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: malformed timestamp", ErrInvalidSignature)
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: malformed timestamp", ErrInvalidSignature)
	}
	return sec, nil
}

// verifySignature checks a Stripe-Signature header against payload and the endpoint
// secret at now: the header parses (parseSignatureHeader), its one timestamp lies within
// WebhookTolerance of now in either direction, and one of its v1 signatures equals
// HMAC-SHA256(secret, "<t>.<payload>") for that same timestamp (compared in constant
// time). Every failure wraps ErrInvalidSignature.
func verifySignature(payload []byte, header, secret string, now time.Time) error {
	if secret == "" {
		return fmt.Errorf("%w: no endpoint secret configured", ErrInvalidSignature)
	}
	h, err := parseSignatureHeader(header)
	if err != nil {
		return err
	}
	if d := now.Sub(h.at); d > WebhookTolerance || d < -WebhookTolerance {
		return fmt.Errorf("%w: timestamp outside the %s tolerance", ErrInvalidSignature, WebhookTolerance)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(h.timestamp))
	mac.Write([]byte{'.'})
	mac.Write(payload)
	want := mac.Sum(nil)
	for _, sig := range h.v1 {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no signature matches", ErrInvalidSignature)
}
