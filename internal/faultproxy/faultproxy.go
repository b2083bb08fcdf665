// Package faultproxy is a TCP proxy on loopback for tests that need a store connection
// to break or stall without touching the store itself (the test servers are shared):
// Cut drops every proxied connection, Pause holds new and existing traffic, Resume lets
// it flow again.
package faultproxy

import (
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Proxy forwards connections from its own loopback address to a target. It is safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	paused bool
	resume *sync.Cond
	closed bool
}

// New starts a proxy to target (host:port) and stops it when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.resume = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host and Port return the two parts of Addr.
func (p *Proxy) Host() string { h, _, _ := net.SplitHostPort(p.Addr()); return h }

// Port returns the proxy's port.
func (p *Proxy) Port() string { _, port, _ := net.SplitHostPort(p.Addr()); return port }

// Cut closes every connection through the proxy; new ones are accepted as before.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Pause stops forwarding bytes in both directions (connections stay open, as on a stalled
// network or a server that does not answer) until Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// Resume undoes Pause.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.resume.Broadcast()
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.paused = false
	p.resume.Broadcast()
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Cut()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			return
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst, waiting while the proxy is paused.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused {
				p.resume.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a closed connection: either way this direction is done
			return
		}
	}
}

// PostgresDSN starts a proxy to the server a lib/pq DSN names (a URL or key=value pairs;
// host and port default to localhost:5432) and returns the DSN pointed at the proxy.
func PostgresDSN(t testing.TB, dsn string) (string, *Proxy) {
	t.Helper()
	host, port := "localhost", "5432"
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("faultproxy: DSN: %v", err)
		}
		if h := u.Hostname(); h != "" {
			host = h
		}
		if p := u.Port(); p != "" {
			port = p
		}
		p := New(t, net.JoinHostPort(host, port))
		u.Host = p.Addr()
		return u.String(), p
	}
	for _, kv := range strings.Fields(dsn) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "host":
			host = v
		case "port":
			port = v
		}
	}
	p := New(t, net.JoinHostPort(host, port))
	return dsn + " host=" + p.Host() + " port=" + p.Port(), p // later settings win in lib/pq
}
