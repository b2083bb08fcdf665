package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// sessionTTL bounds how long an access token outlives its session on any instance: each
// instance asks the store whether a session is still live at most once per sessionTTL
// per session (two store reads a second per active session at most), so logout, logout
// everywhere, a password change or reset and refresh-token reuse end the session's
// access tokens everywhere within a second.
const sessionTTL = 500 * time.Millisecond

// liveSessions is the cached session check behind requireUser.
type liveSessions struct {
	store auth.SessionStore
	now   func() time.Time

	mu sync.RWMutex
	m  map[ecoid.ID]sessionState
}

type sessionState struct {
	live    bool
	checked time.Time
}

// sessionCheck returns requireUser followed by the check that the token's session is
// still live (401 when it was revoked or has expired; 503 when the store does not answer
// within guard's budget).
func (s *services) sessionCheck(requireUser func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	ls := &liveSessions{store: s.authStore, now: time.Now, m: map[ecoid.ID]sessionState{}}
	return func(next http.Handler) http.Handler {
		return requireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := auth.UserFrom(r.Context())
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			live, err := ls.live(r.Context(), c.SessionID)
			switch {
			case err != nil:
				s.log.Warn("session check failed", "err", err)
				w.Header().Set("Retry-After", "1")
				httpjson.WriteError(w, http.StatusServiceUnavailable, "session_check_unavailable", "the session cannot be checked now; try again")
			case !live:
				w.Header().Set("WWW-Authenticate", `Bearer realm="nexus"`)
				httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "the session of this token has ended")
			default:
				next.ServeHTTP(w, r)
			}
		}))
	}
}

// live reports whether the session is live, from a check at most sessionTTL old.
func (ls *liveSessions) live(ctx context.Context, id ecoid.ID) (bool, error) {
	now := ls.now()
	ls.mu.RLock()
	st, ok := ls.m[id]
	ls.mu.RUnlock()
	if ok && now.Sub(st.checked) < sessionTTL {
		return st.live, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	sess, err := ls.store.Session(ctx, id)
	live := err == nil && !sess.Revoked() && now.Before(sess.ExpiresAt)
	if err != nil && !errors.Is(err, auth.ErrNotFound) {
		return false, err
	}
	ls.mu.Lock()
	if len(ls.m) > 100_000 { // bounded: forget checks that are stale anyway
		for k, v := range ls.m {
			if now.Sub(v.checked) >= sessionTTL {
				delete(ls.m, k)
			}
		}
	}
	ls.m[id] = sessionState{live: live, checked: now}
	ls.mu.Unlock()
	return live, nil
}
