package main

import (
	"net/http"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// handler is the whole HTTP API: every area registers its routes on one router, and
// every request then passes the server-wide middleware, outermost first. A new area adds
// its register call here; a server-wide concern (metrics, say) joins the middleware list.
func (s *services) handler() http.Handler {
	return chain(s.routes(),
		// The client behind trusted proxies (NEXUS_TRUSTED_PROXIES), for throttle and logs.
		auth.TrustProxies(s.cfg.TrustedProxies),
		// One line per request with the final status; requests and latency by route.
		observeRequests(s.requestLog, s.metrics),
		recoverPanics(s.log), // inside the log, so a panic's 500 is logged
		s.csrf,               // cross-origin cookie requests refused before any route
	)
}

// routes is the router with every area's routes (openapi.yaml describes each one).
func (s *services) routes() *router {
	rt := newRouter()
	requireUser := privateAnswers(s.sessionCheck(auth.RequireUser(s.issuer, s.cookies))) // revoked sessions die within 1 s
	requireAdmin := adminOnly(s.auth, s.admins, requireUser, s.log)

	if s.cfg.MetricsAddr == "" { // else main.go serves it on its own listener
		rt.Handle("GET /metrics", s.metrics.handler())
	}
	healthHandlers{store: s.storeName(), checks: s.readyChecks(), log: s.log}.register(rt)
	authHandlers{svc: s.auth, cookies: s.cookies, requireUser: requireUser, log: s.log}.register(rt)
	accountHandlers{svc: s.auth, sessions: authHandlers{svc: s.auth, cookies: s.cookies, log: s.log}, keys: s.keys, usage: s.usageStore,
		billing: s.billing, requireUser: requireUser, log: s.log}.register(rt)
	linkPages{svc: s.auth, cookies: s.cookies, log: s.log}.register(rt) // what the links in mail open
	mfaHandlers{svc: s.auth, sessions: authHandlers{svc: s.auth, cookies: s.cookies}, requireUser: requireUser, log: s.log}.register(rt)
	keyHandlers{keys: s.keys, users: s.auth, requireUser: requireUser, log: s.log}.register(rt)
	apiHandlers{protect: s.protect}.register(rt)
	usageHandlers{store: s.usageStore, quota: s.quota, plans: s.billing, requireUser: requireUser, log: s.log}.register(rt)
	billingHandlers{billing: s.billing, users: s.auth, cfg: s.cfg.Billing, requireUser: requireUser, log: s.log}.register(rt)
	adminHandlers{billing: s.billing, requireAdmin: requireAdmin, log: s.log}.register(rt)
	ssoHandlers{auth: s.auth, projects: s.projects, provider: s.provider, requireUser: requireUser, requireAdmin: requireAdmin, log: s.log}.register(rt)

	return rt
}

// privateAnswers makes every answer of the routes that authenticate wraps (a user's
// routes: profile, sessions, activity, export, keys, billing links) Cache-Control:
// no-store, so no shared or browser cache keeps personal data. Headers are set before
// authentication, so its 401 carries them too.
func privateAnswers(authenticate func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		h := authenticate(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpjson.NoStore(w.Header())
			h.ServeHTTP(w, r)
		})
	}
}

// chain wraps h in middleware, the first outermost.
func chain(h http.Handler, middleware ...func(http.Handler) http.Handler) http.Handler {
	for i := len(middleware) - 1; i >= 0; i-- {
		h = middleware[i](h)
	}
	return h
}
