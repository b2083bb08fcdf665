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
// authentication so that identify finds the key. The handler gets a *Recorder: the
// writer Middleware was given when that is a *Recorder already (made further out by
// NewRecorder, for a request log, say), else a new one around it.
func Middleware(t *Tracker, identify IdentifyFunc, cfg MiddlewareConfig) func(http.Handler) http.Handler {
	now, since := cfg.Now, func(start time.Time) time.Duration { return cfg.Now().Sub(start) }
	if now == nil {
		// time.Since reads only the monotonic clock: one clock read instead of two.
		now, since = time.Now, time.Since
	}
	m := &meter{t: t, identify: identify, endpoint: cfg.Endpoint, since: since}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec, ok := w.(*Recorder)
			if !ok {
				rec = NewRecorder(w)
			}
			c := tracked{rec: rec, start: now()}
			defer m.record(&c, r) // a method call, not a closure: no allocation
			next.ServeHTTP(rec, r)
			c.completed = true
		})
	}
}

// tracked is one request as Middleware follows it.
type tracked struct {
	rec       *Recorder
	start     time.Time
	completed bool // the handler returned (did not panic)
}

// meter is Middleware's configuration.
type meter struct {
	t        *Tracker
	identify IdentifyFunc
	endpoint func(*http.Request) string
	since    func(start time.Time) time.Duration
}

// record tracks the request once its handler has returned or panicked.
func (m *meter) record(c *tracked, r *http.Request) {
	keyID, userID, ok := m.identify(r)
	if !ok {
		return
	}
	status := c.rec.status
	switch {
	case !c.completed && !c.rec.hijacked:
		status = http.StatusInternalServerError // the handler panicked
	case status == 0 && c.rec.hijacked:
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
		Latency:  m.since(c.start),
		Bytes:    c.rec.bytes,
		Time:     c.start,
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

// Recorder is an http.ResponseWriter that records the status and size of the response
// it writes. It keeps http.Flusher, http.Hijacker and io.ReaderFrom of the writer it
// wraps working, and unwraps for http.ResponseController. Middleware passes one to its
// handler. Middleware further out that needs the same (a request log, metrics) can make
// the Recorder itself, with NewRecorder, and hand it on: Middleware then records through
// that one rather than wrapping it again, one allocation and one layer of calls less on
// every request.
type Recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
}

// NewRecorder returns a Recorder writing to w.
func NewRecorder(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// Status is the final status written so far (1xx informational answers are not final):
// 0 before any, and 200 once the body is written without a WriteHeader.
func (w *Recorder) Status() int { return w.status }

// Bytes is the number of body bytes written.
func (w *Recorder) Bytes() int64 { return w.bytes }

// Hijacked reports whether the connection was handed over (Hijack).
func (w *Recorder) Hijacked() bool { return w.hijacked }

func (w *Recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are informational; the final status comes later
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom lets io.Copy use the underlying writer's ReadFrom (sendfile) when it has one.
func (w *Recorder) ReadFrom(src io.Reader) (int64, error) {
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
func (w *Recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over, when the underlying writer can; otherwise it returns
// an error wrapping http.ErrNotSupported.
func (w *Recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *Recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides every method but Write, so io.Copy cannot loop back into ReadFrom.
type writerOnly struct{ io.Writer }
