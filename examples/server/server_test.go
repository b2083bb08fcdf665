package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
)

// syncBuffer is a log sink the server and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer runs the real server on a free loopback port until the test ends.
type testServer struct {
	t    *testing.T
	base string
	logs *syncBuffer
	stop func() error
}

func startServer(t *testing.T, env map[string]string, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	getenv := func(k string) string { return env[k] }
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), getenv, logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not start within 30s")
	}
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				t.Error("server did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return &testServer{t: t, base: "http://" + addr, logs: logs, stop: stop}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (s *testServer) do(method, path, body string, header http.Header, out any) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, raw)
		}
	}
	return resp
}

type errorAnswer struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestHealthzAndShutdown(t *testing.T) {
	s := startServer(t, nil)
	var health map[string]string
	if resp := s.do("GET", "/healthz", "", nil, &health); resp.StatusCode != 200 || health["status"] != "ok" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, health)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("graceful shutdown returned %v", err)
	}
	if !strings.Contains(s.logs.String(), `"msg":"shutting down"`) {
		t.Fatal("shutdown was not logged")
	}
}

func TestHealthzWithPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := startServer(t, map[string]string{"DATABASE_URL": dsn})
	var health map[string]string
	if resp := s.do("GET", "/healthz", "", nil, &health); resp.StatusCode != 200 || health["store"] != "postgres" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, health)
	}
}

func TestUnknownRouteAndWrongMethod(t *testing.T) {
	s := startServer(t, nil)
	var e errorAnswer
	if resp := s.do("GET", "/nope", "", nil, &e); resp.StatusCode != 404 || e.Error.Code != "not_found" {
		t.Fatalf("unknown route: %d %+v", resp.StatusCode, e)
	}
	resp := s.do("DELETE", "/healthz", "", nil, &e)
	if resp.StatusCode != 405 || e.Error.Code != "method_not_allowed" || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("wrong method: %d %+v Allow=%q", resp.StatusCode, e, resp.Header.Get("Allow"))
	}
}

func TestRequestLogHasNoQuery(t *testing.T) {
	s := startServer(t, nil)
	s.do("GET", "/healthz?token=secret-value", "", nil, nil)
	_ = s.stop()
	logs := s.logs.String()
	if !strings.Contains(logs, `"path":"/healthz"`) || strings.Contains(logs, "secret-value") {
		t.Fatalf("request log: %s", logs)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"-postgres-max-conns", "0"}, {"extra"}} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), "flags") {
			t.Fatalf("run %q: %v, want a flags error", args, err)
		}
	}
}

// TestOversizedBodyIs413Everywhere: the contract answers a body over 1 MiB with 413
// on every route, including those that read no body (logout, cancel, the cron).
func TestOversizedBodyIs413Everywhere(t *testing.T) {
	s := startServer(t, authEnv())
	reg := s.register("big-body@example.com")
	big := strings.Repeat("x", httpjson.MaxBodyBytes+1)
	for _, path := range []string{"/api/auth/logout", "/api/subscriptions/cancel", "/api/cron/process-overage"} {
		var e errorAnswer
		if resp := s.do("POST", path, big, bearer(reg.AccessToken), &e); resp.StatusCode != 413 || e.Error.Code != "body_too_large" {
			t.Fatalf("%s with a body over 1 MiB: %d %+v", path, resp.StatusCode, e)
		}
	}
	// The refused logout did not end the session.
	if resp := s.do("POST", "/api/auth/logout", "", bearer(reg.AccessToken), nil); resp.StatusCode != 204 {
		t.Fatalf("logout after the refused one: %d", resp.StatusCode)
	}
	// Unknown routes and wrong methods keep their answers.
	if resp := s.do("POST", "/nope", big, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("unknown route with a big body: %d", resp.StatusCode)
	}
	if resp := s.do("PUT", "/api/auth/logout", big, nil, nil); resp.StatusCode != 405 {
		t.Fatalf("wrong method with a big body: %d", resp.StatusCode)
	}
}
