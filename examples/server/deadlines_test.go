package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// testTick is the keeper's tick in these tests: deadlines two ticks ahead are left to it.
const testTick = 5 * time.Millisecond

// deadlinePair returns the server side of a loopback connection accepted by a
// deadlineListener, and the client side.
func deadlinePair(t *testing.T) (*deadlineListener, *deadlineConn, net.Conn) {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newDeadlineListener(tcp, testTick)
	t.Cleanup(func() { _ = l.Close() })
	client, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return l, c.(*deadlineConn), client
}

// waitKeeperPast waits until the keeper has ticked at or after t, and once more.
func waitKeeperPast(l *deadlineListener, t time.Time) {
	for l.now.Load() < l.since(t) {
		time.Sleep(testTick)
	}
	seen := l.now.Load()
	for l.now.Load() == seen {
		time.Sleep(testTick)
	}
}

func TestDeadlineListenerDistantDeadlineFires(t *testing.T) {
	_, c, _ := deadlinePair(t)
	if err := c.SetReadDeadline(time.Now().Add(20 * testTick)); err != nil {
		t.Fatal(err)
	}
	if c.read.at.Load() == 0 {
		t.Fatal("a deadline twenty ticks ahead went to the connection's own timer, not to the keeper")
	}
	_, err := c.Read(make([]byte, 1)) // the client sends nothing
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want the deadline exceeded", err)
	}
}

func TestDeadlineListenerDistantWriteDeadlineFires(t *testing.T) {
	_, c, _ := deadlinePair(t)
	if err := c.SetWriteDeadline(time.Now().Add(20 * testTick)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var err error
	for err == nil { // the client reads nothing: the socket buffers fill and Write blocks
		_, err = c.Write(buf)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write = %v, want the deadline exceeded", err)
	}
}

// net/http cancels a pending background read with a deadline in the past, then clears
// it and reads on: both must act at once.
func TestDeadlineListenerPastDeadlineActsAtOnce(t *testing.T) {
	_, c, client := deadlinePair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(testTick) // let the read block (if it has not, it fails at once all the same)
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blocked Read = %v, want the deadline exceeded", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
		t.Fatalf("Read after clearing the deadline = %q, %v", b, err)
	}
}

// A deadline moved later, or cleared, before it came due never fires, even once the
// keeper's clock has passed it.
func TestDeadlineListenerMovedDeadlineDoesNotFire(t *testing.T) {
	for _, next := range []time.Time{time.Now().Add(time.Hour), {}} {
		l, c, client := deadlinePair(t)
		first := time.Now().Add(4 * testTick)
		_ = c.SetReadDeadline(first)
		_ = c.SetWriteDeadline(first)
		_ = c.SetReadDeadline(next)
		_ = c.SetWriteDeadline(next)
		waitKeeperPast(l, first)
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("deadline moved to %v: Read = %v", next, err)
		}
		if _, err := c.Write([]byte("y")); err != nil {
			t.Fatalf("deadline moved to %v: Write = %v", next, err)
		}
	}
}

// A deadline the keeper applied is lifted by the next one set, as on a plain connection.
func TestDeadlineListenerExpiredDeadlineIsLiftedByTheNext(t *testing.T) {
	l, c, client := deadlinePair(t)
	first := time.Now().Add(4 * testTick)
	_ = c.SetReadDeadline(first)
	waitKeeperPast(l, first)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Hour))
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("Read after a new deadline = %v", err)
	}
}

// A deadline kept moving ahead while a read waits never fires: the keeper and the
// connection's own changes do not race into a spurious timeout.
func TestDeadlineListenerKeptMovingDeadline(t *testing.T) {
	_, c, client := deadlinePair(t)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, make([]byte, 1))
		done <- err
	}()
	for range 100 {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		time.Sleep(testTick / 5)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Read = %v", err)
	}
}

// Through net/http: a client that never finishes its request header is cut off by
// ReadHeaderTimeout, and a well-behaved one is served, on the same listener.
func TestDeadlineListenerHoldsServerTimeouts(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newDeadlineListener(tcp, testTick)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 20 * testTick, ReadTimeout: 40 * testTick, WriteTimeout: 40 * testTick, IdleTimeout: 40 * testTick,
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	slow, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil { // and never the blank line
		t.Fatal(err)
	}

	for range 3 { // several requests on one kept-alive connection
		resp, err := http.Get("http://" + tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("body %q", body)
		}
	}

	line, err := bufio.NewReader(slow).ReadString('\n')
	if err == nil {
		t.Fatalf("the server answered an unfinished header: %q", line)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the client timed out instead of the server") // no client deadline is set
	}
}

// A file copied into an answer goes through the TCP connection's own ReadFrom.
func TestDeadlineListenerServesFiles(t *testing.T) {
	path := t.TempDir() + "/f"
	want := strings.Repeat("nexus ", 100_000)
	if err := os.WriteFile(path, []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })}
	go func() { _ = srv.Serve(newDeadlineListener(tcp, testTick)) }()
	defer srv.Close()
	resp, err := http.Get("http://" + tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != want {
		t.Fatalf("%d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	if _, ok := any(&deadlineConn{}).(io.ReaderFrom); !ok {
		t.Fatal("deadlineConn hides ReadFrom")
	}
}

// gateListener's Accept returns a connection only when the test releases it, even after
// Close: a real listener whose Accept had already taken a connection from the kernel
// when Shutdown closed it.
type gateListener struct {
	net.Listener
	gate chan net.Conn
}

func (g gateListener) Accept() (net.Conn, error) { return <-g.gate, nil }
func (gateListener) Close() error                { return nil }

// A connection that arrives once the keeper has left (the listener closed with no
// connection open) is refused, not handed out with deadlines nobody keeps.
func TestDeadlineListenerRefusesConnectionsAfterItsKeeper(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	g := gateListener{Listener: tcp, gate: make(chan net.Conn)}
	l := newDeadlineListener(g, testTick)
	type accepted struct {
		c   net.Conn
		err error
	}
	got := make(chan accepted)
	go func() { c, err := l.Accept(); got <- accepted{c, err} }() // inside the inner Accept
	_ = l.Close()
	<-l.done // no connection in the map: the keeper has returned
	server, client := net.Pipe()
	defer client.Close()
	g.gate <- server
	a := <-got
	if a.c != nil || !errors.Is(a.err, net.ErrClosed) {
		t.Fatalf("Accept after the keeper left = %v, %v; want net.ErrClosed", a.c, a.err)
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused connection is still open")
	}
}

// Deadlines are kept on the monotonic clock, as the runtime keeps them: a deadline given
// as a wall-clock time without a monotonic reading still lands where it should.
func TestDeadlineListenerKeepsMonotonicTime(t *testing.T) {
	l, c, _ := deadlinePair(t)
	if got := l.since(l.base.Add(time.Hour)); got != int64(time.Hour) {
		t.Fatalf("an hour after base is kept as %v", time.Duration(got))
	}
	wall := time.Now().Add(20 * testTick).Round(0) // Round(0) strips the monotonic reading
	if err := c.SetReadDeadline(wall); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want the deadline exceeded", err)
	}
}

// The keeper stops once the listener and its last connection are closed.
func TestDeadlineListenerKeeperStops(t *testing.T) {
	l, c, _ := deadlinePair(t)
	_ = l.Close()
	select {
	case <-l.done:
		t.Fatal("the keeper stopped while a connection was open")
	case <-time.After(4 * testTick):
	}
	_ = c.Close()
	<-l.done
}
