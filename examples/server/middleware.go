package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nexus-ecosystem/nexus/httpjson"
)

// statusRecorder remembers the status and size of a response for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack of the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observeRequests is the server's outermost view of each request: with log set, the
// request log (one line per request, see requestLog), and with m set, the request counter
// and latency histogram by route pattern. Both read one recorder and one clock, which
// matters on a route that serves tens of thousands of requests a second.
func observeRequests(log *requestLog, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			took := time.Since(start)
			if m != nil {
				m.observe(r.Pattern, rec.status, took)
			}
			if log != nil {
				log.log(start.Add(took), r, rec.status, rec.bytes, took)
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
				if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
					panic(http.ErrAbortHandler)
				}
				httpjson.WriteError(w, http.StatusInternalServerError, "internal_error", "internal error")
			}()
			next.ServeHTTP(w, r)
		})
	}
}
