package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/internal/testenv"
)

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Failed []string          `json:"failed"`
}

// getReady asks h for /readyz and decodes the answer.
func getReady(t *testing.T, h http.Handler) (int, readyBody, errorAnswer) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var b readyBody
	var e errorAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("readyz answer is not JSON: %v: %s", err, rec.Body)
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return rec.Code, b, e
}

func TestReadyzInMemoryWithMailDir(t *testing.T) {
	s := startServer(t, map[string]string{"NEXUS_BCRYPT_COST": "4"})
	var b readyBody
	if resp := s.do("GET", "/readyz", "", nil, &b); resp.StatusCode != 200 || b.Status != "ok" ||
		b.Checks["store"] != "ok" || b.Checks["limiter"] != "ok" || b.Checks["mailer"] != "ok" {
		t.Fatalf("readyz: %d %+v", resp.StatusCode, b)
	}
	// The mail directory disappears: the mailer is named, /healthz still says alive.
	if err := os.RemoveAll(s.mailDir); err != nil {
		t.Fatal(err)
	}
	var e errorAnswer
	resp := s.do("GET", "/readyz", "", nil, &e)
	s.do("GET", "/readyz", "", nil, &b)
	if resp.StatusCode != 503 || e.Error.Code != "not_ready" || !slices.Equal(b.Failed, []string{"mailer"}) ||
		b.Checks["store"] != "ok" {
		t.Fatalf("readyz without the mail dir: %d %+v %+v", resp.StatusCode, e, b)
	}
	if resp := s.do("GET", "/healthz", "", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

func TestReadyzNamesTheFailingDependency(t *testing.T) {
	failing := errors.New("limiter store: connection refused")
	h := healthHandlers{log: authTestLogger(), timeout: 20 * time.Millisecond, checks: []check{
		{"store", func(context.Context) error { return nil }},
		{"limiter", func(context.Context) error { return failing }},
		// A dependency that hangs is cut at the deadline and named too.
		{"mailer", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	}}
	rt := newRouter()
	h.register(rt)
	code, b, e := getReady(t, rt)
	if code != 503 || e.Error.Code != "not_ready" || !slices.Equal(b.Failed, []string{"limiter", "mailer"}) ||
		b.Checks["store"] != "ok" || b.Checks["limiter"] != "fail" {
		t.Fatalf("readyz: %d %+v %+v", code, b, e)
	}
}

func TestReadyzClosedRedisNamesTheLimiter(t *testing.T) {
	addr := testenv.Redis(t)
	env := map[string]string{"NEXUS_BCRYPT_COST": "4"}
	cfg, err := parseConfig([]string{"-redis", addr}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := newServices(context.Background(), cfg, authTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	if a.redis == nil {
		t.Fatal("the server did not use Redis")
	}
	h := a.handler()
	if code, b, _ := getReady(t, h); code != 200 || b.Checks["limiter"] != "ok" {
		t.Fatalf("readyz with Redis: %d %+v", code, b)
	}
	_ = a.redis.Close()
	code, b, _ := getReady(t, h)
	if code != 503 || !slices.Equal(b.Failed, []string{"limiter"}) {
		t.Fatalf("readyz with a closed Redis client: %d %+v", code, b)
	}
}

func TestReadyzWithPostgres(t *testing.T) {
	s := startServer(t, map[string]string{"NEXUS_BCRYPT_COST": "4", "DATABASE_URL": testenv.Postgres(t)})
	var b readyBody
	if resp := s.do("GET", "/readyz", "", nil, &b); resp.StatusCode != 200 || b.Checks["store"] != "ok" || b.Checks["limiter"] != "ok" {
		t.Fatalf("readyz with Postgres: %d %+v", resp.StatusCode, b)
	}
}
