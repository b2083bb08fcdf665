package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// keyHandlers serve /api/keys/*: a signed-in user's API keys.
type keyHandlers struct {
	keys        *apikey.Service
	users       *auth.Service // the owner must still exist once the key is made
	requireUser func(http.Handler) http.Handler
	log         *slog.Logger
}

func (h keyHandlers) register(rt *router) {
	rt.Handle("POST /api/keys/generate", h.requireUser(http.HandlerFunc(h.generate)))
	rt.Handle("GET /api/keys/list", h.requireUser(http.HandlerFunc(h.list)))
	rt.Handle("POST /api/keys/revoke", h.requireUser(http.HandlerFunc(h.revoke)))
	rt.Handle("POST /api/keys/rotate", h.requireUser(http.HandlerFunc(h.rotate)))
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

// generate: POST /api/keys/generate {name, scopes, rate_limit_per_minute} → 201 with
// the plain key, shown this once.
func (h keyHandlers) generate(w http.ResponseWriter, r *http.Request) {
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
	k, plain, err := h.keys.Create(r.Context(), p)
	if err != nil {
		h.keyError(w, r, err)
		return
	}
	// The account may have been erased while the key was made (its access token lives on
	// for a moment): look for the owner after the key exists. Erasure revokes the owner's
	// keys before and after it deletes the account, so either this finds the account gone
	// and revokes the key, or the account went after this look and its erasure revokes it.
	if _, err := h.users.UserByID(r.Context(), p.Owner); err != nil {
		if rerr := h.keys.Revoke(context.WithoutCancel(r.Context()), p.Owner, k.ID); rerr != nil && !errors.Is(rerr, apikey.ErrRevoked) {
			h.log.Error("revoke a key of an erased account", "key_id", k.ID, "err", rerr)
		}
		if errors.Is(err, auth.ErrNotFound) {
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "the account no longer exists")
			return
		}
		internalError(h.log, w, r, "key owner check", err)
		return
	}
	httpjson.WriteSecret(w, http.StatusCreated, generatedKey{
		ID: k.ID, Key: plain, Name: k.Name, Scopes: k.Scopes, RateLimitPerMinute: k.RateLimitPerMinute,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
	})
}

type keyPage struct {
	Keys       []apikey.Key `json:"keys"`
	NextCursor ecoid.ID     `json:"next_cursor,omitempty"`
}

// list: GET /api/keys/list[?limit=1..100][&cursor=<next_cursor>] → {keys:[…]} oldest
// first, at most limit (default 100), never a secret or hash; next_cursor is there when
// more keys follow.
func (h keyHandlers) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var p apikey.ListParams
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > apikey.MaxListLimit {
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_limit",
				fmt.Sprintf("limit must be between 1 and %d", apikey.MaxListLimit))
			return
		}
		p.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		id, err := ecoid.Parse(v)
		if err != nil || id.Type() != ecoid.APIKey {
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_cursor", "cursor is not a next_cursor of this list")
			return
		}
		p.After = id
	}
	page, err := h.keys.ListPage(r.Context(), currentUser(r), p)
	if err != nil {
		h.keyError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, keyPage{Keys: page.Keys, NextCursor: page.Next})
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

// revoke: POST /api/keys/revoke {id} → 200; another user's key is 404.
func (h keyHandlers) revoke(w http.ResponseWriter, r *http.Request) {
	_, id, ok := keyID(w, r)
	if !ok {
		return
	}
	if err := h.keys.Revoke(r.Context(), currentUser(r), id); err != nil {
		h.keyError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"id": id, "status": apikey.Revoked})
}

// rotate: POST /api/keys/rotate {id} → 200 {id,key} with the same ID and a new secret;
// the old secret stops working at once (or after grace_seconds, at most 7 days).
func (h keyHandlers) rotate(w http.ResponseWriter, r *http.Request) {
	req, id, ok := keyID(w, r)
	if !ok {
		return
	}
	if req.GraceSeconds < 0 || req.GraceSeconds > 7*24*3600 {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_grace", "grace_seconds must be between 0 and 604800")
		return
	}
	plain, err := h.keys.Rotate(r.Context(), currentUser(r), id, time.Duration(req.GraceSeconds)*time.Second)
	if err != nil {
		h.keyError(w, r, err)
		return
	}
	httpjson.WriteSecret(w, http.StatusOK, map[string]any{"id": id, "key": plain})
}

// keyError maps the key service's errors to answers; anything unexpected is logged and
// answered 500 without detail.
func (h keyHandlers) keyError(w http.ResponseWriter, r *http.Request, err error) {
	var input *apikey.InputError
	switch {
	case errors.As(err, &input):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_"+input.Field, input.Field+" "+input.Message)
	case errors.Is(err, apikey.ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "key_not_found", "no such API key")
	case errors.Is(err, apikey.ErrRevoked):
		httpjson.WriteError(w, http.StatusConflict, "key_revoked", "the API key is revoked")
	case errors.Is(err, apikey.ErrTooManyKeys):
		httpjson.WriteError(w, http.StatusConflict, "too_many_keys",
			"you have the most active API keys allowed; revoke one first")
	default:
		internalError(h.log, w, r, "api key request failed", err)
	}
}
