package fanout_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-ecosystem/nexus/fanout"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, e := range []fanout.Event{
		{Kind: fanout.KeyChanged, ID: "eco_api_0000000000000000000000", User: "eco_usr_0000000000000000000000"},
		{Kind: fanout.KeyChanged, ID: "k"},
		{Kind: fanout.PlanChanged, User: "u"},
		{Kind: fanout.SessionRevoked, ID: "s", User: "u"},
		{Kind: fanout.SessionRevoked, User: "u"},
		{Kind: fanout.KeyChanged, ID: strings.Repeat("x", fanout.MaxFieldLen)},
	} {
		s, err := e.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", e, err)
		}
		got, err := fanout.Decode(s)
		if err != nil || got != e {
			t.Fatalf("Decode(%q) = %+v, %v; want %+v", s, got, err, e)
		}
	}
}

func TestDecodeRefusesWhatEncodeNeverWrites(t *testing.T) {
	for _, s := range []string{
		"", "1", "1|key", "1|key|id", "2|key|id|", "1|gap|x|", "1|key||", "1|key|a|b|c",
		"1|plan||u u", "1|key|" + strings.Repeat("x", fanout.MaxFieldLen+1) + "|",
	} {
		if _, err := fanout.Decode(s); !errors.Is(err, fanout.ErrInvalidEvent) {
			t.Errorf("Decode(%q) = %v, want ErrInvalidEvent", s, err)
		}
	}
}

func TestSubscribersDeliverUnreadablePayloadsAsGap(t *testing.T) {
	var subs fanout.Subscribers
	var got []fanout.Event
	remove := subs.Add(func(e fanout.Event) { got = append(got, e) })
	subs.DeliverWire("1|key|k1|")
	subs.DeliverWire("9|future|format|")
	remove()
	subs.DeliverWire("1|key|k2|")
	want := []fanout.Event{{Kind: fanout.KeyChanged, ID: "k1"}, {Kind: fanout.Gap}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("delivered %+v, want %+v", got, want)
	}
}

func TestSubscriberMayPublishOrSubscribeFromItsCall(t *testing.T) {
	var subs fanout.Subscribers
	var wg sync.WaitGroup
	wg.Add(1)
	subs.Add(func(fanout.Event) {
		defer wg.Done()
		subs.Add(func(fanout.Event) {}) // would deadlock if Deliver held the lock
	})
	subs.Deliver(fanout.Event{Kind: fanout.PlanChanged, User: "u"})
	wg.Wait()
}

func FuzzDecode(f *testing.F) {
	f.Add("1|key|eco_api_0000000000000000000000|eco_usr_0000000000000000000000")
	f.Add("1|plan||u")
	f.Add("1|session|s|u")
	f.Add("1|gap||")
	f.Add("2|key|a|b")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := fanout.Decode(s)
		if err != nil {
			if !errors.Is(err, fanout.ErrInvalidEvent) {
				t.Fatalf("Decode(%q) error %v does not wrap ErrInvalidEvent", s, err)
			}
			return
		}
		again, err := e.Encode()
		if err != nil || again != s {
			t.Fatalf("Decode(%q) = %+v, which encodes to %q, %v", s, e, again, err)
		}
	})
}
