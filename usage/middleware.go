package usage

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// IdentifyFunc finds the API key and user a request is made for, usually from what an
// authentication middleware put in its context. ok false means the request is not
// tracked.
type IdentifyFunc func(r *http.Request) (keyID, userID ecoid.ID, ok bool)

// MiddlewareConfig tunes Middleware. The zero value of every field means its default.
type MiddlewareConfig struct {
	// Endpoint names the route of a request that no Go 1.22 ServeMux pattern matched
	// (r.Pattern is empty), such as one served by another router. It must return a
	// pattern, not the raw path, so that analytics group requests by route. Default: the
	// constant "unmatched".
	Endpoint func(r *http.Request) string
	// Now measures latency and stamps records. Default: time.Now.
	Now func() time.Time
}

// Unmatched is the endpoint recorded for a request without a route pattern when
// MiddlewareConfig.Endpoint is not set.
const Unmatched = "unmatched"

// Middleware returns net/http middleware that tracks every request identify accepts,
// whatever its status (including panics, recorded as 500 before the panic goes on): the
// route pattern of the ServeMux that served it (r.Pattern, read after the handler ran,
// without its method), the method, status, latency and response bytes. Put it after
// authentication so that identify finds the key. The ResponseWriter it passes on keeps
// http.Flusher, http.Hijacker and io.ReaderFrom working, and unwraps for
// http.ResponseController.
func Middleware(t *Tracker, identify IdentifyFunc, cfg MiddlewareConfig) func(http.Handler) http.Handler {
	now, since := cfg.Now, func(start time.Time) time.Duration { return cfg.Now().Sub(start) }
	if now == nil {
		// time.Since reads only the monotonic clock: one clock read instead of two.
		now, since = time.Now, time.Since
	}
	m := &meter{t: t, identify: identify, endpoint: cfg.Endpoint, since: since}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rw := &responseWriter{ResponseWriter: w, start: now()}
			defer m.record(rw, r) // a method call, not a closure: no allocation
			next.ServeHTTP(rw, r)
			rw.completed = true
		})
	}
}

// meter is Middleware's configuration.
type meter struct {
	t        *Tracker
	identify IdentifyFunc
	endpoint func(*http.Request) string
	since    func(start time.Time) time.Duration
}

// record tracks the request once its handler has returned or panicked.
func (m *meter) record(rw *responseWriter, r *http.Request) {
	keyID, userID, ok := m.identify(r)
	if !ok {
		return
	}
	status := rw.status
	switch {
	case !rw.completed && !rw.hijacked:
		status = http.StatusInternalServerError // the handler panicked
	case status == 0 && rw.hijacked:
		status = http.StatusSwitchingProtocols
	case status == 0:
		status = http.StatusOK
	}
	m.t.Track(Record{
		KeyID:    keyID,
		UserID:   userID,
		Endpoint: endpointOf(r, m.endpoint),
		Method:   r.Method,
		Status:   status,
		Latency:  m.since(rw.start),
		Bytes:    rw.bytes,
		Time:     rw.start,
	})
}

// endpointOf returns the route pattern without its method, or the fallback's answer.
func endpointOf(r *http.Request, fallback func(*http.Request) string) string {
	p := r.Pattern
	if p == "" {
		if fallback != nil {
			if e := fallback(r); e != "" {
				return e
			}
		}
		return Unmatched
	}
	if i := strings.IndexAny(p, " \t"); i >= 0 {
		p = strings.TrimLeft(p[i:], " \t")
	}
	return p
}

// responseWriter records the status and size of a response.
type responseWriter struct {
	http.ResponseWriter
	start     time.Time
	status    int
	bytes     int64
	hijacked  bool
	completed bool // the handler returned (did not panic)
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are informational; the final status comes later
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom lets io.Copy use the underlying writer's ReadFrom (sendfile) when it has one.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// Flush sends buffered data to the client, when the underlying writer can.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over, when the underlying writer can; otherwise it returns
// an error wrapping http.ErrNotSupported.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides every method but Write, so io.Copy cannot loop back into ReadFrom.
type writerOnly struct{ io.Writer }
