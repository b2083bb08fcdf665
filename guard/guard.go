// Package guard protects an HTTP handler with an API key in one call: it authenticates
// the key, tracks the request, checks the key's scopes, and admits the request under the
// owner's monthly quota and the key's rate limit, all or nothing.
//
// The order is fixed, and each step only runs when the one before it let the request on:
//
//	authenticate (401) → track → scopes (403) → admission: quota and rate limit (429) → handler
//
// Tracking sits after authentication, so every request made with a valid key is recorded
// whatever its status (a 403 or a 429 too), and before the checks, so refusals are
// recorded. The scope check runs before the limits, so a 403 costs neither a call of the
// month nor a rate-limit slot. Admission is one decision (see Admission): a request that
// one limit refuses consumes none of the others.
package guard

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/internal/coarse"
	"github.com/nexus-ecosystem/nexus/usage"
)

// Config configures New. Keys and Admission are required; the zero value of every other
// field is its documented default.
type Config struct {
	// Keys verifies the key of each request (required); *apikey.Service is one. The key
	// is read from "Authorization: ApiKey <key>" (or "Bearer <key>").
	Keys apikey.Verifier
	// Admission decides the quota and the rate limit (required). NewLimits builds the
	// default one over a rate limiter, a usage counter and the plans' quotas.
	Admission Admission
	// Scopes the key must all carry; a key without one is answered 403
	// insufficient_scope before any limit is consulted. Default: none.
	Scopes []string
	// Tracker records every request that passed authentication, whatever its status.
	// Default nil: nothing is tracked.
	Tracker *usage.Tracker
	// Track tunes the tracking (endpoint name of unrouted requests, clock).
	Track usage.MiddlewareConfig
	// FailOpen serves requests whose admission failed (the limiter or the quota store
	// does not answer) instead of answering OnError. Default false: fail closed.
	FailOpen bool
	// OnAuthError answers a request whose key is missing or invalid. Default:
	// apikey.WriteAuthError (401, or 503 when the key store fails).
	OnAuthError func(w http.ResponseWriter, r *http.Request, err error)
	// OnRefused answers a request that a limit refused. The rate-limit headers (when the
	// rate limit was consulted) and, for a quota refusal, X-Quota-Limit,
	// X-Quota-Remaining and Retry-After are already set. Default: WriteRefused.
	OnRefused func(w http.ResponseWriter, r *http.Request, d Decision)
	// OnError answers a request whose admission failed when FailOpen is false. Default:
	// WriteError.
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives store and limiter failures, never a key. Default: discard.
	Logger *slog.Logger
}

