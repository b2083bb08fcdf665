package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
)

type generatedAnswer struct {
	ID                 string    `json:"id"`
	Key                string    `json:"key"`
	Name               string    `json:"name"`
	Scopes             []string  `json:"scopes"`
	RateLimitPerMinute int       `json:"rate_limit_per_minute"`
	CreatedAt          time.Time `json:"created_at"`
}

func apiKey(key string) http.Header { return http.Header{"Authorization": {"ApiKey " + key}} }

// generate creates a key for the user with the access token tok.
func (s *testServer) generate(tok, body string) generatedAnswer {
	s.t.Helper()
	var out generatedAnswer
	if resp := s.do("POST", "/api/keys/generate", body, bearer(tok), &out); resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("generate %s: %d", body, resp.StatusCode)
	}
	return out
}

// keyFlow is the whole contract of the key routes, run against each store and limiter.
func keyFlow(t *testing.T, s *testServer) {
	ann := s.register("ann-" + strings.ToLower(string(ecoid.New(ecoid.Event))[16:]) + "@example.com")
	bob := s.register("bob-" + strings.ToLower(string(ecoid.New(ecoid.Event))[16:]) + "@example.com")

	// generate: 201 with the plain key, shown once.
	before := time.Now().Add(-time.Second)
	g := s.generate(ann.AccessToken, `{"name":"ci","scopes":["read","write"],"rate_limit_per_minute":3}`)
	if _, err := apikey.Parse(g.Key); err != nil || !strings.HasPrefix(g.Key, g.ID+".") || g.Name != "ci" ||
		strings.Join(g.Scopes, ",") != "read,write" || g.RateLimitPerMinute != 3 || g.CreatedAt.Before(before) {
		t.Fatalf("generate: %+v (%v)", g, err)
	}
	def := s.generate(ann.AccessToken, `{"name":"default limit"}`)
	if def.RateLimitPerMinute != 60 || def.Scopes == nil || len(def.Scopes) != 0 {
		t.Fatalf("defaults: %+v", def)
	}

	// list: own keys only, never the secret.
	var list struct {
		Keys []map[string]any `json:"keys"`
	}
	resp := s.do("GET", "/api/keys/list", "", bearer(ann.AccessToken), &list)
	if resp.StatusCode != 200 || len(list.Keys) != 2 || list.Keys[0]["id"] != g.ID || list.Keys[0]["status"] != "active" {
		t.Fatalf("list: %d %+v", resp.StatusCode, list)
	}
	for _, k := range list.Keys {
		for field, v := range k {
			if s, ok := v.(string); ok && strings.Contains(s, ".") && len(s) > 60 || strings.Contains(field, "hash") || field == "key" {
				t.Fatalf("list shows a secret: %s=%v", field, v)
			}
		}
	}
	if resp := s.do("GET", "/api/keys/list", "", bearer(bob.AccessToken), &list); resp.StatusCode != 200 || len(list.Keys) != 0 {
		t.Fatalf("bob's list: %+v", list)
	}

	// ping: 200 with the rate-limit headers, until the key's own limit.
	for i := 0; i < 3; i++ {
		var pong map[string]any
		resp := s.do("GET", "/api/v1/ping", "", apiKey(g.Key), &pong)
		h := resp.Header
		if resp.StatusCode != 200 || pong["ok"] != true || pong["key_id"] != g.ID || h.Get("X-RateLimit-Limit") != "3" ||
			h.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) || h.Get("RateLimit-Policy") != `"default";q=3;w=60` {
			t.Fatalf("ping %d: %d %v %v", i+1, resp.StatusCode, pong, h)
		}
		reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
		if err != nil || reset < time.Now().Unix() || reset > time.Now().Add(61*time.Second).Unix() {
			t.Fatalf("X-RateLimit-Reset %q", h.Get("X-RateLimit-Reset"))
		}
	}
	var e errorAnswer
	resp = s.do("GET", "/api/v1/ping", "", apiKey(g.Key), &e)
	if retry, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || e.Error.Code != "rate_limited" || retry < 1 || retry > 20 ||
		resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("fourth ping: %d %+v %v", resp.StatusCode, e, resp.Header)
	}
	// Bearer works too; a key without the read scope is 403.
	if resp := s.do("GET", "/api/v1/ping", "", http.Header{"Authorization": {"Bearer " + def.Key}}, nil); resp.StatusCode != 403 {
		t.Fatalf("ping without the read scope: %d", resp.StatusCode)
	}

	// 401 for missing, malformed and unknown keys. The typo changes the last character (a
	// key that already ends in "x" must not stay valid: 1 run in 62 did).
	typo := g.Key[:len(g.Key)-1] + "x"
	if strings.HasSuffix(g.Key, "x") {
		typo = g.Key[:len(g.Key)-1] + "y"
	}
	for _, h := range []http.Header{nil, apiKey("nonsense"), apiKey(typo), {"Authorization": {"Basic Zm9vOmJhcg=="}}} {
		if resp := s.do("GET", "/api/v1/ping", "", h, &e); resp.StatusCode != 401 || !strings.HasSuffix(e.Error.Code, "_api_key") {
			t.Fatalf("ping with %v: %d %+v", h, resp.StatusCode, e)
		}
	}

	// rotate: same ID, new key; the old one is dead at once. Bob cannot touch Ann's keys.
	var rot map[string]string
	if resp := s.do("POST", "/api/keys/rotate", `{"id":"`+def.ID+`"}`, bearer(bob.AccessToken), &e); resp.StatusCode != 404 || e.Error.Code != "key_not_found" {
		t.Fatalf("bob rotates ann's key: %d %+v", resp.StatusCode, e)
	}
	resp = s.do("POST", "/api/keys/rotate", `{"id":"`+def.ID+`"}`, bearer(ann.AccessToken), &rot)
	if resp.StatusCode != 200 || rot["id"] != def.ID || rot["key"] == def.Key || !strings.HasPrefix(rot["key"], def.ID+".") {
		t.Fatalf("rotate: %d %+v", resp.StatusCode, rot)
	}
	if resp := s.do("GET", "/api/v1/ping", "", apiKey(def.Key), &e); resp.StatusCode != 401 || e.Error.Code != "invalid_api_key" {
		t.Fatalf("old key after rotation: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("GET", "/api/v1/ping", "", apiKey(rot["key"]), nil); resp.StatusCode != 403 { // valid, still no read scope
		t.Fatalf("new key after rotation: %d", resp.StatusCode)
	}

	// revoke: bob gets 404; ann's revocation kills the key at once.
	if resp := s.do("POST", "/api/keys/revoke", `{"id":"`+g.ID+`"}`, bearer(bob.AccessToken), &e); resp.StatusCode != 404 || e.Error.Code != "key_not_found" {
		t.Fatalf("bob revokes ann's key: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/keys/revoke", `{"id":"`+g.ID+`"}`, bearer(ann.AccessToken), nil); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp := s.do("GET", "/api/v1/ping", "", apiKey(g.Key), &e); resp.StatusCode != 401 || e.Error.Code != "revoked_api_key" {
		t.Fatalf("ping after revoke: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/keys/rotate", `{"id":"`+g.ID+`"}`, bearer(ann.AccessToken), &e); resp.StatusCode != 409 || e.Error.Code != "key_revoked" {
		t.Fatalf("rotate a revoked key: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/keys/revoke", `{"id":"`+string(ecoid.New(ecoid.APIKey))+`"}`, bearer(ann.AccessToken), &e); resp.StatusCode != 404 {
		t.Fatalf("revoke an unknown key: %d", resp.StatusCode)
	}
}

func TestKeysInMemory(t *testing.T) {
	s := startServer(t, authEnv())
	keyFlow(t, s)
	if !strings.Contains(s.logs.String(), `"limiter":"memory"`) {
		t.Fatal("the in-process limiter was not chosen")
	}
}

func TestKeysWithPostgres(t *testing.T) {
	s := startServer(t, authEnv("DATABASE_URL", testenv.Postgres(t)))
	keyFlow(t, s)
	if !strings.Contains(s.logs.String(), `"limiter":"postgres"`) {
		t.Fatal("the Postgres limiter was not chosen")
	}
}

func TestKeysWithRedis(t *testing.T) {
	s := startServer(t, authEnv(), "-redis", testenv.Redis(t))
	keyFlow(t, s)
	if !strings.Contains(s.logs.String(), `"limiter":"redis"`) {
		t.Fatal("the Redis limiter was not chosen")
	}
}

func TestKeysUnreachableRedis(t *testing.T) {
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-redis", "127.0.0.1:1"}, func(k string) string { return authEnv()[k] }, &syncBuffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "redis") {
		t.Fatalf("start with an unreachable Redis: %v", err)
	}
}

func TestKeysBadInput(t *testing.T) {
	s := startServer(t, authEnv())
	ann := s.register("ann@example.com")
	var e errorAnswer
	for body, code := range map[string]string{
		`{"scopes":["read"]}`:                              "invalid_name",
		`{"name":"  "}`:                                    "invalid_name",
		`{"name":"x","rate_limit_per_minute":0}`:           "invalid_rate_limit_per_minute",
		`{"name":"x","rate_limit_per_minute":1000001}`:     "invalid_rate_limit_per_minute",
		`{"name":"x","rate_limit_per_minute":-5}`:          "invalid_rate_limit_per_minute",
		`{"name":"x","rate_limit_per_minute":"many"}`:      "invalid_json",
		`{"name":"x","rate_limit_per_minute":1.5}`:         "invalid_json",
		`{"name":"x","scopes":["Read Write"]}`:             "invalid_scopes",
		`{"name":"x","scopes":"read"}`:                     "invalid_json",
		`{"name":"x","expires_at":"2000-01-01T00:00:00Z"}`: "invalid_expires_at",
		`{"name":"x","expires_at":"2263-01-01T00:00:00Z"}`: "invalid_expires_at", // past UnixNano: was dead at birth
		`{"name":"x","expires_at":"9999-12-31T23:59:59Z"}`: "invalid_expires_at",
		`{"name":"x","expires_at":"tomorrow"}`:             "invalid_json",
		`{"name":`:                                         "invalid_json",
		``:                                                 "invalid_json",
		`[]`:                                               "invalid_json",
	} {
		if resp := s.do("POST", "/api/keys/generate", body, bearer(ann.AccessToken), &e); resp.StatusCode != 400 || e.Error.Code != code {
			t.Errorf("generate %s: %d %+v, want 400 %s", body, resp.StatusCode, e, code)
		}
	}
	for _, body := range []string{`{}`, `{"id":""}`, `{"id":"eco_usr_0Ub2cYzA9fKq3XwT7mNpLs"}`, `{"id":"nope"}`, `{"id":5}`} {
		for _, path := range []string{"/api/keys/revoke", "/api/keys/rotate"} {
			if resp := s.do("POST", path, body, bearer(ann.AccessToken), &e); resp.StatusCode != 400 {
				t.Errorf("%s %s: %d %+v", path, body, resp.StatusCode, e)
			}
		}
	}
	k := s.generate(ann.AccessToken, `{"name":"x"}`)
	if resp := s.do("POST", "/api/keys/rotate", `{"id":"`+k.ID+`","grace_seconds":-1}`, bearer(ann.AccessToken), &e); resp.StatusCode != 400 || e.Error.Code != "invalid_grace" {
		t.Errorf("negative grace: %d %+v", resp.StatusCode, e)
	}
	big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
	if resp := s.do("POST", "/api/keys/generate", big, bearer(ann.AccessToken), &e); resp.StatusCode != 413 {
		t.Errorf("2 MiB body: %d", resp.StatusCode)
	}
	// Every key route needs a signed-in user; the wrong method is 405.
	for _, route := range []string{"POST /api/keys/generate", "GET /api/keys/list", "POST /api/keys/revoke", "POST /api/keys/rotate"} {
		method, path, _ := strings.Cut(route, " ")
		if resp := s.do(method, path, `{}`, nil, &e); resp.StatusCode != 401 {
			t.Errorf("%s without a user: %d", route, resp.StatusCode)
		}
	}
	if resp := s.do("POST", "/api/v1/ping", "", nil, &e); resp.StatusCode != 405 {
		t.Errorf("POST /api/v1/ping: %d", resp.StatusCode)
	}
	// An API key is not a user token and the other way round.
	if resp := s.do("GET", "/api/keys/list", "", http.Header{"Authorization": {"Bearer " + k.Key}}, nil); resp.StatusCode != 401 {
		t.Errorf("an API key as a user token: %d", resp.StatusCode)
	}
	if resp := s.do("GET", "/api/v1/ping", "", bearer(ann.AccessToken), nil); resp.StatusCode != 401 {
		t.Errorf("a user token as an API key: %d", resp.StatusCode)
	}
}

func TestPingIsExactUnderConcurrency(t *testing.T) {
	s := startServer(t, authEnv())
	ann := s.register("ann@example.com")
	k := s.generate(ann.AccessToken, `{"name":"x","scopes":["read"],"rate_limit_per_minute":10}`)
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- s.do("GET", "/api/v1/ping", "", apiKey(k.Key), nil).StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[200] != 10 || count[429] != 30 {
		t.Fatalf("40 concurrent pings under a limit of 10: %v", count)
	}
}

// keysCapAndPages: 100 live keys per user (409 too_many_keys beyond, also for parallel
// requests), and the list in pages of at most 100 with next_cursor.
func keysCapAndPages(t *testing.T, s *testServer) {
	ann := s.register("ann-" + strings.ToLower(string(ecoid.New(ecoid.Event))[16:]) + "@example.com")
	tok := ann.AccessToken
	var first string
	for i := range apikey.DefaultMaxKeysPerOwner - 5 {
		k := s.generate(tok, `{"name":"k`+strconv.Itoa(i)+`"}`)
		if i == 0 {
			first = k.ID
		}
	}
	// 20 at once for the last 5 places: exactly 5 win.
	var wg sync.WaitGroup
	codes := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e errorAnswer
			resp := s.do("POST", "/api/keys/generate", `{"name":"race`+strconv.Itoa(i)+`"}`, bearer(tok), &e)
			codes <- strconv.Itoa(resp.StatusCode) + " " + e.Error.Code
		}()
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for c := range codes {
		count[c]++
	}
	if count["201 "] != 5 || count["409 too_many_keys"] != 15 {
		t.Fatalf("20 parallel generates for the last 5 places: %v", count)
	}
	if resp := s.do("POST", "/api/keys/revoke", `{"id":"`+first+`"}`, bearer(tok), nil); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	s.generate(tok, `{"name":"after revoke"}`) // a revoked key frees its place

	type page struct {
		Keys []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"keys"`
		NextCursor string `json:"next_cursor"`
	}
	var p page
	if resp := s.do("GET", "/api/keys/list", "", bearer(tok), &p); resp.StatusCode != 200 || len(p.Keys) != 100 || p.NextCursor != p.Keys[99].ID || p.Keys[0].ID != first || p.Keys[0].Status != "revoked" {
		t.Fatalf("first page: %d, %d keys, next %q", resp.StatusCode, len(p.Keys), p.NextCursor)
	}
	var last page
	if resp := s.do("GET", "/api/keys/list?cursor="+p.NextCursor, "", bearer(tok), &last); resp.StatusCode != 200 || len(last.Keys) != 1 || last.NextCursor != "" {
		t.Fatalf("second page: %d, %+v", resp.StatusCode, last)
	}
	seen := map[string]bool{}
	for cursor, pages := "", 0; ; pages++ {
		var q page
		if resp := s.do("GET", "/api/keys/list?limit=30&cursor="+cursor, "", bearer(tok), &q); resp.StatusCode != 200 || len(q.Keys) > 30 || pages > 4 {
			t.Fatalf("page %d of 30: %d, %d keys", pages, resp.StatusCode, len(q.Keys))
		}
		for _, k := range q.Keys {
			seen[k.ID] = true
		}
		if cursor = q.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 101 {
		t.Fatalf("pages of 30 showed %d distinct keys, want 101", len(seen))
	}
	bob := s.register("bob-" + strings.ToLower(string(ecoid.New(ecoid.Event))[16:]) + "@example.com")
	var e errorAnswer
	for query, code := range map[string]string{
		"limit=0": "invalid_limit", "limit=101": "invalid_limit", "limit=x": "invalid_limit",
		"cursor=nope": "invalid_cursor", "cursor=" + string(ecoid.New(ecoid.User)): "invalid_cursor",
		"cursor=" + string(ecoid.New(ecoid.APIKey)): "invalid_cursor",
		"cursor=" + first: "invalid_cursor", // ann's key, asked by bob
	} {
		if resp := s.do("GET", "/api/keys/list?"+query, "", bearer(bob.AccessToken), &e); resp.StatusCode != 400 || e.Error.Code != code {
			t.Errorf("list?%s: %d %+v, want 400 %s", query, resp.StatusCode, e, code)
		}
	}
}

func TestKeysCapAndPagesInMemory(t *testing.T) {
	keysCapAndPages(t, startServer(t, authEnv()))
}

func TestKeysCapAndPagesWithPostgres(t *testing.T) {
	keysCapAndPages(t, startServer(t, authEnv("DATABASE_URL", testenv.Postgres(t))))
}
