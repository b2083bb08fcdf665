package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/httpjson"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/postgres"
	nexusredis "github.com/nexus-ecosystem/nexus/storage/redis"
)

// keyState is the part of app that serves API keys and their rate limits.
type keyState struct {
	keys        *apikey.Service
	limiter     apikey.Limiter
	limiterName string          // "memory", "postgres" or "redis", for the start-up log
	redis       *goredis.Client // nil unless -redis
	stopSweep   chan struct{}   // stops the Postgres limiter's sweeper; nil otherwise
	sweepDone   chan struct{}
}

// initKeys builds the key service over the chosen store and picks the limiter: Redis
// with -redis, else PostgreSQL with -postgres, else in process.
func (a *app) initKeys(ctx context.Context) error {
	var store apikey.Store = memory.NewKeyStore()
	if a.db != nil {
		store = postgres.NewKeyStore(a.db)
	}
	switch {
	case a.cfg.RedisAddr != "":
		client := goredis.NewClient(&goredis.Options{Addr: a.cfg.RedisAddr})
		pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := client.Ping(pingCtx).Err(); err != nil {
			_ = client.Close()
			return fmt.Errorf("redis %s: %w", a.cfg.RedisAddr, err)
		}
		a.redis, a.limiter, a.limiterName = client, nexusredis.NewLimiter(client), "redis"
	case a.db != nil:
		pl := postgres.NewLimiter(a.db)
		a.limiter, a.limiterName = pl, "postgres"
		a.stopSweep, a.sweepDone = make(chan struct{}), make(chan struct{})
		go a.sweepLimits(pl, 10*time.Minute)
	default:
		a.limiter, a.limiterName = memory.NewLimiter(), "memory"
	}
	a.keys = apikey.NewService(store, apikey.Config{Logger: a.log})
	return nil
}

// sweepLimits deletes idle rate-limit rows now and then, until shutdown.
func (a *app) sweepLimits(l *postgres.Limiter, every time.Duration) {
	defer close(a.sweepDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := l.Sweep(ctx); err != nil {
				a.log.Warn("sweeping idle rate limits failed", "err", err)
			}
			cancel()
		case <-a.stopSweep:
			return
		}
	}
}

// shutdownKeys writes the buffered last_used_at times and stops the sweeper.
func (a *app) shutdownKeys(ctx context.Context) error {
	if a.stopSweep != nil {
		close(a.stopSweep)
		<-a.sweepDone
		a.stopSweep = nil
	}
	if a.keys == nil {
		return nil
	}
	return a.keys.Close(ctx)
}

// closeKeys stops the background work if shutdown did not run, and releases the Redis
// client.
func (a *app) closeKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.shutdownKeys(ctx)
	if a.redis != nil {
		_ = a.redis.Close()
	}
}

// keyRoutes registers /api/keys/* (for signed-in users) and the API-key routes.
func (a *app) keyRoutes(r *router) {
	r.handle("POST /api/keys/generate", a.requireUser(http.HandlerFunc(a.generateKey)))
	r.handle("GET /api/keys/list", a.requireUser(http.HandlerFunc(a.listKeys)))
	r.handle("POST /api/keys/revoke", a.requireUser(http.HandlerFunc(a.revokeKey)))
	r.handle("POST /api/keys/rotate", a.requireUser(http.HandlerFunc(a.rotateKey)))
	r.handle("GET /api/v1/ping", a.apiKeyRoute(http.HandlerFunc(a.apiPing), "read"))
}

// apiKeyRoute is the chain in front of every API-key route: authenticate the key →
// track usage (every authenticated request, whatever its status) → require the scopes
// (403 insufficient_scope, before any limit, so that it costs neither quota nor rate) →
// reserve a call of the owner's monthly quota (429 quota_exceeded) → the key's rate
// limit, whose refusal (or failure) gives the quota reservation back so that a refused
// request costs no quota → h.
func (a *app) apiKeyRoute(h http.Handler, scopes ...string) http.Handler {
	authenticate := apikey.Authenticate(a.keys, apikey.AuthOptions{Logger: a.log})
	rateLimit := apikey.RateLimit(a.limiter, apikey.RateLimitOptions{
		Logger: a.log,
		OnLimited: func(w http.ResponseWriter, r *http.Request, d apikey.Decision) {
			a.releaseQuota(r)
			apikey.WriteLimited(w, r, d)
		},
		OnError: func(w http.ResponseWriter, r *http.Request, err error) {
			a.releaseQuota(r)
			apikey.WriteLimiterError(w, r, err)
		},
	})
	return authenticate(a.meter(keyOf, apikey.RequireScopes(scopes...), rateLimit(h)))
}

