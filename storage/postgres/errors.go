package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/usage"
)

// transientSQLState reports whether a PostgreSQL SQLSTATE names a failure that may pass
// when the statement is sent again: class 08 (connection exception), 40001
// (serialization failure), 40P01 (deadlock), 53300 (too many connections), 55P03 (lock
// not available) and 57P01..57P03 (the server shutting down or starting).
func transientSQLState(code string) bool {
	switch code {
	case "40001", "40P01", "53300", "57P01", "57P02", "57P03", "55P03":
		return true
	}
	return strings.HasPrefix(code, "08")
}

// transient reports whether err is a transient failure: one the usage package already
// deems retriable (timeouts, network errors), or a PostgreSQL error with a transient
// SQLSTATE (lib/pq's *pq.Error, or any error with a SQLState method, as pgx's has).
func transient(err error) bool {
	if err == nil {
		return false
	}
	if usage.IsRetriable(err) {
		return true
	}
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		return transientSQLState(state.SQLState())
	}
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && transientSQLState(string(pqErr.Code))
}

// classify wraps a driver error for the usage Tracker: transient ones wrap
// usage.ErrRetriable, data and constraint violations (SQLSTATE classes 22 and 23) wrap
// usage.ErrInvalidRecord.
func classify(op string, err error) error {
	if transient(err) {
		return usage.Retriable(fmt.Errorf("postgres: %s: %w", op, err))
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code.Class() {
		case "22", "23":
			return fmt.Errorf("postgres: %s: %w: %w", op, usage.ErrInvalidRecord, err)
		}
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}
