package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/internal/httpjson"
)

// routes returns the whole HTTP API wrapped in request logging and panic recovery.
func (a *app) routes() http.Handler {
	r := newRouter()
	r.handle("GET /healthz", http.HandlerFunc(a.healthz))
	a.authRoutes(r)
	a.keyRoutes(r)
	a.usageRoutes(r)
	a.billingRoutes(r)
	return a.logRequests(a.recoverPanics(r))
}

// healthz answers 200 {"status":"ok"} when the store answers, 503 otherwise.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.ping(ctx); err != nil {
		a.log.Warn("health check failed", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "unhealthy", "the store does not answer")
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok", "store": a.storeName()})
}

// router maps "METHOD /path" to handlers and answers unknown paths with a JSON 404,
// known paths with the wrong method with a JSON 405 and an Allow header, and requests
// that declare a body over httpjson.MaxBodyBytes with a JSON 413, on every route (also
// those that read no body; the routes that read one also cap what they read).
type router struct {
	mux     *http.ServeMux
	methods map[string]map[string]http.Handler // path -> method -> handler
}

func newRouter() *router {
	r := &router{mux: http.NewServeMux(), methods: map[string]map[string]http.Handler{}}
	r.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no such route")
	})
	return r
}

// handle registers h for a pattern of the form "METHOD /path".
func (r *router) handle(pattern string, h http.Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		panic("router: pattern must be \"METHOD /path\": " + pattern)
	}
	byMethod, known := r.methods[path]
	if !known {
		byMethod = map[string]http.Handler{}
		r.methods[path] = byMethod
		r.mux.Handle(path, r.dispatch(byMethod))
	}
	byMethod[method] = h
}

func (r *router) dispatch(byMethod map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h, ok := byMethod[req.Method]
		if !ok && req.Method == http.MethodHead {
			h, ok = byMethod[http.MethodGet]
		}
		if ok {
			if req.ContentLength > httpjson.MaxBodyBytes {
				httpjson.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large",
					fmt.Sprintf("request body too large: over %d bytes", httpjson.MaxBodyBytes))
				return
			}
			h.ServeHTTP(w, req)
			return
		}
		allowed := make([]string, 0, len(byMethod))
		for m := range byMethod {
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		httpjson.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+req.Method+" is not allowed here")
	})
}

func (r *router) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }
