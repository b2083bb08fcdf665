package usage_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/usage"
)

var testKey = ecoid.MustParse("eco_api_0Ub2cYzA9fKq3XwT7mNpLs")

// identifyHeader tracks requests that carry an X-User header.
func identifyHeader(r *http.Request) (ecoid.ID, ecoid.ID, bool) {
	if r.Header.Get("X-User") == "" {
		return "", "", false
	}
	return testKey, testUser, true
}

// recordsOf flushes tr and returns what w stored.
func recordsOf(t *testing.T, tr *usage.Tracker, w *fakeWriter) []usage.Record {
	t.Helper()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]usage.Record, 0, len(w.rows))
	for _, r := range w.rows {
		out = append(out, r)
	}
	return out
}

func TestMiddlewareRecordsRoutePatternAndOutcome(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	tr := usage.NewTracker(w, usage.Config{FlushInterval: time.Hour})
	defer closeNow(t, tr)
	clock := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(3 * time.Millisecond); return clock }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			http.Error(w, "no such item", http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, "item "+r.PathValue("id"))
	})
	h := usage.Middleware(tr, identifyHeader, usage.MiddlewareConfig{Now: now})(mux)

	for _, path := range []string{"/items/1", "/items/missing"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("X-User", "1")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/items/2", nil)) // not identified

	recs := recordsOf(t, tr, w)
	if len(recs) != 2 {
		t.Fatalf("tracked %d requests, want 2: %+v", len(recs), recs)
	}
	byStatus := map[int]usage.Record{}
	for _, r := range recs {
		byStatus[r.Status] = r
	}
	ok, missing := byStatus[200], byStatus[404]
	if ok.Endpoint != "/items/{id}" || ok.Method != "GET" || ok.Bytes != int64(len("item 1")) ||
		ok.Latency != 3*time.Millisecond || ok.UserID != testUser || ok.KeyID != testKey || ok.Time.IsZero() {
		t.Fatalf("record of a 200: %+v", ok)
	}
	if missing.Endpoint != "/items/{id}" || missing.Bytes != int64(len("no such item\n")) {
		t.Fatalf("record of a 404: %+v", missing)
	}
}

// A writer that is a *Recorder already (made further out, by a request log) is handed to
// the handler as it is, and what the handler writes through it is tracked; the outer
// middleware reads the same status and size.
func TestMiddlewareRecordsThroughAnOuterRecorder(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	tr := usage.NewTracker(w, usage.Config{FlushInterval: time.Hour})
	defer closeNow(t, tr)
	var outer *usage.Recorder
	h := usage.Middleware(tr, identifyHeader, usage.MiddlewareConfig{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if w != http.ResponseWriter(outer) {
			t.Errorf("the handler got %T, not the outer Recorder", w)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "made")
	}))
	req := httptest.NewRequest("POST", "/things", nil)
	req.Header.Set("X-User", "1")
	outer = usage.NewRecorder(httptest.NewRecorder())
	h.ServeHTTP(outer, req)
	if outer.Status() != http.StatusCreated || outer.Bytes() != 4 || outer.Hijacked() {
		t.Fatalf("the outer recorder read %d, %d bytes, hijacked %v", outer.Status(), outer.Bytes(), outer.Hijacked())
	}
	recs := recordsOf(t, tr, w)
	if len(recs) != 1 || recs[0].Status != http.StatusCreated || recs[0].Bytes != 4 {
		t.Fatalf("tracked %+v", recs)
	}
}

func TestMiddlewareEndpointFallbackAndPanics(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	tr := usage.NewTracker(w, usage.Config{FlushInterval: time.Hour})
	defer closeNow(t, tr)
	noContent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	req := func() *http.Request {
		r := httptest.NewRequest("POST", "/raw/123", nil)
		r.Header.Set("X-User", "1")
		return r
	}
	usage.Middleware(tr, identifyHeader, usage.MiddlewareConfig{})(noContent).ServeHTTP(httptest.NewRecorder(), req())
	fallback := usage.MiddlewareConfig{Endpoint: func(*http.Request) string { return "/raw/{n}" }}
	usage.Middleware(tr, identifyHeader, fallback)(noContent).ServeHTTP(httptest.NewRecorder(), req())
	panics := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	func() {
		defer func() { _ = recover() }()
		usage.Middleware(tr, identifyHeader, fallback)(panics).ServeHTTP(httptest.NewRecorder(), req())
	}()
	got := map[string]int{}
	for _, r := range recordsOf(t, tr, w) {
		got[r.Endpoint+" "+http.StatusText(r.Status)]++
	}
	want := map[string]int{"unmatched OK": 1, "/raw/{n} OK": 1, "/raw/{n} Internal Server Error": 1}
	if len(got) != len(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("records %v, want %v", got, want)
		}
	}
}

