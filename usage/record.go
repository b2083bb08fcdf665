// Package usage records every API request in batches, counts calls per user and month for
// quotas, and answers analytics questions about them.
//
// A Tracker takes Records without blocking or allocating and writes them to a Store in
// batches, retrying transient store errors; Middleware feeds a Tracker from net/http. A
// Quota enforces a monthly call limit per user with an exact counter (a Counter), and the
// Store's read methods answer history, per-endpoint and period questions: from a daily
// rollup for closed days, which RunMaintenance keeps up to date, and from the detailed log
// for the rest.
//
// usage knows nothing about API keys or users beyond their EcoIDs: the caller passes small
// functions that find them in a request. All types are safe for concurrent use.
package usage

import (
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Record is one API request.
type Record struct {
	// ID identifies the record; stores ignore a record whose ID they already hold, so a
	// batch sent twice stores its rows once. The Tracker assigns an EcoID of type
	// ecoid.Usage to a record tracked without one.
	ID       ecoid.ID
	KeyID    ecoid.ID      // the API key that made the request
	UserID   ecoid.ID      // the key's owner
	Endpoint string        // the route pattern, such as "/api/v1/ping", never the raw path
	Method   string        // the HTTP method
	Status   int           // the response status
	Latency  time.Duration // from the request's arrival to the end of its handler
	Bytes    int64         // response body bytes written
	Time     time.Time     // when the request arrived
}

// ErrInvalidRecord is wrapped by the error Validate returns and by store errors that
// refuse a batch because of a record's content.
var ErrInvalidRecord = errors.New("usage: invalid record")

// Limits on a Record's text fields, which the stores enforce.
const (
	MaxEndpointLen = 256
	MaxMethodLen   = 16
)

// IsError reports whether a response status counts as an error in analytics: every
// status of 400 and above.
func IsError(status int) bool { return status >= 400 }

// Validate reports what makes r unfit to store, as an error wrapping ErrInvalidRecord:
// an ID that is not an EcoID of type ecoid.Usage, a user ID that is not an EcoID, a key
// ID that is neither empty nor an EcoID, an empty or too long endpoint or method, a
// status outside 100..999, a negative latency or size, or a zero time.
func (r *Record) Validate() error {
	bad := func(why string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(why, args...))
	}
	switch {
	case r.ID.Type() != ecoid.Usage: // "" when r.ID is not an EcoID
		return bad("ID %q is not a usage EcoID", r.ID)
	case !r.UserID.Valid():
		return bad("user ID %q is not an EcoID", r.UserID)
	case r.KeyID != "" && !r.KeyID.Valid():
		return bad("key ID %q is not an EcoID", r.KeyID)
	case r.Endpoint == "" || len(r.Endpoint) > MaxEndpointLen:
		return bad("endpoint must be 1..%d bytes", MaxEndpointLen)
	case r.Method == "" || len(r.Method) > MaxMethodLen:
		return bad("method must be 1..%d bytes", MaxMethodLen)
	case r.Status < 100 || r.Status > 999:
		return bad("status %d is outside 100..999", r.Status)
	case r.Latency < 0:
		return bad("negative latency")
	case r.Bytes < 0:
		return bad("negative size")
	case r.Time.IsZero():
		return bad("zero time")
	}
	return nil
}

// PeriodStart returns the first instant of the calendar month (UTC) that holds t: the
// identifier of a quota period.
func PeriodStart(t time.Time) time.Time {
	y, m, _ := t.UTC().Date() // one calendar computation: Year and Month would make two
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// PeriodEnd returns the first instant of the month after the one that holds t: the
// exclusive end of t's quota period.
func PeriodEnd(t time.Time) time.Time {
	return PeriodStart(t).AddDate(0, 1, 0)
}

// DayStart returns the first instant of the UTC day that holds t.
func DayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
