package usage

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"
)

// ErrRetriable marks a transient store failure: a store wraps it (with Retriable or
// fmt.Errorf("…: %w", ErrRetriable)) to tell the Tracker that sending the same batch
// again may succeed. Adapters classify their technology's errors (a database's error
// codes, say) and wrap this sentinel; the Tracker only asks errors.Is.
var ErrRetriable = errors.New("usage: retriable store error")

// Retriable wraps err so that IsRetriable reports true for it and errors.Is(err,
// ErrRetriable) holds, while errors.Is and errors.As still reach err. Retriable(nil) is
// nil.
func Retriable(err error) error {
	if err == nil {
		return nil
	}
	return retriableError{err}
}

type retriableError struct{ err error }

func (e retriableError) Error() string   { return e.err.Error() }
func (e retriableError) Unwrap() []error { return []error{e.err, ErrRetriable} }

// IsRetriable is the Tracker's default test for a transient store error. It reports true
// for errors wrapping ErrRetriable (how a store says so), timeouts
// (context.DeadlineExceeded, a net.Error whose Timeout is true) and the standard
// library's network errors (*net.OpError, connection refused or reset, broken pipe,
// unexpected EOF, driver.ErrBadConn). Anything else, and context.Canceled, is not
// retriable.
func IsRetriable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, ErrRetriable) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op)
}
