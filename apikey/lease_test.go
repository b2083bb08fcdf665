package apikey_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
)

// One token without a hold is one Step: leasing changes nothing for a single request.
func TestTakeOfOneIsStep(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10000 {
		l := apikey.Limit{Count: 1 + rng.IntN(100), Period: time.Duration(1+rng.IntN(120)) * time.Second}
		g, err := l.GCRA()
		if err != nil {
			t.Fatal(err)
		}
		tat, seen, now := rng.Int64N(1e9), rng.Int64N(1e9), rng.Int64N(1e9)
		ok, wantTAT, wantSeen := g.Step(tat, seen, now)
		n, gotTAT, gotSeen, _ := g.Take(tat, seen, now, 1, 0)
		if (n == 1) != ok || gotTAT != wantTAT || gotSeen != wantSeen {
			t.Fatalf("case %d %+v (%d,%d,%d): Take %d %d %d, Step %v %d %d", i, l, tat, seen, now, n, gotTAT, gotSeen, ok, wantTAT, wantSeen)
		}
	}
}

// Every granted token may be used until validUntil, which is at least now + hold, and
// the grant never passes the burst.
func TestTakeWindow(t *testing.T) {
	g, _ := apikey.PerMinute(60).GCRA() // interval 1 s, burst 60 s
	n, tat, _, until := g.Take(0, 0, 1e9, 100, 2e6)
	if n != 58 || until != 1e9+2e6 || tat != until+58e6 {
		t.Fatalf("idle take: %d tokens, tat %d, valid until %d", n, tat, until)
	}
	if n, _, _, _ := g.Take(tat, 1e9, 1e9, 1, 2e6); n != 0 {
		t.Fatalf("a full burst granted %d more", n)
	}
	n, _, _, until = g.Take(1e9+30e6, 1e9, 1e9, 5, 2e6) // busy: TAT well ahead, no guard
	if n != 5 || until != 1e9+30e6 {
		t.Fatalf("busy take: %d tokens, valid until %d", n, until)
	}
}
