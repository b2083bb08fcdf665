package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/nexus-ecosystem/nexus/httpjson"
)

// healthHandlers serve the probes of an orchestrator or load balancer.
type healthHandlers struct {
	ping  func(ctx context.Context) error // does the store answer?
	store string                          // "memory" or "postgres"
	log   *slog.Logger
}

func (h healthHandlers) register(rt *router) {
	rt.HandleFunc("GET /healthz", h.healthz)
}

// healthz answers 200 {"status":"ok"} when the store answers, 503 otherwise.
func (h healthHandlers) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.ping(ctx); err != nil {
		h.log.Warn("health check failed", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "unhealthy", "the store does not answer")
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok", "store": h.store})
}
