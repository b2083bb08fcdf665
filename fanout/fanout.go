// Package fanout tells every instance of a service what one instance changed, so that
// each can drop what it caches: a Bus carries small typed events (a key changed, a plan
// changed, a session was revoked) to every subscriber on every instance.
//
// Delivery is at most once and in no promised order: a connection can break and take
// events with it. What a Bus does promise is that a subscriber never misses events
// without knowing: whenever events may have been lost (the connection dropped, was
// re-established, went silent, or a message could not be read), every subscriber gets a
// Gap event, and must then drop everything the bus guards. Caches built this way are never
// stale without knowing it.
//
// Adapters: storage/memory (one process), storage/postgres (LISTEN/NOTIFY through lib/pq's
// pq.Listener) and storage/redis (pub/sub). storage/storagetest.RunFanout holds them to
// one contract.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Kind says what changed.
type Kind string

// The kinds of events.
const (
	// KeyChanged: the API key ID was revoked, rotated, expired or otherwise changed;
	// drop what is cached about it. User is its owner when known.
	KeyChanged Kind = "key"
	// PlanChanged: User's plan or subscription changed; drop its cached terms and quota
	// state.
	PlanChanged Kind = "plan"
	// SessionRevoked: the session ID of User was revoked (logout, logout everywhere,
	// refresh-token reuse); an empty ID means every session of User.
	SessionRevoked Kind = "session"
	// Gap is never published: a Bus delivers it to its subscribers when events may have
	// been lost. A subscriber drops everything the bus guards.
	Gap Kind = "gap"
)

// MaxFieldLen bounds Event.ID and Event.User, so an encoded event always fits a
// PostgreSQL NOTIFY payload (8,000 bytes) with room to spare.
const MaxFieldLen = 128

// Event is one change. ID and User are at most MaxFieldLen printable ASCII characters
// other than space and '|'; which of them is set depends on Kind.
type Event struct {
	Kind Kind
	ID   string
	User string
}

// ErrInvalidEvent is returned by Publish and Decode for an event that is not one of the
// publishable kinds or whose fields are too long or hold forbidden characters.
var ErrInvalidEvent = errors.New("fanout: invalid event")

// ErrClosed is returned by Publish on a closed bus.
var ErrClosed = errors.New("fanout: bus closed")

// Validate returns nil for a publishable event, or an error wrapping ErrInvalidEvent.
func (e Event) Validate() error {
	switch e.Kind {
	case KeyChanged, PlanChanged, SessionRevoked:
	default:
		return fmt.Errorf("%w: kind %q", ErrInvalidEvent, e.Kind)
	}
	if err := checkField("id", e.ID); err != nil {
		return err
	}
	if err := checkField("user", e.User); err != nil {
		return err
	}
	if e.ID == "" && e.User == "" {
		return fmt.Errorf("%w: neither id nor user", ErrInvalidEvent)
	}
	return nil
}

func checkField(name, v string) error {
	if len(v) > MaxFieldLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidEvent, name, MaxFieldLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '|' {
			return fmt.Errorf("%w: %s holds byte %#x", ErrInvalidEvent, name, c)
		}
	}
	return nil
}

// wireVersion starts every encoded event; an instance that meets another version (a
// newer release during a rolling deploy) reports a Gap rather than guess.
const wireVersion = "1"

// Encode returns the wire form of a publishable event: "1|kind|id|user".
func (e Event) Encode() (string, error) {
	if err := e.Validate(); err != nil {
		return "", err
	}
	return wireVersion + "|" + string(e.Kind) + "|" + e.ID + "|" + e.User, nil
}

// Decode parses the wire form that Encode returns. Anything else, including a valid
// event of a later wire version, gives an error wrapping ErrInvalidEvent; adapters turn it
// into a Gap, since an event they cannot read may be one that mattered.
func Decode(s string) (Event, error) {
	parts := strings.SplitN(s, "|", 5)
	if len(parts) != 4 || parts[0] != wireVersion {
		return Event{}, fmt.Errorf("%w: not a version %s event", ErrInvalidEvent, wireVersion)
	}
	e := Event{Kind: Kind(parts[1]), ID: parts[2], User: parts[3]}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// Bus publishes events to every subscriber of every instance that shares it, including
// the publishing instance's own. Implementations are safe for concurrent use.
type Bus interface {
	// Publish sends e to every subscriber. It returns ErrInvalidEvent for an event that
	// fails Validate (Gap included), ErrClosed after Close, or the transport's error;
	// nil means the transport accepted the event, not that anyone received it.
	Publish(ctx context.Context, e Event) error
	// Subscribe calls fn for every event received from now on, and with a Gap event
	// whenever events may have been lost. fn is called from one goroutine per bus, one
	// event at a time, so it should be quick (drop a cache entry, not a store call).
	// The returned function stops the calls; it may be called more than once.
	Subscribe(fn func(Event)) (unsubscribe func())
	// Close stops the bus and releases its connections. Subscribers get no more calls.
	Close() error
}

// Subscribers is the list of subscribers an adapter keeps: adapters embed or hold one and
// call Deliver for every event they receive. The zero value is an empty list, safe for
// concurrent use.
type Subscribers struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(Event)
}

// Add registers fn and returns the function that removes it.
func (s *Subscribers) Add(fn func(Event)) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fns == nil {
		s.fns = map[int]func(Event){}
	}
	id := s.next
	s.next++
	s.fns[id] = fn
	return func() {
		s.mu.Lock()
		delete(s.fns, id)
		s.mu.Unlock()
	}
}

// Deliver calls every subscriber with e, in the caller's goroutine, without holding a
// lock (so a subscriber may publish or subscribe).
func (s *Subscribers) Deliver(e Event) {
	s.mu.RLock()
	fns := make([]func(Event), 0, len(s.fns))
	for _, fn := range s.fns {
		fns = append(fns, fn)
	}
	s.mu.RUnlock()
	for _, fn := range fns {
		fn(e)
	}
}

// DeliverWire decodes a wire payload and delivers it, or delivers a Gap when it cannot be
// decoded.
func (s *Subscribers) DeliverWire(payload string) {
	e, err := Decode(payload)
	if err != nil {
		e = Event{Kind: Gap}
	}
	s.Deliver(e)
}