// New returns middleware that protects a handler as the package documentation describes.
// Inside the handler, apikey.KeyFrom(r.Context()) returns the key. The middleware is safe
// for concurrent use. A Config without Keys or Admission is a programming error, and New
// panics, as http.Handle does for a nil handler.
func New(cfg Config) func(http.Handler) http.Handler {
	if cfg.Keys == nil || cfg.Admission == nil {
		panic("guard: Config needs Keys and Admission")
	}
	if cfg.OnRefused == nil {
		cfg.OnRefused = WriteRefused
	}
	if cfg.OnError == nil {
		cfg.OnError = WriteError
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	authenticate := apikey.Authenticate(cfg.Keys, apikey.AuthOptions{OnError: cfg.OnAuthError, Logger: cfg.Logger})
	var track func(http.Handler) http.Handler
	if cfg.Tracker != nil {
		track = usage.Middleware(cfg.Tracker, identify, cfg.Track)
	}
	scopes := append([]string(nil), cfg.Scopes...)
	clock := coarse.New(coarse.HotPathTick) // one for every route this chain protects
	return func(next http.Handler) http.Handler {
		var h http.Handler = &admit{cfg: &cfg, scopes: scopes, next: next, clock: clock}
		if track != nil {
			h = track(h)
		}
		return authenticate(h)
	}
}

// identify tells the usage tracker the key and its owner.
func identify(r *http.Request) (keyID, userID ecoid.ID, ok bool) {
	k, ok := apikey.KeyFrom(r.Context())
	return k.ID, k.Owner, ok
}

// admit is the scope check and the admission, after authentication and tracking.
type admit struct {
	cfg    *Config
	scopes []string
	next   http.Handler
	clock  *coarse.Clock // times handlers for the refund, to the tick: only "over a second" matters
}

func (a *admit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k, ok := apikey.KeyFrom(r.Context())
	if !ok { // only when the chain was built by hand without Authenticate
		apikey.WriteAuthError(w, r, apikey.ErrMissing)
		return
	}
	for _, sc := range a.scopes {
		if !k.HasScope(sc) {
			httpjson.WriteError(w, http.StatusForbidden, "insufficient_scope", "the API key lacks the scope "+strconv.Quote(sc))
			return
		}
	}
	d, err := a.cfg.Admission.Admit(r.Context(), k)
	if err != nil {
		a.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "guard: admission failed",
			slog.String("key_id", string(k.ID)), slog.String("err", err.Error()))
		if a.cfg.FailOpen {
			a.next.ServeHTTP(w, r)
			return
		}
		a.cfg.OnError(w, r, err)
		return
	}
	if d.Rate.Limit > 0 {
		apikey.SetHeaders(w.Header(), d.RateLimit, d.Rate)
	}
	if !d.Allowed {
		if d.Refused == QuotaExceeded {
			setQuotaHeaders(w.Header(), d.Quota)
		}
		a.cfg.OnRefused(w, r, d)
		return
	}
	rf, refunds := a.cfg.Admission.(Refunder)
	if !refunds {
		a.next.ServeHTTP(w, r)
		return
	}
	start := a.clock.Elapsed() // monotonic: a step of the system clock does not move it
	a.next.ServeHTTP(w, r)
	if undelivered(w, r, a.clock.Elapsed()-start) { // the client never received it: no quota
		rf.Refund(r.Context(), k, d)
	}
}

// undelivered reports whether the client cannot have received the answer of a handler
// that took took: its connection closed while the handler ran (the request's context is
// canceled) or, after a handler slow enough (over a second) for a write deadline to have
// passed, flushing the answer failed. A fast answer is not flushed here: the server
// writes it when the handler returns.
func undelivered(w http.ResponseWriter, r *http.Request, took time.Duration) bool {
	if r.Context().Err() != nil {
		return true
	}
	return took >= time.Second && http.NewResponseController(w).Flush() != nil
}

// setQuotaHeaders writes X-Quota-Limit, X-Quota-Remaining and Retry-After (the whole
// seconds until the period ends, at least 1) for a quota refusal.
func setQuotaHeaders(h http.Header, q QuotaState) {
	h.Set("X-Quota-Limit", strconv.FormatInt(q.Limit, 10))
	h.Set("X-Quota-Remaining", "0")
	h.Set("Retry-After", strconv.FormatInt(max(1, int64(q.RetryAfter.Seconds())), 10))
}

// WriteRefused is the default answer to a refused request: 429 quota_exceeded when the
// monthly quota refused it, 429 rate_limited (apikey.WriteLimited) when the rate limit did.
func WriteRefused(w http.ResponseWriter, r *http.Request, d Decision) {
	if d.Refused == QuotaExceeded {
		httpjson.WriteError(w, http.StatusTooManyRequests, "quota_exceeded",
			"the monthly quota of "+strconv.FormatInt(d.Quota.Limit, 10)+" calls is used up")
		return
	}
	apikey.WriteLimited(w, r, d.Rate)
}

// WriteError is the default answer when admission fails: 503 quota_unavailable when the
// error wraps ErrQuotaUnavailable, else 503 rate_limiter_unavailable
// (apikey.WriteLimiterError); both with Retry-After: 1.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrQuotaUnavailable) {
		w.Header().Set("Retry-After", "1")
		httpjson.WriteError(w, http.StatusServiceUnavailable, "quota_unavailable", "the quota cannot be checked now; try again")
		return
	}
	apikey.WriteLimiterError(w, r, err)
}
