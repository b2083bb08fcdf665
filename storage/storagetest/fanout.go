package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/fanout"
)

// OpenBus opens one endpoint of the bus under test, as one instance of a service would:
// every endpoint opened through the same OpenBus shares one channel. cut breaks the
// endpoint's connection (the adapter must notice and reconnect by itself); the endpoint
// is closed when the test ends.
type OpenBus func(t *testing.T) (bus fanout.Bus, cut func())

// NewFanout returns an OpenBus over a fresh channel that no other test uses.
type NewFanout func(t *testing.T) OpenBus

// eventWait bounds how long the suite waits for an event to arrive. It is a generous
// failure bound, not a latency requirement: timing belongs to benchmarks.
const eventWait = 15 * time.Second

// RunFanout runs the fanout.Bus contract against an adapter.
func RunFanout(t *testing.T, newFanout NewFanout) {
	t.Helper()
	t.Run("DeliversToEveryEndpoint", func(t *testing.T) { testFanoutDelivery(t, newFanout(t)) })
	t.Run("RefusesInvalidEvents", func(t *testing.T) { testFanoutInvalid(t, newFanout(t)) })
	t.Run("GapAfterReconnect", func(t *testing.T) { testFanoutGap(t, newFanout(t)) })
	t.Run("ManyEventsAllArrive", func(t *testing.T) { testFanoutMany(t, newFanout(t)) })
	t.Run("UnsubscribeAndClose", func(t *testing.T) { testFanoutClose(t, newFanout(t)) })
}

// inbox subscribes to bus and returns the channel its events arrive on.
func inbox(t *testing.T, bus fanout.Bus) <-chan fanout.Event {
	t.Helper()
	ch := make(chan fanout.Event, 4096)
	unsubscribe := bus.Subscribe(func(e fanout.Event) {
		select {
		case ch <- e:
		default:
			t.Errorf("inbox overflow: event %+v dropped by the test", e)
		}
	})
	t.Cleanup(unsubscribe)
	return ch
}

// await returns the first event from ch that want accepts, skipping others, or fails
// the test after eventWait.
func await(t *testing.T, ch <-chan fanout.Event, what string, want func(fanout.Event) bool) fanout.Event {
	t.Helper()
	deadline := time.After(eventWait)
	for {
		select {
		case e := <-ch:
			if want(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, eventWait)
			return fanout.Event{}
		}
	}
}

func is(e fanout.Event) func(fanout.Event) bool {
	return func(got fanout.Event) bool { return got == e }
}

func testFanoutDelivery(t *testing.T, open OpenBus) {
	ctx := context.Background()
	a, _ := open(t)
	b, _ := open(t)
	inA, inB := inbox(t, a), inbox(t, b)

	key := fanout.Event{Kind: fanout.KeyChanged, ID: string(ecoid.New(ecoid.APIKey)), User: string(ecoid.New(ecoid.User))}
	if err := a.Publish(ctx, key); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	await(t, inB, "key event on the other endpoint", is(key))
	await(t, inA, "key event on the publishing endpoint", is(key))

	plan := fanout.Event{Kind: fanout.PlanChanged, User: string(ecoid.New(ecoid.User))}
	session := fanout.Event{Kind: fanout.SessionRevoked, ID: string(ecoid.New(ecoid.Session)), User: plan.User}
	everywhere := fanout.Event{Kind: fanout.SessionRevoked, User: plan.User}
	for _, e := range []fanout.Event{plan, session, everywhere} {
		if err := b.Publish(ctx, e); err != nil {
			t.Fatalf("Publish %+v: %v", e, err)
		}
		await(t, inA, fmt.Sprintf("%s event", e.Kind), is(e))
	}
}

func testFanoutInvalid(t *testing.T, open OpenBus) {
	bus, _ := open(t)
	long := strings.Repeat("x", fanout.MaxFieldLen+1)
	for _, e := range []fanout.Event{
		{Kind: fanout.Gap},
		{Kind: "other", ID: "x"},
		{Kind: fanout.KeyChanged},
		{Kind: fanout.KeyChanged, ID: long},
		{Kind: fanout.KeyChanged, ID: "a|b"},
		{Kind: fanout.PlanChanged, User: "a b"},
		{Kind: fanout.PlanChanged, User: "caf\xc3\xa9"},
	} {
		if err := bus.Publish(context.Background(), e); !errors.Is(err, fanout.ErrInvalidEvent) {
			t.Errorf("Publish(%+q) = %v, want ErrInvalidEvent", e, err)
		}
	}
}

func testFanoutGap(t *testing.T, open OpenBus) {
	ctx := context.Background()
	a, _ := open(t)
	b, cutB := open(t)
	inB := inbox(t, b)

	cutB()
	await(t, inB, "Gap after the connection was cut", func(e fanout.Event) bool { return e.Kind == fanout.Gap })

	// The endpoint reconnects by itself: events published after that arrive again.
	// Publish until one does; each try is a distinct event.
	deadline := time.Now().Add(eventWait)
	for i := 0; ; i++ {
		e := fanout.Event{Kind: fanout.KeyChanged, ID: fmt.Sprintf("after-cut-%d", i)}
		if err := a.Publish(ctx, e); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		select {
		case got := <-inB:
			if strings.HasPrefix(got.ID, "after-cut-") {
				return
			}
			if got.Kind != fanout.Gap {
				t.Fatalf("after a cut the endpoint received %+v", got)
			}
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event arrived within %v of the cut: the endpoint did not reconnect", eventWait)
		}
	}
}

func testFanoutMany(t *testing.T, open OpenBus) {
	ctx := context.Background()
	a, _ := open(t)
	b, _ := open(t)
	inB := inbox(t, b)
	const n = 300
	for i := range n {
		e := fanout.Event{Kind: fanout.KeyChanged, ID: fmt.Sprintf("key-%d", i)}
		if err := a.Publish(ctx, e); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	seen := map[string]bool{}
	deadline := time.After(eventWait)
	for len(seen) < n {
		select {
		case e := <-inB:
			if e.Kind == fanout.Gap {
				t.Fatalf("Gap without a connection loss after %d of %d events", len(seen), n)
			}
			if seen[e.ID] {
				t.Fatalf("event %s delivered twice", e.ID)
			}
			seen[e.ID] = true
		case <-deadline:
			t.Fatalf("%d of %d events arrived within %v", len(seen), n, eventWait)
		}
	}
}

func testFanoutClose(t *testing.T, open OpenBus) {
	ctx := context.Background()
	a, _ := open(t)
	b, _ := open(t)
	got := make(chan fanout.Event, 16)
	unsubscribe := b.Subscribe(func(e fanout.Event) { got <- e })
	unsubscribe()
	unsubscribe() // twice is fine
	inB := inbox(t, b)
	e := fanout.Event{Kind: fanout.PlanChanged, User: "u1"}
	if err := a.Publish(ctx, e); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	await(t, inB, "event on the remaining subscriber", is(e))
	select {
	case e := <-got:
		t.Fatalf("an unsubscribed function was called with %+v", e)
	default:
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Publish(ctx, e); !errors.Is(err, fanout.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}
