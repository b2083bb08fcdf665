// Package httpjson writes and reads the JSON bodies of Nexus's middleware and of
// examples/server, for handlers of your own that should answer the same way: values,
// errors of the form {"error":{"code":"…","message":"…"}}, and request bodies decoded with
// a 1 MiB limit. Its functions are safe for concurrent use.
package httpjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxBodyBytes is the largest request body Decode reads (1 MiB).
const MaxBodyBytes = 1 << 20

// Error is the body of every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type errorBody struct {
	Error Error `json:"error"`
}

// Write writes v as JSON with the given status. A value that cannot be encoded is a
// programming error; it is answered with a 500 internal_error body instead.
func Write(w http.ResponseWriter, status int, v any) { write(w, status, v, false) }

// WriteSecret is Write for an answer that carries a secret (an access or refresh token, an
// API key, a client secret, a TOTP secret, recovery codes): it adds Cache-Control:
// no-store and Pragma: no-cache (RFC 6749 section 5.1), so no browser or proxy cache keeps
// a copy, and wipes the buffer the answer was encoded in before it is reused.
func WriteSecret(w http.ResponseWriter, status int, v any) {
	NoStore(w.Header())
	write(w, status, v, true)
}

// encoder is a buffer and a json.Encoder writing into it, reused through encoders: an
// answer costs no allocation of its own for its encoding (json.Marshal makes a copy of
// its result, and appending the newline made a second).
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// encoders holds idle encoders. Like encoding/json's own pool of encode states, it is
// package state that no caller can observe: it changes no output, only allocations.
var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

// maxPooledAnswer is the largest buffer kept for reuse; a larger answer's goes to the
// garbage collector.
const maxPooledAnswer = 64 << 10

func write(w http.ResponseWriter, status int, v any, secret bool) {
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	body := internalErrorBody
	if err := e.enc.Encode(v); err == nil { // the same encoding as json.Marshal, and a newline
		body = e.buf.Bytes()
	} else {
		status = http.StatusInternalServerError
	}
	WriteEncoded(w, status, body)
	e.release(secret)
}

