package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/usage"
)

// observeRequests is the server's outermost view of each request: with log set, the
// request log (one line per request, see requestLog), and with m set, the request counter
// and latency histogram by route pattern. Both read one recorder and one clock, which
// matters on a route that serves tens of thousands of requests a second. The recorder is
// a usage.Recorder, so that the API-key chain's usage tracking records through it too
// instead of wrapping the writer a second time.
func observeRequests(log *requestLog, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := usage.NewRecorder(w)
			next.ServeHTTP(rec, r)
			status := rec.Status()
			if status == 0 {
				status = http.StatusOK
			}
			took := time.Since(start)
			if m != nil {
				m.observe(r.Pattern, status, took)
			}
			if log != nil {
				log.log(start.Add(took), r, status, int(rec.Bytes()), took)
			}
		})
	}
}

// recoverPanics turns a panic in a handler into a 500 JSON error without internals, and
// logs it. When the response had already started, a second body would corrupt it, so the
// connection is aborted instead (http.ErrAbortHandler), and the client sees a broken
// response rather than a complete-looking one. http.ErrAbortHandler from a handler is
// re-raised, as net/http expects. It sits inside observeRequests, whose recorder tells it
// whether the response has started.
func recoverPanics(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				if rec, ok := w.(*usage.Recorder); ok && rec.Status() != 0 {
					panic(http.ErrAbortHandler)
				}
				httpjson.WriteError(w, http.StatusInternalServerError, "internal_error", "internal error")
			}()
			next.ServeHTTP(w, r)
		})
	}
}
