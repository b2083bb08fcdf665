package memory

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/nexus-ecosystem/nexus/fanout"
)

var _ fanout.Bus = (*Bus)(nil)

// busQueue is how many events one endpoint holds before it drops them and reports a Gap.
const busQueue = 1024

// Bus is an in-process fanout.Bus: the endpoints that Connect returns share one hub, as
// instances share a database channel, and each delivers to its subscribers from a
// goroutine of its own. An endpoint whose subscribers fall more than 1,024 events behind
// drops events and delivers a Gap instead, as a real transport would. It is safe for
// concurrent use.
type Bus struct {
	hub    *busHub
	subs   fanout.Subscribers
	queue  chan fanout.Event
	gap    atomic.Bool // events were dropped: deliver a Gap next
	wake   chan struct{}
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once
}

type busHub struct {
	mu  sync.RWMutex
	eps map[*Bus]struct{}
}

// NewBus returns the first endpoint of a new hub.
func NewBus() *Bus {
	return (&busHub{eps: map[*Bus]struct{}{}}).connect()
}

// Connect returns another endpoint on b's hub: what one publishes, every endpoint's
// subscribers receive.
func (b *Bus) Connect() *Bus { return b.hub.connect() }

func (h *busHub) connect() *Bus {
	b := &Bus{hub: h, queue: make(chan fanout.Event, busQueue), wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	h.eps[b] = struct{}{}
	h.mu.Unlock()
	go b.run()
	return b
}

// Publish implements fanout.Bus: it queues e for every endpoint of the hub.
func (b *Bus) Publish(_ context.Context, e fanout.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if b.closed.Load() {
		return fanout.ErrClosed
	}
	b.hub.mu.RLock()
	defer b.hub.mu.RUnlock()
	for ep := range b.hub.eps {
		ep.enqueue(e)
	}
	return nil
}

func (b *Bus) enqueue(e fanout.Event) {
	select {
	case b.queue <- e:
	default:
		b.gap.Store(true)
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Interrupt makes b behave as if its connection had dropped and come back: its
// subscribers get a Gap. Tests of code that subscribes use it.
func (b *Bus) Interrupt() {
	b.gap.Store(true)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Subscribe implements fanout.Bus.
func (b *Bus) Subscribe(fn func(fanout.Event)) func() { return b.subs.Add(fn) }

// Close implements fanout.Bus: b leaves the hub and its subscribers get no more calls.
func (b *Bus) Close() error {
	b.once.Do(func() {
		b.closed.Store(true)
		b.hub.mu.Lock()
		delete(b.hub.eps, b)
		b.hub.mu.Unlock()
		close(b.done)
	})
	return nil
}

func (b *Bus) run() {
	for {
		if b.gap.Swap(false) {
			b.subs.Deliver(fanout.Event{Kind: fanout.Gap})
		}
		select {
		case <-b.done:
			return
		case e := <-b.queue:
			if b.closed.Load() {
				return
			}
			b.subs.Deliver(e)
		case <-b.wake:
		}
	}
}
