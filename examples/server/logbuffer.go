package main

import (
	"io"
	"sync"
	"time"
)

// logBuffer batches the server's log lines into few writes. The request log writes a line
// per request; written straight to stderr, each line is a write system call, and the
// reader of the pipe (a log shipper, a terminal) wakes once per line. At tens of thousands
// of requests a second that was the largest single cost of the server beside net/http's
// own reads and writes. logBuffer keeps lines in memory and writes them out together:
// within flushEvery of the first pending line, or at once when maxPending bytes wait, and
// on Close. Nothing is dropped: a writer that finds the buffer full writes it out itself
// (so a slow reader slows the server, as it did unbuffered, rather than losing lines).
//
// What it costs: a process killed with SIGKILL loses the lines of its last flushEvery
// (50 ms); SIGINT and SIGTERM flush everything, and so does an exit through main's error
// path. Lines are never split or interleaved: each Write is appended whole.
type logBuffer struct {
	out        io.Writer
	flushEvery time.Duration
	maxPending int

	mu      sync.Mutex
	pending []byte
	spare   []byte
	timer   *time.Timer // armed while pending is not empty
	closed  bool

	outMu sync.Mutex // one write to out at a time, in order
	err   error      // the first error out returned (reported by Close)
}

// newLogBuffer returns a logBuffer over out that flushes within 50 ms or at 64 KiB.
func newLogBuffer(out io.Writer) *logBuffer {
	return &logBuffer{out: out, flushEvery: 50 * time.Millisecond, maxPending: 64 << 10}
}

// Write appends p, whole, to the pending lines. It never fails: an error of the
// underlying writer is kept and reported by Close.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.outMu.Lock()
		defer b.outMu.Unlock()
		b.writeOut(p)
		return len(p), nil
	}
	b.pending = append(b.pending, p...)
	if len(b.pending) >= b.maxPending {
		b.flushLocked() // unlocks b.mu
		return len(p), nil
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.flushEvery, b.Flush)
	} else if len(b.pending) == len(p) {
		b.timer.Reset(b.flushEvery)
	}
	b.mu.Unlock()
	return len(p), nil
}

// Flush writes out every pending line.
func (b *logBuffer) Flush() {
	b.mu.Lock()
	b.flushLocked()
}

// flushLocked takes the pending lines, unlocks b.mu and writes them. Taking outMu before
// releasing mu keeps flushes in the order their lines were written.
func (b *logBuffer) flushLocked() {
	if len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	buf := b.pending
	b.pending, b.spare = b.spare[:0], nil
	b.outMu.Lock()
	b.mu.Unlock()
	b.writeOut(buf)
	b.outMu.Unlock()
	b.mu.Lock()
	if b.spare == nil && cap(buf) <= 4*b.maxPending { // keep one buffer for reuse, not a huge one
		b.spare = buf[:0]
	}
	b.mu.Unlock()
}

// writeOut writes p to out; the caller holds outMu.
func (b *logBuffer) writeOut(p []byte) {
	if _, err := b.out.Write(p); err != nil && b.err == nil {
		b.err = err
	}
}

// Close flushes every pending line; later writes go straight to the underlying writer.
// It returns the first error the underlying writer returned, if any.
func (b *logBuffer) Close() error {
	b.mu.Lock()
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.flushLocked()
	b.outMu.Lock()
	defer b.outMu.Unlock()
	return b.err
}
