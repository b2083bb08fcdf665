package redis

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/auth"
)

//go:embed throttle_reserve.lua
var throttleReserveLua string

var (
	throttleReserve = goredis.NewScript(throttleReserveLua)
	// Release: one less attempt, only in the window that opened at ARGV[1].
	throttleRelease = goredis.NewScript(`
local st = redis.call('HMGET', KEYS[1], 'c', 's')
if st[2] == ARGV[1] and (tonumber(st[1]) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'c', -1)
end
return 0`)
	throttleReset = goredis.NewScript(`return redis.call('DEL', KEYS[1])`)
)

// DefaultThrottlePrefix starts every key a ThrottleStore writes.
const DefaultThrottlePrefix = "nexus:throttle:"

// ThrottleStore is the auth.ThrottleStore in Redis, shared by every instance of a
// service, so login failures spread over instances are throttled together. Each call is
// one round trip: a Lua script (sent by its SHA, loaded on first use) that runs
// auth.AttemptLimit.Reserve atomically on a hash holding the count and the window's
// start. A counter expires when its window closes, so memory follows the number of
// recently attacked accounts. Keys are stored as the prefix and the base64url SHA-256
// of the counter's key, so Redis holds no emails or addresses. It is safe for concurrent
// use.
type ThrottleStore struct {
	client goredis.Scripter
	prefix string
}

var _ auth.ThrottleStore = (*ThrottleStore)(nil)

// NewThrottleStore returns a ThrottleStore that talks to Redis through client (a
// *redis.Client, *redis.ClusterClient or *redis.Ring) and starts its keys with prefix
// ("" means DefaultThrottlePrefix).
func NewThrottleStore(client goredis.Scripter, prefix string) *ThrottleStore {
	if prefix == "" {
		prefix = DefaultThrottlePrefix
	}
	return &ThrottleStore{client: client, prefix: prefix}
}

// Key returns the Redis key that holds the counter of key.
func (s *ThrottleStore) Key(key string) string {
	h := sha256.Sum256([]byte(key))
	return s.prefix + base64.RawURLEncoding.EncodeToString(h[:])
}

// Reserve implements auth.ThrottleStore.
func (s *ThrottleStore) Reserve(ctx context.Context, key string, limit auth.AttemptLimit, now time.Time) (auth.Reservation, error) {
	if !limit.Valid() {
		return auth.Reservation{}, auth.ErrInvalidAttemptLimit
	}
	nowUS, window := now.UnixMicro(), limit.Window.Microseconds()
	res, err := throttleReserve.Run(ctx, s.client, []string{s.Key(key)}, nowUS, window, limit.Max).Slice()
	if err != nil {
		return auth.Reservation{}, fmt.Errorf("redis: throttle reserve: %w", err)
	}
	if len(res) != 3 {
		return auth.Reservation{}, fmt.Errorf("redis: throttle reserve: the script answered %d values, want 3", len(res))
	}
	ok, _ := res[0].(int64)
	count, _ := res[1].(int64)
	str, _ := res[2].(string)
	startUS, err := strconv.ParseInt(str, 10, 64)
	if err != nil {
		return auth.Reservation{}, fmt.Errorf("redis: throttle reserve: bad window start %q", str)
	}
	r := auth.Reservation{OK: ok == 1, Count: int(count), Start: time.UnixMicro(startUS).UTC()}
	if !r.OK {
		r.RetryAfter = time.Duration(min(startUS+window-nowUS, window)) * time.Microsecond
	}
	return r, nil
}

// Release implements auth.ThrottleStore.
func (s *ThrottleStore) Release(ctx context.Context, key string, start time.Time) error {
	err := throttleRelease.Run(ctx, s.client, []string{s.Key(key)}, strconv.FormatInt(start.UnixMicro(), 10)).Err()
	if err != nil {
		return fmt.Errorf("redis: throttle release: %w", err)
	}
	return nil
}

// Reset implements auth.ThrottleStore.
func (s *ThrottleStore) Reset(ctx context.Context, key string) error {
	if err := throttleReset.Run(ctx, s.client, []string{s.Key(key)}).Err(); err != nil {
		return fmt.Errorf("redis: throttle reset: %w", err)
	}
	return nil
}
