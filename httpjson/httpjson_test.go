package httpjson

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type payload struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func decode(body string) (payload, error, *httptest.ResponseRecorder) {
	var p payload
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	err := Decode(w, r, &p)
	return p, err, w
}

func TestDecode(t *testing.T) {
	if p, err, _ := decode(`{"name":"a","count":2}`); err != nil || p.Name != "a" || p.Count != 2 {
		t.Fatalf("valid body: %+v, %v", p, err)
	}
	for name, body := range map[string]string{
		"empty":         "",
		"syntax":        `{"name":`,
		"garbage":       `nope`,
		"wrong type":    `{"count":"two"}`,
		"trailing data": `{"name":"a"} {"name":"b"}`,
		"not an object": `[1,2]`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err, _ := decode(body)
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("error %v, want ErrInvalidJSON", err)
			}
			if strings.Contains(err.Error(), "two") {
				t.Fatalf("error %q echoes the body", err)
			}
		})
	}
}

func TestDecodeRejectsLargeBodies(t *testing.T) {
	big := `{"name":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	_, err, _ := decode(big)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
	w := httptest.NewRecorder()
	WriteDecodeError(w, err)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", w.Code)
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	WriteDecodeError(w, ErrInvalidJSON)
	var body struct {
		Error Error `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != 400 || body.Error.Code != "invalid_json" || body.Error.Message == "" {
		t.Fatalf("got %d %+v", w.Code, body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
}

func TestWriteUnencodableValue(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, http.StatusOK, func() {})
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "internal_error") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

func TestDecodeRefusesBodiesThatAreNotJSON(t *testing.T) {
	for _, ct := range []string{"", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "json"} {
		var p payload
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"a"}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		err := Decode(httptest.NewRecorder(), r, &p)
		if !errors.Is(err, ErrUnsupportedMediaType) || p.Name != "" {
			t.Fatalf("Content-Type %q: %v, decoded %+v; want ErrUnsupportedMediaType and nothing decoded", ct, err, p)
		}
		w := httptest.NewRecorder()
		WriteDecodeError(w, err)
		if w.Code != http.StatusUnsupportedMediaType || !strings.Contains(w.Body.String(), `"unsupported_media_type"`) {
			t.Fatalf("answer %d %s", w.Code, w.Body)
		}
	}
	for _, ct := range []string{"application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"} {
		var p payload
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"a"}`))
		r.Header.Set("Content-Type", ct)
		if err := Decode(httptest.NewRecorder(), r, &p); err != nil || p.Name != "a" {
			t.Fatalf("Content-Type %q: %v", ct, err)
		}
	}
	// No body at all is not a media-type question: it stays 400 invalid_json.
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	if err := Decode(httptest.NewRecorder(), r, &payload{}); !errors.Is(err, ErrInvalidJSON) {
		t.Fatalf("no body: %v", err)
	}
}

func TestWriteSecretIsNotCacheable(t *testing.T) {
	w := httptest.NewRecorder()
	WriteSecret(w, http.StatusCreated, map[string]string{"access_token": "t"})
	if w.Code != 201 || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" ||
		!strings.Contains(w.Body.String(), `"access_token"`) {
		t.Fatalf("got %d %v %s", w.Code, w.Header(), w.Body)
	}
	w = httptest.NewRecorder()
	Write(w, http.StatusOK, map[string]string{"ok": "1"})
	if w.Header().Get("Cache-Control") != "" {
		t.Fatal("Write marked an ordinary answer no-store")
	}
}

// Write's body is json.Marshal's, with a newline, whatever the answers before it
// left in the reused buffers.
func TestWriteMatchesMarshal(t *testing.T) {
	values := []any{
		payload{Name: strings.Repeat("long ", 500), Count: 1},
		payload{Name: `<a href="x">&</a>`, Count: -2},
		map[string]any{"é": "\u2028", "n": nil, "list": []int{1, 2}},
		nil,
		"short",
	}
	for _, v := range values {
		w := httptest.NewRecorder()
		Write(w, http.StatusOK, v)
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Body.String(); got != string(want)+"\n" {
			t.Fatalf("Write(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWriteEncodedSendsTheBodyWithWritesHeaders(t *testing.T) {
	body := []byte(`{"ok":true}` + "\n")
	w := httptest.NewRecorder()
	WriteEncoded(w, http.StatusAccepted, body)
	want := httptest.NewRecorder()
	Write(want, http.StatusAccepted, map[string]bool{"ok": true})
	if w.Code != http.StatusAccepted || w.Body.String() != want.Body.String() {
		t.Fatalf("WriteEncoded: %d %q, Write: %q", w.Code, w.Body, want.Body)
	}
	for _, k := range []string{"Content-Type", "X-Content-Type-Options"} {
		if got := w.Header().Values(k); len(got) != 1 || got[0] != want.Header().Get(k) {
			t.Fatalf("%s: %q, Write's %q", k, got, want.Header().Get(k))
		}
	}
	if _, err := http.ParseTime(w.Header().Get("Date")); err != nil {
		t.Fatalf("Date %q: %v", w.Header().Get("Date"), err)
	}
}

// The header values every answer shares are not changed by what one answer's handler
// adds to its own header.
func TestWriteHeaderValuesStayPerAnswer(t *testing.T) {
	first := httptest.NewRecorder()
	Write(first, http.StatusOK, 1)
	first.Header().Add("Content-Type", "text/plain")
	first.Header().Add("X-Content-Type-Options", "other")
	second := httptest.NewRecorder()
	Write(second, http.StatusOK, 2)
	if got := second.Header().Values("Content-Type"); len(got) != 1 || got[0] != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type of the next answer: %q", got)
	}
	if got := second.Header().Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
		t.Fatalf("X-Content-Type-Options of the next answer: %q", got)
	}
}

// An encoder that wrote a secret is wiped before it is reused.
func TestReleaseWipesASecretsBuffer(t *testing.T) {
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	if err := e.enc.Encode(map[string]string{"refresh_token": "s3cr3t-value"}); err != nil {
		t.Fatal(err)
	}
	full := e.buf.Bytes()[:e.buf.Cap()]
	e.release(true)
	if strings.Contains(string(full), "s3cr3t") || strings.Trim(string(full), "\x00") != "" {
		t.Fatalf("the buffer still holds %q", full)
	}
}

func BenchmarkWrite(b *testing.B) {
	w := &discardWriter{header: http.Header{}}
	v := payload{Name: "eco_api_0000000000000000000000", Count: 1}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		Write(w, http.StatusOK, v)
	}
}

// discardWriter is a ResponseWriter that keeps nothing but its header map.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// A body of the wrong JSON type is described in JSON's terms, never by its Go type.
func TestDecodeErrorsNameJSONTypesNotGoTypes(t *testing.T) {
	type request struct {
		Name   string          `json:"name"`
		Count  int             `json:"count"`
		Tags   []string        `json:"tags"`
		At     time.Time       `json:"at"`
		Ok     *bool           `json:"ok"`
		Nested struct{ X int } `json:"nested"`
	}
	for body, want := range map[string]string{
		`[]`:            "body must be an object",
		`"x"`:           "body must be an object",
		`{"name":1}`:    `field "name" must be a string`,
		`{"count":"1"}`: `field "count" must be an integer`,
		`{"count":1.5}`: `field "count" must be an integer`,
		`{"tags":"a"}`:  `field "tags" must be an array`,
		`{"ok":"yes"}`:  `field "ok" must be true or false`,
		`{"nested":[]}`: `field "nested" must be an object`,
	} {
		var v request
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		err := Decode(w, r, &v)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "struct") || strings.Contains(err.Error(), "httpjson") {
			t.Errorf("Decode(%s) = %v, want %q", body, err, want)
		}
	}
}

// On the wire, an answer carries one Date, the time it was written to the second, as
// net/http's own; a handler's own Date, or a nil one that suppresses it, is kept.
func TestWriteEncodedDate(t *testing.T) {
	own := "Wed, 21 Oct 2015 07:28:00 GMT"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/own":
			w.Header().Set("Date", own)
		case "/none":
			w.Header()["Date"] = nil
		}
		WriteEncoded(w, http.StatusOK, []byte("{}\n"))
	}))
	defer srv.Close()
	get := func(path string) []string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Values("Date")
	}
	for range 3 { // the first formats the second, the next ones may reuse it
		before := time.Now().Truncate(time.Second)
		got := get("/")
		after := time.Now()
		if len(got) != 1 {
			t.Fatalf("Date: %q, want one value", got)
		}
		at, err := http.ParseTime(got[0])
		if err != nil || got[0] != at.UTC().Format(http.TimeFormat) || at.Before(before) || at.After(after) {
			t.Fatalf("Date %q (%v) is not in http.TimeFormat within [%v, %v]", got[0], err, before, after)
		}
	}
	if got := get("/own"); len(got) != 1 || got[0] != own {
		t.Fatalf("the handler's own Date became %q", got)
	}
	if got := get("/none"); len(got) != 0 {
		t.Fatalf("a suppressed Date was sent: %q", got)
	}
}

// Answers written across a second boundary each get their own second's Date.
func TestDateFollowsTheSecond(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 59, 900_000_000, time.FixedZone("CET", 3600))
	for _, at := range []time.Time{t0, t0.Add(50 * time.Millisecond), t0.Add(200 * time.Millisecond), t0.Add(-time.Hour)} {
		if got, want := date(at), at.UTC().Format(http.TimeFormat); len(got) != 1 || got[0] != want {
			t.Fatalf("date(%v) = %q, want %q", at, got, want)
		}
	}
}

// BenchmarkDate compares the Date value WriteEncoded sets with what net/http formats for
// every answer without it.
func BenchmarkDate(b *testing.B) {
	b.Run("net-http", func(b *testing.B) {
		var buf [64]byte
		b.ReportAllocs()
		for b.Loop() {
			_ = time.Now().UTC().AppendFormat(buf[:0], http.TimeFormat)
		}
	})
	b.Run("httpjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = date(time.Now())
		}
	})
}