// WriteEncoded is Write for a body already encoded: one JSON value, ending in a newline
// as Write's answers do. It is for a hot route that builds its answer without reflection;
// body is sent as it is, so it must be valid JSON. The Content-Type and
// X-Content-Type-Options values it sets are shared by every answer: replace them (Set),
// never write into them.
//
// Unless the header has a Date already (a value, or nil to suppress it), WriteEncoded
// sets it, to what net/http would write: the time of the answer in http.TimeFormat
// (RFC 9110 section 6.6.1), to the second. The text is formatted once a second rather
// than by net/http for every answer, where it was the costliest step of a small JSON
// answer: 295-312 ns against 69-75 ns, which is the clock read (go test ./httpjson
// -bench Date). Like the other two, the value is shared: never write into it.
func WriteEncoded(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	// The keys are already canonical, and the values are shared by every answer, as gin
	// does (Header.Set allocates a slice per value, on every answer): each slice is
	// capped, so an Add appends to a copy, and net/http copies the header when the status
	// is written. Only an assignment to an element, h["Content-Type"][0] = … or to
	// h.Values("Content-Type")[0], which no code should make, would change them.
	h["Content-Type"], h["X-Content-Type-Options"] = jsonContentType, noSniff
	if _, ok := h["Date"]; !ok {
		h["Date"] = date(time.Now())
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// release returns e to encoders, first wiping what it encoded when that was a secret;
// a buffer grown past maxPooledAnswer is left to the garbage collector.
func (e *encoder) release(secret bool) {
	if secret {
		clear(e.buf.Bytes()[:e.buf.Cap()])
	}
	if e.buf.Cap() <= maxPooledAnswer {
		encoders.Put(e)
	}
}

// The values of the two headers of every answer (see WriteEncoded).
var jsonContentType, noSniff = []string{"application/json; charset=utf-8"}[:1:1], []string{"nosniff"}[:1:1]

// dateStamp is the Date header of the answers of one second.
type dateStamp struct {
	sec  int64    // Unix seconds
	vals []string // its http.TimeFormat text, capped as the other shared values
}

// dates is the stamp of the latest second an answer was written in. Like encoders, it is
// package state that no caller can observe: it holds the text net/http would format, and
// changes nothing but the cost.
var dates atomic.Pointer[dateStamp]

// date returns the Date header value of an answer written at now.
func date(now time.Time) []string {
	sec := now.Unix()
	if st := dates.Load(); st != nil && st.sec == sec {
		return st.vals
	}
	// A new second (or a step of the clock): format it. Goroutines that cross a second
	// together may each store theirs; each answers with its own, and a later answer that
	// finds another second's stamp formats its own again.
	st := &dateStamp{sec: sec, vals: []string{now.UTC().Format(http.TimeFormat)}[:1:1]}
	dates.Store(st)
	return st.vals
}

// internalErrorBody answers a value that cannot be encoded.
var internalErrorBody = []byte(`{"error":{"code":"internal_error","message":"internal error"}}` + "\n")

// NoStore sets the headers that keep an answer out of every cache: Cache-Control:
// no-store and Pragma: no-cache. WriteSecret uses it; a handler whose secret answer is not
// written by Write (a redirect carrying a code, say) calls it directly.
func NoStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// WriteError writes {"error":{"code":code,"message":message}} with the given status.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	Write(w, status, errorBody{Error: Error{Code: code, Message: message}})
}

// Errors that Decode returns; each wraps the underlying cause.
var (
	// ErrInvalidJSON means the body is not one JSON value of the expected shape.
	ErrInvalidJSON = errors.New("invalid JSON body")
	// ErrTooLarge means the body is larger than MaxBodyBytes.
	ErrTooLarge = errors.New("request body too large")
	// ErrUnsupportedMediaType means the request has a body whose Content-Type is not
	// JSON. Refusing it keeps a cross-site HTML form or a "simple" fetch (text/plain,
	// sent without a CORS preflight) from reaching a JSON route.
	ErrUnsupportedMediaType = errors.New("request body is not application/json")
)

// IsJSON reports whether a Content-Type header value names JSON: application/json or an
// application/…+json type, parameters (charset) allowed, case-insensitive.
func IsJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// Decode reads one JSON value from the body of r into dst, reading at most MaxBodyBytes.
// It returns an error wrapping ErrUnsupportedMediaType when the request declares a body
// (Content-Length above 0, or unknown) whose Content-Type is not JSON (see IsJSON),
// ErrTooLarge, or ErrInvalidJSON (malformed JSON, a value of the wrong type, or anything
// after the value). An empty body is ErrInvalidJSON.
func Decode(w http.ResponseWriter, r *http.Request, dst any) error {
	if r.ContentLength != 0 && !IsJSON(r.Header.Get("Content-Type")) {
		return fmt.Errorf("%w: send Content-Type: application/json", ErrUnsupportedMediaType)
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(dst); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: over %d bytes", ErrTooLarge, MaxBodyBytes)
		}
		return fmt.Errorf("%w: %s", ErrInvalidJSON, describe(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: over %d bytes", ErrTooLarge, MaxBodyBytes)
		}
		return fmt.Errorf("%w: unexpected data after the JSON value", ErrInvalidJSON)
	}
	return nil
}

// describe turns a decoding error into a message safe to show a client: it names the
// problem and the field, never echoes the body.
func describe(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of JSON"
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type))
		}
		return "body must be " + jsonKind(typ.Type)
	default:
		return "malformed JSON"
	}
}

// jsonKind names the JSON value that decodes into t ("an object", "a string", …): the Go
// type itself (main.generateRequest, struct { Email string … }) is an internal detail.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a string" // base64
		}
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "of another type"
	}
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// WriteDecodeError answers a Decode error: 415 unsupported_media_type, 413
// body_too_large or 400 invalid_json.
func WriteDecodeError(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrUnsupportedMediaType) {
		WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", err.Error())
		return
	}
	if errors.Is(err, ErrTooLarge) {
		WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", err.Error())
		return
	}
	WriteError(w, http.StatusBadRequest, "invalid_json", err.Error())
}
