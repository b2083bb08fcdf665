package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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
	t       *testing.T
	base    string
	logs    *syncBuffer
	stop    func() error
	mailDir string // NEXUS_MAIL_DIR: a fresh directory unless env names one ("" for no mail)
}

func startServer(t *testing.T, env map[string]string, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	mailDir, ok := env["NEXUS_MAIL_DIR"]
	if !ok {
		mailDir = t.TempDir()
	}
	getenv := func(k string) string {
		if k == "NEXUS_MAIL_DIR" {
			return mailDir
		}
		return env[k]
	}
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
	return &testServer{t: t, base: "http://" + addr, logs: logs, stop: stop, mailDir: mailDir}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (s *testServer) do(method, path, body string, header http.Header, out any) *http.Response {
	s.t.Helper()
	resp, raw := s.send(method, path, body, header)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, raw)
		}
	}
	return resp
}

// send makes a request of the test server and returns its answer, the body read.
func (s *testServer) send(method, path, body string, header http.Header) (*http.Response, []byte) {
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
	return resp, raw
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
	if resp.StatusCode != 405 || e.Error.Code != "method_not_allowed" || resp.Header.Get("Allow") != "GET, HEAD" {
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

func TestHelpPrintsEveryFlagAndVariable(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{arg}, func(string) string { return "postgres://u:hunter2@db/x" }, &out, nil)
		if !errors.Is(err, errHelp) {
			t.Fatalf("%s: %v, want errHelp (main exits 0)", arg, err)
		}
		help := out.String()
		for _, name := range []string{"-addr", "-postgres", "-postgres-max-conns", "-redis", `(default "127.0.0.1:8080")`, "(default 20)"} {
			if !strings.Contains(help, name) {
				t.Errorf("%s does not mention %s:\n%s", arg, name, help)
			}
		}
		for _, v := range envVars {
			if !strings.Contains(help, v.name) || !strings.Contains(help, v.def) {
				t.Errorf("%s does not list %s with its default %q", arg, v.name, v.def)
			}
		}
		if strings.Contains(help, "hunter2") {
			t.Fatalf("-h printed a value from the environment: %s", help)
		}
	}
}

// TestEveryVariableIsDocumented: each getenv("…") of the server's code has a row in
// envVars, so -h stays complete as variables are added.
func TestEveryVariableIsDocumented(t *testing.T) {
	listed := map[string]bool{}
	for _, v := range envVars {
		listed[v.name] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`getenv\("([A-Z0-9_]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			if !listed[m[1]] {
				t.Errorf("%s reads %s, which envVars (and so -h) does not list", f, m[1])
			}
		}
	}
}

func TestStartupLogSummarisesConfigWithoutSecrets(t *testing.T) {
	env := authEnv("NEXUS_ADMINS", "a@example.com,b@example.com", "STRIPE_SECRET_KEY", "sk_test_supersecret",
		"STRIPE_WEBHOOK_SECRET", "whsec_supersecret", "STRIPE_API_BASE", "http://127.0.0.1:1")
	s := startServer(t, env)
	_ = s.stop()
	var line map[string]any
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"listening"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]any{"store": "memory", "limiter": "memory", "billing": true, "stripe_webhooks": true,
		"jwt_algorithm": "HS256", "jwt_key_from_env": true, "mailer": "dir", "admins": 2.0}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("start-up log %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
	for _, secret := range []string{"supersecret", env["NEXUS_JWT_SECRET"], "a@example.com"} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatalf("the log shows %q: %s", secret, s.logs.String())
		}
	}
}

// TestREADMEListsEveryRoute: the README's route table has a row for every route the
// server registers (in EdDSA mode, which adds the OIDC routes), so it stays complete as
// routes are added.
func TestREADMEListsEveryRoute(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "## HTTP API of examples/server")
	if !ok {
		t.Fatal("README.md has no \"## HTTP API of examples/server\" section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	cfg, err := parseConfig(nil, func(k string) string { return ssoEnv()[k] })
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServices(context.Background(), cfg, authTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	patterns := s.routes().Patterns()
	if len(patterns) < 30 {
		t.Fatalf("only %d routes registered: %v", len(patterns), patterns)
	}
	for _, p := range patterns {
		if !strings.Contains(table, "`"+p+"`") && !strings.Contains(table, "`"+p+"?") {
			t.Errorf("README's route table has no row for `%s` (section \"HTTP API of examples/server\")", p)
		}
	}
}
