package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/fanout"
)

var _ fanout.Bus = (*Bus)(nil)

// DefaultChannel is the pub/sub channel of a Bus whose BusConfig.Channel is empty.
const DefaultChannel = "nexus:events"

// BusConfig tunes a Bus. The zero value of every field means its default.
type BusConfig struct {
	// Channel is the pub/sub channel (default DefaultChannel).
	Channel string
	// PingInterval is how long the subscription may stay silent before it is checked
	// with a PING (default 1 s). A PING not answered within another interval counts as
	// a loss: subscribers get a Gap and the subscription is opened again.
	PingInterval time.Duration
	// Logger receives connection losses (default: discard).
	Logger *slog.Logger
}

// Bus is a fanout.Bus over Redis pub/sub. Publish is one PUBLISH; a subscription of its
// own receives. go-redis reconnects a broken subscription by itself and subscribes again;
// the Bus sees that (an error from the connection, or a second subscribe confirmation)
// and delivers a fanout.Gap, because Redis does not keep what was published meanwhile. A
// subscription that answers neither messages nor PINGs is dropped and opened again, with a
// Gap. It is safe for concurrent use.
type Bus struct {
	client goredis.UniversalClient
	cfg    BusConfig
	subs   fanout.Subscribers
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu sync.Mutex
	ps *goredis.PubSub
}

// NewBus subscribes to the channel through client and returns once Redis has confirmed
// the subscription, or with ctx's error.
func NewBus(ctx context.Context, client goredis.UniversalClient, cfg BusConfig) (*Bus, error) {
	if cfg.Channel == "" {
		cfg.Channel = DefaultChannel
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{client: client, cfg: cfg, done: make(chan struct{})}
	ps, err := b.subscribe(ctx)
	if err != nil {
		return nil, err
	}
	b.ps = ps
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.run(ps)
	return b, nil
}

// subscribe opens a subscription and waits for its confirmation.
func (b *Bus) subscribe(ctx context.Context) (*goredis.PubSub, error) {
	ps := b.client.Subscribe(ctx, b.cfg.Channel)
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil { // the *Subscription reply
		_ = ps.Close()
		return nil, fmt.Errorf("redis: subscribe to %q: %w", b.cfg.Channel, err)
	}
	return ps, nil
}

// Publish implements fanout.Bus with one PUBLISH.
func (b *Bus) Publish(ctx context.Context, e fanout.Event) error {
	payload, err := e.Encode()
	if err != nil {
		return err
	}
	if b.ctx.Err() != nil {
		return fanout.ErrClosed
	}
	if err := b.client.Publish(ctx, b.cfg.Channel, payload).Err(); err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	return nil
}

// Subscribe implements fanout.Bus.
func (b *Bus) Subscribe(fn func(fanout.Event)) func() { return b.subs.Add(fn) }

// Close implements fanout.Bus: it closes the subscription and waits for the delivering
// goroutine to stop.
func (b *Bus) Close() error {
	b.once.Do(func() {
		b.cancel()
		b.mu.Lock()
		_ = b.ps.Close()
		b.mu.Unlock()
		<-b.done
	})
	return nil
}

func (b *Bus) gap() { b.subs.Deliver(fanout.Event{Kind: fanout.Gap}) }

// run receives from ps and delivers, from one goroutine; it replaces the subscription
// when it goes silent.
func (b *Bus) run(ps *goredis.PubSub) {
	defer close(b.done)
	pinged := false // a PING is unanswered
	lost := false   // the connection is known broken (logged once)
	for b.ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(b.ctx, b.cfg.PingInterval)
		if b.ctx.Err() != nil {
			return
		}
		var timeout interface{ Timeout() bool }
		switch {
		case err != nil && errors.As(err, &timeout) && timeout.Timeout():
			if !pinged {
				pinged = true
				if perr := ps.Ping(b.ctx); perr == nil {
					continue
				}
			}
			// Silent past a PING, or the PING could not be sent: start over.
			b.cfg.Logger.Warn("redis: event bus subscription silent; subscribing again")
			b.gap()
			ps = b.replace(ps)
			pinged = false
		case err != nil:
			// The connection broke; go-redis reconnects on the next receive.
			if !lost {
				b.cfg.Logger.Warn("redis: event bus connection lost", "err", err)
			}
			lost = true
			b.gap()
			pinged = false
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		default:
			pinged, lost = false, false
			switch m := msg.(type) {
			case *goredis.Message:
				if m.Channel == b.cfg.Channel {
					b.subs.DeliverWire(m.Payload)
				}
			case *goredis.Subscription:
				// Only a re-subscription after a reconnect confirms again.
				if m.Kind == "subscribe" {
					b.gap()
				}
			}
		}
	}
}

// replace closes ps and subscribes again, retrying until it works or the bus closes.
func (b *Bus) replace(ps *goredis.PubSub) *goredis.PubSub {
	_ = ps.Close()
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		next, err := b.subscribe(ctx)
		cancel()
		if err == nil {
			b.mu.Lock()
			b.ps = next
			b.mu.Unlock()
			b.gap() // what was published while no subscription existed is lost
			return next
		}
		if b.ctx.Err() != nil {
			b.mu.Lock()
			b.ps = ps
			b.mu.Unlock()
			return ps
		}
		b.gap()
		select {
		case <-b.ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
