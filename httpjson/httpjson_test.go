package httpjson

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type payload struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func decode(body string) (payload, error, *httptest.ResponseRecorder) {
	var p payload
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
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