// readerFromRecorder is a ResponseWriter with ReadFrom, like net/http's own.
type readerFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom bool
}

func (r *readerFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFrom = true
	return io.Copy(r.ResponseRecorder, src)
}

func TestMiddlewareKeepsFlusherReaderFromAndHijacker(t *testing.T) {
	checkNoLeak(t)
	w := newFakeWriter()
	tr := usage.NewTracker(w, usage.Config{FlushInterval: time.Hour})
	defer closeNow(t, tr)
	mw := usage.Middleware(tr, identifyHeader, usage.MiddlewareConfig{})
	identified := func(method, path string) *http.Request {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("X-User", "1")
		return r
	}

	// Flusher.
	rec := httptest.NewRecorder()
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Fatal("the writer lost http.Flusher")
		}
		f.Flush()
	})).ServeHTTP(rec, identified("GET", "/flush"))
	if !rec.Flushed {
		t.Fatal("Flush did not reach the underlying writer")
	}

	// io.ReaderFrom, with and without the underlying writer having it.
	copyBody := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Fatal("the writer lost io.ReaderFrom")
		}
		_, _ = io.Copy(w, struct{ io.Reader }{strings.NewReader("0123456789")}) // no WriterTo
	})
	rf := &readerFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	mw(copyBody).ServeHTTP(rf, identified("GET", "/copy"))
	if !rf.readFrom || rf.Body.String() != "0123456789" {
		t.Fatalf("ReadFrom not used (%v) or body %q", rf.readFrom, rf.Body.String())
	}
	plain := httptest.NewRecorder()
	mw(copyBody).ServeHTTP(plain, identified("GET", "/copy"))
	if plain.Body.String() != "0123456789" {
		t.Fatalf("copy without ReadFrom: %q", plain.Body.String())
	}

	// Hijacker is not supported by a recorder: the error says so.
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := w.(http.Hijacker).Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Hijack on a recorder: %v", err)
		}
		w.WriteHeader(http.StatusAccepted)
		w.WriteHeader(http.StatusTeapot) // superfluous: the first status counts
	})).ServeHTTP(httptest.NewRecorder(), identified("GET", "/nohijack"))

	// A real server: Hijack and ResponseController both work through the wrapper.
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deadline" {
			if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				t.Errorf("ResponseController through the wrapper: %v", err)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = buf.Flush()
	})))
	defer srv.Close()
	for _, path := range []string{"/hijack", "/deadline"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("X-User", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/hijack" && string(body) != "hi" {
			t.Fatalf("hijacked answer %q", body)
		}
	}
	// The server tracks a request when its handler returns, which may be after the
	// client has read the answer: wait for all six.
	got := recordsOf(t, tr, w)
	for deadline := time.Now().Add(10 * time.Second); len(got) < 6 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		got = recordsOf(t, tr, w)
	}
	count := map[int]int{}
	for _, r := range got {
		count[r.Status]++
		if r.Endpoint != usage.Unmatched {
			t.Errorf("endpoint %q, want %q", r.Endpoint, usage.Unmatched)
		}
		if r.Bytes == 10 {
			count[-10]++ // the two copies of the 10-byte body
		}
	}
	// flush and two copies (200), the refused hijack (202), the hijack (101), the deadline (204).
	if len(got) != 6 || count[200] != 3 || count[202] != 1 || count[101] != 1 || count[204] != 1 || count[-10] != 2 {
		t.Fatalf("statuses %v of %d records", count, len(got))
	}
}

// BenchmarkMiddleware measures the tracking middleware over a handler that writes a
// small body, against the same handler bare.
func BenchmarkMiddleware(b *testing.B) {
	tr := usage.NewTracker(discardWriter{}, usage.Config{BufferSize: 1 << 16})
	defer tr.Close(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	identify := func(*http.Request) (ecoid.ID, ecoid.ID, bool) { return testKey, testUser, true }
	quota := usage.NewQuota(memory.NewUsageStore(), fixedLimit(-1, false), usage.QuotaConfig{})
	user := func(*http.Request) (ecoid.ID, bool) { return testUser, true }
	req := httptest.NewRequest("GET", "/items/1", nil)
	w := httptest.NewRecorder()
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"tracked", usage.Middleware(tr, identify, usage.MiddlewareConfig{})(mux)},
		{"tracked+quota", usage.Middleware(tr, identify, usage.MiddlewareConfig{})(quota.Middleware(user)(mux))},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				w.Body.Reset()
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
