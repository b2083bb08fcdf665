// Package apikey issues, verifies and rate-limits API keys, and enforces them with
// net/http middleware.
//
// A plain key is "<id>.<secret>": the ID is an EcoID of type api, the secret is 256
// random bits in base62 followed by a checksum, so Parse rejects typos and garbage
// before any lookup. The plain key is returned once, by Service.Create and
// Service.Rotate; only its SHA-256 is stored. Service.Verify checks a presented key
// through an in-process cache, so a verified key costs no store round trip.
//
// The middleware chain for a protected route is Authenticate, then RequireScopes and
// RateLimit, in any order after Authenticate. Limiter is implemented in process by
// storage/memory, in PostgreSQL by storage/postgres and in Redis by storage/redis; all
// three run the same GCRA and give the same answers on the same sequence of requests.
package apikey

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Status is the state of a key.
type Status string

// The states of a key. A revoked key never verifies again.
const (
	Active  Status = "active"
	Revoked Status = "revoked"
)

// Key is what a caller may know about a key: everything but its secret and hash.
// Times are UTC with microsecond precision; zero LastUsedAt, ExpiresAt and RotatedAt
// mean never.
type Key struct {
	ID                 ecoid.ID  `json:"id"`
	Owner              ecoid.ID  `json:"owner"`
	Name               string    `json:"name"`
	Scopes             []string  `json:"scopes"`
	Status             Status    `json:"status"`
	RateLimitPerMinute int       `json:"rate_limit_per_minute"`
	CreatedAt          time.Time `json:"created_at"`
	LastUsedAt         time.Time `json:"last_used_at,omitzero"`
	ExpiresAt          time.Time `json:"expires_at,omitzero"`
	RotatedAt          time.Time `json:"rotated_at,omitzero"`
}

// HasScope reports whether the key carries scope.
func (k *Key) HasScope(scope string) bool {
	return slices.Contains(k.Scopes, scope)
}

// Record is a key as the store holds it: the metadata and the hash of its plain key.
// During a rotation grace period, PrevHash also verifies until PrevValidUntil.
type Record struct {
	Key
	Hash           Hash
	PrevHash       Hash      // zero: none
	PrevValidUntil time.Time // zero: none
}

// Use says that a key was used at a time; the service reports uses to the store in
// batches.
type Use struct {
	ID ecoid.ID
	At time.Time
}

// Errors of the service and the store; match them with errors.Is.
var (
	// ErrNotFound: no such key, or a key of another owner.
	ErrNotFound = errors.New("apikey: key not found")
	// ErrConflict: a key with this ID exists already.
	ErrConflict = errors.New("apikey: key exists already")
	// ErrRevoked: the key has been revoked.
	ErrRevoked = errors.New("apikey: key revoked")
	// ErrExpired: the key is past its expiry time.
	ErrExpired = errors.New("apikey: key expired")
	// ErrInvalidKey: the key is well-formed but unknown, or its secret is wrong.
	ErrInvalidKey = errors.New("apikey: invalid key")
	// ErrInvalidInput wraps every error about bad arguments to Create, Rotate and
	// ListPage (an *InputError says which argument).
	ErrInvalidInput = errors.New("apikey: invalid input")
	// ErrInvalidExpiry: CreateParams.ExpiresAt is not in the future, or further ahead
	// than MaxKeyLifetime. It comes inside an *InputError for "expires_at".
	ErrInvalidExpiry = errors.New("apikey: expiry must be in the future and at most 100 years ahead")
	// ErrTooManyKeys: the owner holds Config.MaxKeysPerOwner live keys already.
	ErrTooManyKeys = errors.New("apikey: too many keys")
	// ErrClosed: the service has been closed.
	ErrClosed = errors.New("apikey: service closed")
)

// Store keeps keys. Implementations: storage/memory.NewKeyStore and
// storage/postgres.NewKeyStore; storage/storagetest holds the behaviours they share.
// All methods are safe for concurrent use. Other errors are system errors.
type Store interface {
	// Create stores a new key. It returns ErrConflict when the ID exists. When maxLive
	// is positive and the owner already holds maxLive live keys (active, and without an
	// expiry or expiring after r.CreatedAt), it returns ErrTooManyKeys and stores
	// nothing. The count and the insert are one atomic step: concurrent Creates for one
	// owner never leave more than maxLive live keys. maxLive <= 0 means no cap.
	Create(ctx context.Context, r Record, maxLive int) error
	// Get returns the key with this ID, of any owner, or ErrNotFound.
	Get(ctx context.Context, id ecoid.ID) (Record, error)
	// List returns the owner's keys, oldest first (by created_at, then ID): those after
	// the owner's key after (the zero ID: from the first), at most limit of them
	// (limit <= 0: all). An owner with none gets an empty slice and no error; an after
	// that is not one of the owner's keys is ErrNotFound.
	List(ctx context.Context, owner, after ecoid.ID, limit int) ([]Key, error)
	// Revoke marks the owner's key revoked at the given time. It returns ErrNotFound
	// when the key does not exist or belongs to another owner; revoking a revoked key
	// changes nothing and returns nil.
	Revoke(ctx context.Context, owner, id ecoid.ID, at time.Time) error
	// Rotate replaces the hash of the owner's active key with hash and sets rotated_at.
	// When prevValidUntil is after at, the hash being replaced stays valid until then
	// (PrevHash, PrevValidUntil); otherwise any previous hash is cleared. It returns
	// ErrNotFound as Revoke does, and ErrRevoked for a revoked key.
	Rotate(ctx context.Context, owner, id ecoid.ID, hash Hash, prevValidUntil, at time.Time) error
	// MarkUsed sets last_used_at of each key to the given time unless it is later
	// already. Unknown IDs are ignored. An ID may appear more than once.
	MarkUsed(ctx context.Context, uses []Use) error
}