// apiPing answers 200 {"ok":true,"key_id":…}.
func (a *app) apiPing(w http.ResponseWriter, r *http.Request) {
	k, _ := apikey.KeyFrom(r.Context())
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "key_id": k.ID})
}

type generateRequest struct {
	Name               string     `json:"name"`
	Scopes             []string   `json:"scopes"`
	RateLimitPerMinute *int       `json:"rate_limit_per_minute"` // absent: 60
	ExpiresAt          *time.Time `json:"expires_at"`            // optional, RFC 3339
}

type generatedKey struct {
	ID                 ecoid.ID  `json:"id"`
	Key                string    `json:"key"`
	Name               string    `json:"name"`
	Scopes             []string  `json:"scopes"`
	RateLimitPerMinute int       `json:"rate_limit_per_minute"`
	CreatedAt          time.Time `json:"created_at"`
	ExpiresAt          time.Time `json:"expires_at,omitzero"`
}

// generateKey: POST /api/keys/generate {name, scopes, rate_limit_per_minute} → 201 with
// the plain key, shown this once.
func (a *app) generateKey(w http.ResponseWriter, r *http.Request) {
	var req generateRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	p := apikey.CreateParams{Owner: currentUser(r), Name: req.Name, Scopes: req.Scopes}
	if req.RateLimitPerMinute != nil {
		if *req.RateLimitPerMinute < 1 || *req.RateLimitPerMinute > apikey.MaxRateLimitPerMinute {
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_rate_limit_per_minute",
				fmt.Sprintf("rate_limit_per_minute must be between 1 and %d", apikey.MaxRateLimitPerMinute))
			return
		}
		p.RateLimitPerMinute = *req.RateLimitPerMinute
	}
	if req.ExpiresAt != nil {
		p.ExpiresAt = *req.ExpiresAt
	}
	k, plain, err := a.keys.Create(r.Context(), p)
	if err != nil {
		a.keyError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, generatedKey{
		ID: k.ID, Key: plain, Name: k.Name, Scopes: k.Scopes, RateLimitPerMinute: k.RateLimitPerMinute,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
	})
}

// listKeys: GET /api/keys/list → {keys:[…]}, never a secret or hash.
func (a *app) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := a.keys.List(r.Context(), currentUser(r))
	if err != nil {
		a.keyError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"keys": keys})
}

type keyIDRequest struct {
	ID           string `json:"id"`
	GraceSeconds int    `json:"grace_seconds"` // rotate only: how long the old secret still works
}

// keyID decodes {"id":…}; it answers 400 and returns false when the body or the ID is bad.
func keyID(w http.ResponseWriter, r *http.Request) (keyIDRequest, ecoid.ID, bool) {
	var req keyIDRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteDecodeError(w, err)
		return req, "", false
	}
	if req.ID == "" {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_id", "id is required")
		return req, "", false
	}
	id, err := ecoid.Parse(req.ID)
	if err != nil || id.Type() != ecoid.APIKey {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_id", "id is not an API key ID (eco_api_…)")
		return req, "", false
	}
	return req, id, true
}

// revokeKey: POST /api/keys/revoke {id} → 200; another user's key is 404.
func (a *app) revokeKey(w http.ResponseWriter, r *http.Request) {
	_, id, ok := keyID(w, r)
	if !ok {
		return
	}
	if err := a.keys.Revoke(r.Context(), currentUser(r), id); err != nil {
		a.keyError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"id": id, "status": apikey.Revoked})
}

// rotateKey: POST /api/keys/rotate {id} → 200 {id,key} with the same ID and a new secret;
// the old secret stops working at once (or after grace_seconds, at most 7 days).
func (a *app) rotateKey(w http.ResponseWriter, r *http.Request) {
	req, id, ok := keyID(w, r)
	if !ok {
		return
	}
	if req.GraceSeconds < 0 || req.GraceSeconds > 7*24*3600 {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_grace", "grace_seconds must be between 0 and 604800")
		return
	}
	plain, err := a.keys.Rotate(r.Context(), currentUser(r), id, time.Duration(req.GraceSeconds)*time.Second)
	if err != nil {
		a.keyError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"id": id, "key": plain})
}

// keyError maps the key service's errors to answers; anything unexpected is logged and
// answered 500 without detail.
func (a *app) keyError(w http.ResponseWriter, r *http.Request, err error) {
	var input *apikey.InputError
	switch {
	case errors.As(err, &input):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_"+input.Field, input.Field+" "+input.Message)
	case errors.Is(err, apikey.ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "key_not_found", "no such API key")
	case errors.Is(err, apikey.ErrRevoked):
		httpjson.WriteError(w, http.StatusConflict, "key_revoked", "the API key is revoked")
	default:
		a.log.Error("api key request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpjson.WriteError(w, http.StatusInternalServerError, "internal_error", "internal error")
	}
}
