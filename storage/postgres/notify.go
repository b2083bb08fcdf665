package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/nexus-ecosystem/nexus/fanout"
)

var _ fanout.Bus = (*Bus)(nil)

// DefaultChannel is the NOTIFY channel of a Bus whose BusConfig.Channel is empty.
const DefaultChannel = "nexus_events"

// BusConfig tunes a Bus. The zero value of every field means its default.
type BusConfig struct {
	// Channel is the LISTEN/NOTIFY channel (default DefaultChannel). Channels belong to
	// the database, not to a schema: services that share a database in separate schemas
	// give each its own channel.
	Channel string
	// PingInterval is how often the listening connection is checked (default 1 s). A
	// check that has not answered by the next one counts as a loss: subscribers get a
	// Gap, and again at each interval until the connection answers, so a silent network
	// costs at most about two intervals of staleness.
	PingInterval time.Duration
	// Logger receives connection losses and reconnections (default: discard).
	Logger *slog.Logger
}

// Bus is a fanout.Bus over PostgreSQL LISTEN/NOTIFY: Publish runs pg_notify on the pool,
// and a dedicated connection (lib/pq's pq.Listener, which reconnects by itself) listens.
// A lost connection, a reconnection, a check that does not answer in time, or a payload
// that cannot be read is delivered to subscribers as a fanout.Gap. Notifications are sent
// by PostgreSQL when the publishing transaction commits; Publish outside a transaction
// commits at once. It is safe for concurrent use.
type Bus struct {
	db       *sql.DB
	listener *pq.Listener
	channel  string
	cfg      BusConfig
	subs     fanout.Subscribers
	events   chan pq.ListenerEventType
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// NewBus returns a Bus that publishes through db and listens on a connection of its own,
// opened with dsn (lib/pq syntax; the listener needs a DSN because it dials by itself).
// It returns once the listener is listening, or ctx's error if that takes too long.
func NewBus(ctx context.Context, dsn string, db *sql.DB, cfg BusConfig) (*Bus, error) {
	if cfg.Channel == "" {
		cfg.Channel = DefaultChannel
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{db: db, channel: cfg.Channel, cfg: cfg,
		events: make(chan pq.ListenerEventType, 16), stop: make(chan struct{}), done: make(chan struct{})}
	b.listener = pq.NewListener(dsn, 50*time.Millisecond, time.Second, func(ev pq.ListenerEventType, err error) {
		if ev == pq.ListenerEventDisconnected || ev == pq.ListenerEventConnectionAttemptFailed {
			b.cfg.Logger.Warn("postgres: event bus connection lost", "event", ev.String(), "err", err)
		}
		select {
		case b.events <- ev:
		default: // a Gap is pending already
		}
	})
	listened := make(chan error, 1)
	go func() { listened <- b.listener.Listen(b.channel) }()
	select {
	case err := <-listened:
		if err != nil {
			_ = b.listener.Close()
			return nil, fmt.Errorf("postgres: listen on %q: %w", b.channel, err)
		}
	case <-ctx.Done():
		_ = b.listener.Close()
		return nil, fmt.Errorf("postgres: listen on %q: %w", b.channel, ctx.Err())
	}
	go b.run()
	return b, nil
}

// Publish implements fanout.Bus with SELECT pg_notify(channel, payload).
func (b *Bus) Publish(ctx context.Context, e fanout.Event) error {
	payload, err := e.Encode()
	if err != nil {
		return err
	}
	select {
	case <-b.stop:
		return fanout.ErrClosed
	default:
	}
	if _, err := b.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, b.channel, payload); err != nil {
		return fmt.Errorf("postgres: publish: %w", err)
	}
	return nil
}

// Subscribe implements fanout.Bus.
func (b *Bus) Subscribe(fn func(fanout.Event)) func() { return b.subs.Add(fn) }

// Close implements fanout.Bus: it closes the listening connection and waits for the
// delivering goroutine to stop.
func (b *Bus) Close() error {
	b.once.Do(func() {
		close(b.stop)
		_ = b.listener.Close()
		<-b.done
	})
	return nil
}

func (b *Bus) gap() { b.subs.Deliver(fanout.Event{Kind: fanout.Gap}) }

// run delivers notifications and Gaps from one goroutine, and checks the connection.
func (b *Bus) run() {
	defer close(b.done)
	tick := time.NewTicker(b.cfg.PingInterval)
	defer tick.Stop()
	var pinging chan error // nil: no check in flight
	for {
		select {
		case <-b.stop:
			return
		case n, ok := <-b.listener.Notify:
			switch {
			case !ok:
				return
			case n == nil: // pq.Listener reconnected: anything may have been missed
				b.cfg.Logger.Info("postgres: event bus reconnected")
				b.gap()
			case n.Channel == b.channel:
				b.subs.DeliverWire(n.Extra)
			}
		case ev := <-b.events:
			if ev != pq.ListenerEventConnected {
				b.gap()
			}
		case err := <-pinging:
			pinging = nil
			if err != nil {
				b.gap()
			}
		case <-tick.C:
			if pinging != nil { // the previous check has not answered: treat as lost
				b.gap()
				continue
			}
			pinging = make(chan error, 1)
			go func(c chan<- error) { c <- b.listener.Ping() }(pinging)
		}
	}
}
