package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineTick is how often a deadlineListener checks its connections' deadlines, and so
// how late at most a deadline seconds ahead fires: the server's timeouts are 10 s and
// longer, and a quarter of a second on top of them changes nothing for a client.
const deadlineTick = 250 * time.Millisecond

// deadlineListener hands out connections whose distant deadlines are kept by one
// goroutine that wakes every tick, instead of by a runtime timer moved on every call.
//
// Why: net/http moves each connection's deadlines eight times per request. With the
// server's ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout set, four of those
// moves are to a time seconds ahead, each an update of the runtime's timer heap with a
// clock read; measured with bench/e2e, that was about 3% of the server's CPU on the
// API-key route, as much as the whole usage tracker. Here a deadline seconds ahead costs
// an atomic store, and the keeper applies it to the connection only once it is due,
// which for almost every request it never is. A deadline already due, or due within two
// ticks, goes to the connection at once: net/http cancels a pending read with a deadline
// in the past, and that must act immediately. Every timeout still holds, up to one tick
// late; nothing else about the connections changes.
//
// The keeper stops once the listener is closed and its last connection is.
type deadlineListener struct {
	net.Listener
	tick time.Duration
	// Deadlines are kept as the monotonic time since base, as the runtime keeps them:
	// a step of the system clock moves no timeout.
	base time.Time
	now  atomic.Int64 // since base at the keeper's last tick

	mu     sync.Mutex
	conns  map[*deadlineConn]struct{}
	exited bool // the keeper has returned: later connections are refused

	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when the keeper returns
}

// newDeadlineListener wraps ln; its connections' deadlines are checked every tick.
func newDeadlineListener(ln net.Listener, tick time.Duration) *deadlineListener {
	l := &deadlineListener{Listener: ln, tick: tick, conns: map[*deadlineConn]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{}), base: time.Now()}
	go l.keep()
	return l
}

// Accept returns the next connection, its deadlines kept by the listener.
func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c, l: l}
	l.mu.Lock()
	if l.exited { // accepted as the listener closed, after the keeper left: nobody would keep its deadlines
		l.mu.Unlock()
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns[dc] = struct{}{}
	l.mu.Unlock()
	return dc, nil
}

// Close stops accepting; the deadlines of connections still open go on being kept.
func (l *deadlineListener) Close() error {
	l.closeOnce.Do(func() { close(l.stop) })
	return l.Listener.Close()
}

// keep wakes every tick and applies every deadline that has come due.
func (l *deadlineListener) keep() {
	defer close(l.done)
	t := time.NewTicker(l.tick)
	defer t.Stop()
	stop := l.stop
	var due []*deadlineConn
	for {
		select {
		case <-t.C:
		case <-stop:
			stop = nil // from now on, return once the last connection is closed
			continue
		}
		now := l.since(time.Now())
		l.now.Store(now)
		l.mu.Lock()
		if stop == nil && len(l.conns) == 0 {
			l.exited = true
			l.mu.Unlock()
			return
		}
		for c := range l.conns {
			if c.read.isDue(now) || c.write.isDue(now) {
				due = append(due, c)
			}
		}
		l.mu.Unlock()
		for _, c := range due {
			c.expire(&c.read, false, now)
			c.expire(&c.write, true, now)
		}
		clear(due)
		due = due[:0]
	}
}

// since returns t as the listener keeps deadlines: nanoseconds since base, never 0 (which
// means none).
func (l *deadlineListener) since(t time.Time) int64 {
	if d := int64(t.Sub(l.base)); d != 0 {
		return d
	}
	return 1
}

// deadlineConn is a connection of a deadlineListener.
type deadlineConn struct {
	net.Conn
	l           *deadlineListener
	read, write lazyDeadline
}

// lazyDeadline is one direction's deadline.
//
// at is the deadline the keeper is to apply, in nanoseconds since the listener's base
// (0: none). held says that the connection itself holds a deadline, one applied at once
// or by the keeper; it changes only under mu, and whoever sets a new deadline while it
// holds one lifts it. The keeper sets held before it takes at, so a deadline set while
// the keeper applies an older one always sees held and lifts what the keeper applied.
type lazyDeadline struct {
	at   atomic.Int64
	held atomic.Bool
	mu   sync.Mutex
}

func (d *lazyDeadline) isDue(now int64) bool {
	at := d.at.Load()
	return at != 0 && at <= now
}

// SetReadDeadline sets the read deadline; see deadlineListener.
func (c *deadlineConn) SetReadDeadline(t time.Time) error { return c.set(&c.read, false, t) }

// SetWriteDeadline sets the write deadline; see deadlineListener.
func (c *deadlineConn) SetWriteDeadline(t time.Time) error { return c.set(&c.write, true, t) }

// SetDeadline sets both deadlines.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	return errors.Join(c.set(&c.read, false, t), c.set(&c.write, true, t))
}

// Close closes the connection and forgets its deadlines.
func (c *deadlineConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// CloseWrite shuts down the writing side, as net/http does before closing a connection
// whose request body it did not read (the TCP connection's own method).
func (c *deadlineConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the TCP connection's own ReadFrom (sendfile, splice), which net/http
// uses when a handler copies a file into the answer.
func (c *deadlineConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

func (c *deadlineConn) set(d *lazyDeadline, write bool, t time.Time) error {
	var at int64
	if !t.IsZero() {
		at = c.l.since(t)
		if at <= c.l.now.Load()+2*int64(c.l.tick) { // due, or nearly: the connection's own timer
			d.mu.Lock()
			defer d.mu.Unlock()
			d.at.Store(0)
			d.held.Store(true)
			return c.apply(write, t)
		}
	}
	d.at.Store(at)
	if !d.held.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Unless the keeper took this very deadline as due meanwhile, or another goroutine
	// set a newer one, lift the deadline the connection holds.
	if d.held.Load() && d.at.Load() == at {
		d.held.Store(false)
		return c.apply(write, time.Time{})
	}
	return nil
}

// expire applies d's deadline to the connection if it is due at now.
func (c *deadlineConn) expire(d *lazyDeadline, write bool, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	at := d.at.Load()
	if at == 0 || at > now {
		return
	}
	wasHeld := d.held.Load()
	d.held.Store(true) // before taking at: see lazyDeadline
	if !d.at.CompareAndSwap(at, 0) {
		d.held.Store(wasHeld) // a new deadline came first
		return
	}
	_ = c.apply(write, c.l.base.Add(time.Duration(at)))
}

func (c *deadlineConn) apply(write bool, t time.Time) error {
	if write {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
}
