package main

import (
	"fmt"
	"log/slog"
	"net/http"
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
	methods  []string // every method some route uses, sorted
	patterns []string // every pattern registered, in order (openapi_test.go compares them with openapi.yaml)
}

func newRouter() *router {
	rt := &router{mux: http.NewServeMux()}
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
	rt.mux.Handle(pattern, limitDeclaredBody(h))
	rt.patterns = append(rt.patterns, pattern)
}

// Patterns returns every pattern registered with Handle, in order.
func (rt *router) Patterns() []string { return slices.Clone(rt.patterns) }

// HandleFunc registers f for pattern (see Handle).
func (rt *router) HandleFunc(pattern string, f http.HandlerFunc) { rt.Handle(pattern, f) }

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) { rt.mux.ServeHTTP(w, r) }

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
