package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/nexus-ecosystem/nexus/httpjson"
)

// router is Go's ServeMux with method patterns ("POST /api/auth/login") and three answers
// of the contract on top: a path no route has is 404 not_found, a path whose routes
// want another method is 405 method_not_allowed with an Allow header, both as JSON; and
// a request to a route that declares a body over httpjson.MaxBodyBytes (1 MiB) is 413
// body_too_large, also on routes that read no body (those that read one also cap what
// they read).
type router struct {
	mux      *http.ServeMux
	exact    map[methodPath]exactRoute // {"GET", "/api/v1/ping"} → its route: patterns without wildcards
	methods  []string                  // every method some route uses, sorted
	patterns []string                  // every pattern registered, in order (openapi_test.go compares them with openapi.yaml)
}

func newRouter() *router {
	rt := &router{mux: http.NewServeMux(), exact: map[methodPath]exactRoute{}}
	// The catch-all matches only what no route matches, so it never slows a routed request.
	rt.mux.HandleFunc("/", rt.unmatched)
	return rt
}

// Handle registers h for pattern, which must name a method: "GET /healthz".
func (rt *router) Handle(pattern string, h http.Handler) {
	method, _, ok := strings.Cut(pattern, " ")
	if !ok || method == "" || strings.HasPrefix(method, "/") {
		panic("router: pattern must be \"METHOD /path\": " + pattern)
	}
	if !slices.Contains(rt.methods, method) {
		rt.methods = append(rt.methods, method)
		slices.Sort(rt.methods)
	}
	h = limitDeclaredBody(h)
	rt.mux.Handle(pattern, h)
	rt.patterns = append(rt.patterns, pattern)
	if path := pattern[len(method)+1:]; !strings.ContainsAny(path, "{ ") && strings.HasPrefix(path, "/") && !strings.HasSuffix(path, "/") {
		rt.exact[methodPath{method, path}] = exactRoute{pattern, h}
	}
}

// exactRoute is a route whose pattern is a literal path.
type exactRoute struct {
	pattern string
	h       http.Handler
}

// Patterns returns every pattern registered with Handle, in order.
func (rt *router) Patterns() []string { return slices.Clone(rt.patterns) }

// HandleFunc registers f for pattern (see Handle).
func (rt *router) HandleFunc(pattern string, f http.HandlerFunc) { rt.Handle(pattern, f) }

// ServeHTTP serves a request whose method and path are exactly those of a literal
// pattern from a map, and every other request through the ServeMux. The map gives the
// answer the ServeMux would: a literal pattern is the most specific one for its path
// (the ServeMux refuses conflicting registrations), and only a path without escapes
// (RawPath empty, so Path is what the ServeMux matches) that is already clean can equal
// a registered one. HEAD, which the ServeMux also serves with GET routes, and anything
// unusual go to the ServeMux. It spares the API routes the ServeMux's tree walk.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawPath == "" {
		if e, ok := rt.exact[methodPath{r.Method, r.URL.Path}]; ok {
			r.Pattern = e.pattern
			e.h.ServeHTTP(w, r)
			return
		}
	}
	if !strings.HasPrefix(r.URL.Path, "/") {
		// A CONNECT request's authority-form target ("host:port") has no path; no route
		// matches it, and the ServeMux would answer a plain-text 404.
		rt.unmatched(w, r)
		return
	}
	if clean := cleanPath(r.URL.Path); clean != r.URL.Path {
		// The ServeMux redirects an unclean path (//, /./, /../) to its clean form, with an
		// HTML body: the same redirect, answered in JSON.
		w.Header().Set("Location", (&url.URL{Path: clean, RawQuery: r.URL.RawQuery}).String())
		httpjson.WriteError(w, http.StatusTemporaryRedirect, "not_canonical", "the path is not in its clean form; follow Location")
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// cleanPath is the ServeMux's canonical form of a path: path.Clean, keeping a trailing
// slash.
func cleanPath(p string) string {
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// methodPath is the key of router.exact.
type methodPath struct{ method, path string }

// unmatched answers a request no route matched: 405 with the methods the path has
// routes for, or 404 when it has none.
func (rt *router) unmatched(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	probe := r.WithContext(r.Context())
	for _, m := range rt.methods {
		probe.Method = m
		if _, pattern := rt.mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no such route")
		return
	}
	if slices.Contains(allowed, http.MethodGet) && !slices.Contains(allowed, http.MethodHead) {
		allowed = append(allowed, http.MethodHead) // a GET route answers HEAD too, as the ServeMux says
		slices.Sort(allowed)
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	httpjson.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" is not allowed here")
}

// limitDeclaredBody answers 413 for a request that declares a body over the limit.
func limitDeclaredBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > httpjson.MaxBodyBytes {
			httpjson.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("request body too large: over %d bytes", httpjson.MaxBodyBytes))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// internalError logs err with the request's method and path and answers 500 without
// internals.
func internalError(log *slog.Logger, w http.ResponseWriter, r *http.Request, msg string, err error) {
	log.LogAttrs(r.Context(), slog.LevelError, msg,
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("err", err.Error()))
	httpjson.WriteError(w, http.StatusInternalServerError, "internal_error", "internal error")
}
