package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPanicBeforeTheResponseIsA500WithoutInternals(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := observeRequests(newRequestLog(&logs), nil)(recoverPanics(log)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret internal detail")
	})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), `"internal_error"`) || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("answer %d %s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "handler panicked") || !strings.Contains(logs.String(), `"status":500`) {
		t.Fatalf("the panic and its 500 were not logged: %s", logs.String())
	}
}

func TestPanicAfterTheResponseStartedAbortsIt(t *testing.T) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h := observeRequests(newRequestLog(io.Discard), nil)(recoverPanics(log)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"partial":`))
		panic("half way")
	})))
	w := httptest.NewRecorder()
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler so net/http drops the connection", v)
		}
		if strings.Contains(w.Body.String(), "internal_error") {
			t.Fatalf("a second body was appended: %s", w.Body)
		}
	}()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
}
