// Package redis implements the apikey.Limiter in Redis, for services that run several
// instances. It uses github.com/redis/go-redis/v9; any client works, including a cluster
// client: each decision touches one key, hash-tagged by subject.
package redis

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/apikey"
)

//go:embed gcra.lua
var gcraLua string

var gcra = goredis.NewScript(gcraLua)

// DefaultPrefix starts every key the limiter writes.
const DefaultPrefix = "nexus:rl:"

// Limiter is an apikey.Limiter in Redis. Each decision is one round trip: a Lua script
// (sent by its SHA, loaded on first use) that runs apikey.GCRA.Step atomically on a hash
// holding the subject's theoretical arrival time and the latest time seen. Time comes
// from the Redis server's TIME, so application clocks cannot skew it, unless WithClock
// says otherwise. A key expires once its subject is idle, so memory follows the number
// of active subjects. It is safe for concurrent use.
type Limiter struct {
	client goredis.Scripter
	prefix string
	now    func() time.Time // nil: the server's TIME
}

var _ apikey.Limiter = (*Limiter)(nil)

// Option configures NewLimiter.
type Option func(*Limiter)

// WithPrefix sets the prefix of the limiter's keys (default DefaultPrefix).
func WithPrefix(prefix string) Option { return func(l *Limiter) { l.prefix = prefix } }

// WithClock makes the limiter pass now to the script instead of reading the server's
// TIME (for tests with a fake clock).
func WithClock(now func() time.Time) Option { return func(l *Limiter) { l.now = now } }

// NewLimiter returns a Limiter that talks to Redis through client (a *redis.Client,
// *redis.ClusterClient or *redis.Ring).
func NewLimiter(client goredis.Scripter, opts ...Option) *Limiter {
	l := &Limiter{client: client, prefix: DefaultPrefix}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Key returns the Redis key that holds the state of (policy, subject): the prefix, the
// policy and the subject in a hash tag, so Redis Cluster places it by subject.
func (l *Limiter) Key(policy, subject string) string {
	return l.prefix + policy + ":{" + subject + "}"
}

// Allow implements apikey.Limiter. It returns apikey.ErrInvalidLimit for an unusable
// limit, and Redis's error when the script fails.
func (l *Limiter) Allow(ctx context.Context, key string, limit apikey.Limit) (apikey.Decision, error) {
	g, err := limit.GCRA()
	if err != nil {
		return apikey.Decision{}, err
	}
	now := ""
	if l.now != nil {
		now = strconv.FormatInt(l.now().UnixMicro(), 10)
	}
	res, err := gcra.Run(ctx, l.client, []string{l.Key(limit.Policy(), key)}, g.Interval, g.Burst, now).Int64Slice()
	if err != nil {
		return apikey.Decision{}, fmt.Errorf("redis: rate limit: %w", err)
	}
	if len(res) != 3 {
		return apikey.Decision{}, fmt.Errorf("redis: rate limit: the script answered %d values, want 3", len(res))
	}
	return g.Decision(res[0] == 1, res[1], res[2]), nil
}
