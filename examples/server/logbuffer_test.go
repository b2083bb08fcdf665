package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingSink records every write it gets.
type countingSink struct {
	mu     sync.Mutex
	buf    strings.Builder
	writes int
	err    error
}

func (s *countingSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	s.buf.Write(p)
	return len(p), s.err
}

func (s *countingSink) snapshot() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String(), s.writes
}

func TestLogBufferLosesNoLineAndKeepsThemWhole(t *testing.T) {
	sink := &countingSink{}
	b := newLogBuffer(sink)
	b.maxPending = 1 << 10 // several flushes by size while the writers run
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(b, "{\"writer\":%d,\"line\":%d,\"pad\":%q}\n", w, i, strings.Repeat("x", i%50))
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	out, writes := sink.snapshot()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines out, want %d", len(got), writers*lines)
	}
	next := make([]int, writers) // each writer's lines arrive whole and in its order
	for _, l := range got {
		var w, i int
		if _, err := fmt.Sscanf(l, "{\"writer\":%d,\"line\":%d,", &w, &i); err != nil || i != next[w] || !strings.HasSuffix(l, `"}`) {
			t.Fatalf("line %q out of order or cut (want line %d of writer %d): %v", l, next[w], w, err)
		}
		next[w]++
	}
	if writes >= writers*lines/10 {
		t.Errorf("%d writes for %d lines: the lines were not batched", writes, writers*lines)
	}
}

func TestLogBufferFlushesWhenFullWithoutWaiting(t *testing.T) {
	sink := &countingSink{}
	b := newLogBuffer(sink)
	b.flushEvery = time.Hour
	b.maxPending = 100
	line := strings.Repeat("a", 59) + "\n"
	fmt.Fprint(b, line)
	if out, _ := sink.snapshot(); out != "" {
		t.Fatalf("a line under the limit was written at once: %q", out)
	}
	fmt.Fprint(b, line) // 120 bytes pending: over the limit
	if out, writes := sink.snapshot(); out != line+line || writes != 1 {
		t.Fatalf("over the limit: %d writes of %q, want both lines in one write", writes, out)
	}
	_ = b.Close()
}

func TestLogBufferFlushesOnItsOwn(t *testing.T) {
	sink := &countingSink{}
	b := newLogBuffer(sink)
	defer b.Close()
	b.flushEvery = time.Millisecond
	fmt.Fprint(b, "one\n")
	waitForOutput(t, sink, "one\n")
	fmt.Fprint(b, "two\n") // the timer is armed again for the next line
	waitForOutput(t, sink, "one\ntwo\n")
}

// waitForOutput waits until the sink holds want, for at most 10 s: a pending line must be
// written without Close.
func waitForOutput(t *testing.T, sink *countingSink, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := sink.snapshot()
		if out == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending lines never written without Close: have %q, want %q", out, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLogBufferAfterCloseWritesThroughAndReportsErrors(t *testing.T) {
	sink := &countingSink{err: errors.New("disk full")}
	b := newLogBuffer(sink)
	fmt.Fprint(b, "before\n")
	if err := b.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close = %v, want the sink's error", err)
	}
	fmt.Fprint(b, "after\n")
	if out, _ := sink.snapshot(); out != "before\nafter\n" {
		t.Fatalf("out %q", out)
	}
}
