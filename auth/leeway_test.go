package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

// TestLeewayAbsorbsClockSkew is issue 10.10: a token from an instance whose clock runs
// ahead (iat and nbf in the verifier's future) is accepted within the leeway, refused
// beyond it; the same holds for exp on the other side.
func TestLeewayAbsorbsClockSkew(t *testing.T) {
	for _, c := range []struct {
		name   string
		leeway time.Duration // IssuerConfig.Leeway
		within time.Duration // the largest skew that must verify (0: none)
	}{
		{"default", 0, auth.DefaultLeeway},
		{"configured", 5 * time.Second, 5 * time.Second},
		{"none", -1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := newClock()
			verifier := newIssuerWith(t, base, c.leeway)
			check := func(skew time.Duration, wantOK bool) {
				t.Helper()
				ahead := storagetest.NewClock(base.Now().Add(skew))
				tok, _, err := newIssuerWith(t, ahead, c.leeway).Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
				if err != nil {
					t.Fatal(err)
				}
				_, err = verifier.Verify(tok, auth.AccessToken)
				if wantOK && err != nil {
					t.Fatalf("token from a clock %v ahead: %v, want accepted", skew, err)
				}
				if !wantOK && !errors.Is(err, auth.ErrInvalidToken) {
					t.Fatalf("token from a clock %v ahead: %v, want refused", skew, err)
				}
			}
			check(0, true)
			check(time.Second, c.within >= time.Second)
			if c.within > 0 {
				check(c.within, true)
			}
			check(c.within+2*time.Second, false)

			// exp: still accepted within the leeway after expiry, refused beyond it.
			tok, _, _ := verifier.Issue(auth.AccessToken, ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
			base.Advance(auth.DefaultAccessTTL + c.within - time.Second)
			if _, err := verifier.Verify(tok, auth.AccessToken); err != nil {
				t.Fatalf("at exp + %v - 1s: %v", c.within, err)
			}
			base.Advance(2 * time.Second)
			if _, err := verifier.Verify(tok, auth.AccessToken); !errors.Is(err, auth.ErrTokenExpired) {
				t.Fatalf("past exp + leeway: %v, want ErrTokenExpired", err)
			}
		})
	}
}

func newIssuerWith(t testing.TB, clock *fakeClock, leeway time.Duration) *auth.Issuer {
	t.Helper()
	is, err := auth.NewIssuer(auth.IssuerConfig{Secret: testSecret, Leeway: leeway, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return is
}
