package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// slogLine is the line the server's slog JSON handler writes for the same request.
func slogLine(t testing.TB, at time.Time, method, path string, status, bytes int, took time.Duration) string {
	var out strings.Builder
	h := slog.NewJSONHandler(&out, nil)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	rec := slog.NewRecord(at, level, "request", 0)
	rec.AddAttrs(slog.String("method", method), slog.String("path", path), slog.Int("status", status),
		slog.Int("bytes", bytes), slog.Duration("duration", took))
	if err := h.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// checkSameAsSlog compares requestLog's line with slog's, as decoded JSON: the escaping of
// a character may differ (both valid JSON), what a log reader gets may not.
func checkSameAsSlog(t testing.TB, at time.Time, method, path string, status, bytes int, took time.Duration) {
	var out strings.Builder
	l := newRequestLog(&out)
	r := httptest.NewRequest("GET", "/", nil)
	r.Method, r.URL = method, &url.URL{Path: path}
	l.log(at, r, status, bytes, took)
	got, want := out.String(), slogLine(t, at, method, path, status, bytes, took)
	if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Fatalf("not one line: %q", got)
	}
	var g, w map[string]any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("not JSON: %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("request log line\n%s differs from slog's\n%s", got, want)
	}
}

func TestRequestLogWritesSlogsLine(t *testing.T) {
	at := time.Date(2026, 12, 3, 11, 28, 36, 123456789, time.FixedZone("CET", 3600))
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/v1/ping", 200}, {"POST", "/api/auth/login", 401}, {"GET", "/x", 503},
		{"GET", `/a"b\c`, 404}, {"GET", "/new\nline\ttab\x00\x1f", 404}, {"GET", "/caf\u00e9/\u2028/\u2029", 404},
		{"GET", "/bad-utf8-\xff\xfe", 404}, {"GET", "/<script>&", 404}, {"GET", "", 400},
	} {
		checkSameAsSlog(t, at, c.method, c.path, c.status, 52, 41250*time.Nanosecond)
	}
	if strings.Contains(slogLine(t, at, "GET", "/", 200, 0, 0), "ERROR") {
		t.Fatal("slogLine is wrong")
	}
}

// The request log's time is time.RFC3339Nano's text, for instants of one second (the
// kept stamp), of the next, and in other zones and years.
func TestRequestLogTimeIsRFC3339Nano(t *testing.T) {
	l := newRequestLog(io.Discard)
	cet := time.FixedZone("CET", 3600)
	odd := time.FixedZone("odd", -(9*3600 + 30*60 + 17))
	base := time.Date(2026, 12, 3, 11, 28, 36, 0, time.UTC)
	var times []time.Time
	for _, ns := range []int{0, 1, 10, 120_000_000, 123_456_789, 999_999_999, 500} {
		times = append(times, base.Add(time.Duration(ns)), base.Add(time.Second+time.Duration(ns)))
	}
	for _, at := range append([]time.Time{}, times...) {
		times = append(times, at.In(cet), at.In(odd), at.In(time.Local), at.AddDate(-2000, 0, 0), at.AddDate(8000, 0, 0))
	}
	for _, at := range times {
		got := string(l.appendTime(nil, at))
		if want := at.Format(time.RFC3339Nano); got != want {
			t.Fatalf("%v: %q, want %q", at, got, want)
		}
	}
}

// FuzzRequestLog holds the request log to slog's line for any method and path a client
// can send (and more: net/http refuses some of these before a handler runs).
func FuzzRequestLog(f *testing.F) {
	f.Add("GET", "/api/v1/ping", 200, 52, int64(41250))
	f.Add("DELETE", "/api/keys/eco_api_x", 204, 0, int64(1))
	f.Fuzz(func(t *testing.T, method, path string, status, bytes int, took int64) {
		checkSameAsSlog(t, time.Unix(1_800_000_000, 5), method, path, status, bytes, time.Duration(took))
	})
}
