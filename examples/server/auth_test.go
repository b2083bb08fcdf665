package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
)

// authEnv keeps bcrypt cheap in tests.
func authEnv(extra ...string) map[string]string {
	env := map[string]string{"NEXUS_BCRYPT_COST": "4", "NEXUS_JWT_SECRET": "test-secret-test-secret-test-secret!"}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

type sessionAnswer struct {
	User struct {
		ID       string `json:"id"`
		Email    string `json:"email"`
		FullName string `json:"full_name"`
	} `json:"user"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
}

func (s *testServer) register(email string) sessionAnswer {
	s.t.Helper()
	var out sessionAnswer
	resp := s.do("POST", "/api/auth/register", `{"email":"`+email+`","password":"Correct-Horse-9","full_name":"Ann"}`, jsonHeader(), &out)
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("register %s: %d", email, resp.StatusCode)
	}
	return out
}

func TestAuthRegisterLoginRefreshLogout(t *testing.T) {
	s := startServer(t, authEnv())
	var reg sessionAnswer
	resp := s.do("POST", "/api/auth/register", `{"email":"Ann@Example.com","password":"Correct-Horse-9","full_name":"Ann Lee"}`, jsonHeader(), &reg)
	if resp.StatusCode != 201 || reg.User.Email != "ann@example.com" || reg.User.FullName != "Ann Lee" || reg.AccessToken == "" || reg.RefreshToken == "" {
		t.Fatalf("register: %d %+v", resp.StatusCode, reg)
	}
	if _, err := ecoid.Parse(reg.User.ID); err != nil {
		t.Fatalf("user id %q: %v", reg.User.ID, err)
	}
	cookies := map[string]*http.Cookie{}
	for _, c := range resp.Cookies() {
		cookies[c.Name] = c
	}
	if a, r := cookies["nexus_access"], cookies["nexus_refresh"]; a == nil || r == nil || !a.HttpOnly || !a.Secure || a.SameSite != http.SameSiteLaxMode ||
		r.Path != "/api/auth/refresh" || a.Value != reg.AccessToken || r.Value != reg.RefreshToken {
		t.Fatalf("cookies: %+v %+v", a, r)
	}

	var login sessionAnswer
	resp = s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, jsonHeader(), &login)
	if resp.StatusCode != 200 || login.User.ID != reg.User.ID || login.AccessToken == "" {
		t.Fatalf("login: %d %+v", resp.StatusCode, login)
	}

	// Refresh through the body, then through the cookie.
	var pair map[string]string
	resp = s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+login.RefreshToken+`"}`, jsonHeader(), &pair)
	if resp.StatusCode != 200 || pair["access_token"] == "" || pair["refresh_token"] == "" || pair["refresh_token"] == login.RefreshToken {
		t.Fatalf("refresh: %d %v", resp.StatusCode, pair)
	}
	var pair2 map[string]string
	resp = s.do("POST", "/api/auth/refresh", "", http.Header{"Cookie": {"nexus_refresh=" + pair["refresh_token"]}}, &pair2)
	if resp.StatusCode != 200 || pair2["refresh_token"] == "" {
		t.Fatalf("refresh by cookie: %d %v", resp.StatusCode, pair2)
	}

	// Logout needs a user, revokes the session and clears the cookies.
	var e errorAnswer
	if resp := s.do("POST", "/api/auth/logout", "", nil, &e); resp.StatusCode != 401 || e.Error.Code != "unauthorized" {
		t.Fatalf("logout without token: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/auth/logout", "", bearer("garbage"), &e); resp.StatusCode != 401 {
		t.Fatalf("logout with a bad token: %d", resp.StatusCode)
	}
	resp = s.do("POST", "/api/auth/logout", "", bearer(pair2["access_token"]), nil)
	if resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge >= 0 {
			t.Fatalf("cookie %s not cleared", c.Name)
		}
	}
	e = errorAnswer{}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+pair2["refresh_token"]+`"}`, jsonHeader(), &e); resp.StatusCode != 401 || e.Error.Code != "invalid_token" {
		t.Fatalf("refresh after logout: %d %+v", resp.StatusCode, e)
	}
	// The registration's own session is still alive.
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+reg.RefreshToken+`"}`, jsonHeader(), nil); resp.StatusCode != 200 {
		t.Fatalf("other session: %d", resp.StatusCode)
	}
}

func TestAuthRegisterErrors(t *testing.T) {
	s := startServer(t, authEnv())
	s.register("taken@example.com")
	cases := []struct {
		body, code string
		status     int
	}{
		{`{"email":"TAKEN@example.com","password":"Correct-Horse-9"}`, "email_taken", 409},
		{`{"email":"Ann <a@example.com>","password":"Correct-Horse-9"}`, "invalid_email", 400},
		{`{"email":"","password":"Correct-Horse-9"}`, "invalid_email", 400},
		{`{"email":"weak@example.com","password":"short"}`, "weak_password", 400},
		{`{"email":"long@example.com","password":"` + strings.Repeat("Aa1!", 19) + `"}`, "weak_password", 400},
		{`{"email":"n@example.com","password":"Correct-Horse-9","full_name":"` + strings.Repeat("n", 201) + `"}`, "invalid_full_name", 400},
		{`{"email":`, "invalid_json", 400},
		{`{"email":5}`, "invalid_json", 400},
		{``, "invalid_json", 400},
	}
	for _, c := range cases {
		var e errorAnswer
		resp := s.do("POST", "/api/auth/register", c.body, jsonHeader(), &e)
		if resp.StatusCode != c.status || e.Error.Code != c.code {
			t.Errorf("%.60s: %d %+v, want %d %s", c.body, resp.StatusCode, e, c.status, c.code)
		}
	}
	var e errorAnswer
	s.do("POST", "/api/auth/register", `{"email":"weak@example.com","password":"alllowercase"}`, jsonHeader(), &e)
	for _, rule := range []string{"upper-case", "digit", "symbol"} {
		if !strings.Contains(e.Error.Message, rule) {
			t.Errorf("weak_password message %q does not list %q", e.Error.Message, rule)
		}
	}
	if resp := s.do("POST", "/api/auth/register", `{"email":"x@example.com","password":"`+strings.Repeat("a", 2<<20)+`"}`, jsonHeader(), &e); resp.StatusCode != 413 {
		t.Errorf("2 MiB body: %d", resp.StatusCode)
	}
	if resp := s.do("GET", "/api/auth/register", "", nil, &e); resp.StatusCode != 405 {
		t.Errorf("GET register: %d", resp.StatusCode)
	}
}

func TestAuthLoginErrorsAndThrottle(t *testing.T) {
	s := startServer(t, authEnv())
	s.register("ann@example.com")
	var unknown, wrong errorAnswer
	r1 := s.do("POST", "/api/auth/login", `{"email":"nobody@example.com","password":"Correct-Horse-9"}`, jsonHeader(), &unknown)
	r2 := s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Wrong-Horse-9"}`, jsonHeader(), &wrong)
	if r1.StatusCode != 401 || r2.StatusCode != 401 || unknown != wrong || wrong.Error.Code != "invalid_credentials" {
		t.Fatalf("unknown %d %+v, wrong %d %+v", r1.StatusCode, unknown, r2.StatusCode, wrong)
	}
	for range 4 {
		s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Wrong-Horse-9"}`, jsonHeader(), nil)
	}
	var e errorAnswer
	resp := s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, jsonHeader(), &e)
	if resp.StatusCode != 429 || e.Error.Code != "too_many_attempts" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("6th login: %d %+v Retry-After=%q", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
	if resp := s.do("POST", "/api/auth/login", `[]`, jsonHeader(), &e); resp.StatusCode != 400 || e.Error.Code != "invalid_json" {
		t.Fatalf("bad JSON: %d %+v", resp.StatusCode, e)
	}
}

func TestAuthRefreshReuseRevokesSession(t *testing.T) {
	s := startServer(t, authEnv())
	reg := s.register("ann@example.com")
	var p1 map[string]string
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+reg.RefreshToken+`"}`, jsonHeader(), &p1); resp.StatusCode != 200 {
		t.Fatalf("first refresh: %d", resp.StatusCode)
	}
	var e errorAnswer
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+reg.RefreshToken+`"}`, jsonHeader(), &e); resp.StatusCode != 401 || !strings.Contains(e.Error.Message, "revoked") {
		t.Fatalf("reuse: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+p1["refresh_token"]+`"}`, jsonHeader(), &e); resp.StatusCode != 401 {
		t.Fatalf("newest token after reuse: %d", resp.StatusCode)
	}
	for name, body := range map[string]string{
		"access token": `{"refresh_token":"` + reg.AccessToken + `"}`,
		"garbage":      `{"refresh_token":"x.y.z"}`,
		"empty":        `{}`,
		"no body":      ``,
	} {
		if resp := s.do("POST", "/api/auth/refresh", body, jsonHeader(), &e); resp.StatusCode != 401 || e.Error.Code != "invalid_token" {
			t.Errorf("%s: %d %+v", name, resp.StatusCode, e)
		}
	}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":`, jsonHeader(), &e); resp.StatusCode != 400 {
		t.Errorf("malformed body: %d", resp.StatusCode)
	}
}

func TestAuthInsecureCookies(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_INSECURE_COOKIES", "1"))
	resp := s.do("POST", "/api/auth/register", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, jsonHeader(), nil)
	for _, c := range resp.Cookies() {
		if c.Secure || !c.HttpOnly {
			t.Fatalf("cookie %s: Secure=%v HttpOnly=%v", c.Name, c.Secure, c.HttpOnly)
		}
	}
}

func TestAuthSettings(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"short secret": {"NEXUS_JWT_SECRET": "too-short"},
		"bad admin":    {"NEXUS_ADMINS": "root, ann@example.com"},
		"bad cost":     {"NEXUS_BCRYPT_COST": "99"},
		"bad insecure": {"NEXUS_INSECURE_COOKIES": "yes please"},
	} {
		err := run(context.Background(), []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, nil)
		if err == nil {
			t.Errorf("%s: server started", name)
		}
	}
	s := startServer(t, map[string]string{"NEXUS_BCRYPT_COST": "4"})
	_ = s.stop()
	if !strings.Contains(s.logs.String(), "NEXUS_JWT_SECRET is unset") {
		t.Fatal("no warning for a random secret")
	}
	var cfg config
	if err := parseAuthConfig(&cfg, func(k string) string {
		return map[string]string{"NEXUS_ADMINS": " Root@Example.com ,, ann@example.com"}[k]
	}); err != nil || len(cfg.Admins) != 2 || cfg.Admins[0] != "root@example.com" {
		t.Fatalf("admins %v %v", cfg.Admins, err)
	}
}

// TestRequireAdmin drives the helpers other routes use: auth.RequireUser, currentUser and
// adminOnly.
func TestRequireAdmin(t *testing.T) {
	mailDir := t.TempDir()
	cfg, err := parseConfig(nil, func(k string) string {
		return authEnv("NEXUS_ADMINS", "boss@example.com", "NEXUS_MAIL_DIR", mailDir)[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newServices(context.Background(), cfg, authTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	var mu sync.Mutex
	var seen []ecoid.ID
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, currentUser(r))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	ctx := context.Background()
	boss, err := a.auth.Register(ctx, authTestClient(), "Boss@Example.com", "Correct-Horse-9", "")
	if err != nil {
		t.Fatal(err)
	}
	user, err := a.auth.Register(ctx, authTestClient(), "user@example.com", "Correct-Horse-9", "")
	if err != nil {
		t.Fatal(err)
	}
	serve := func(h http.Handler, token string) (int, string) {
		r := httptest.NewRequest("GET", "/admin", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var e errorAnswer
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		return w.Code, e.Error.Code
	}
	requireUser := auth.RequireUser(a.issuer, a.cookies)
	admin := adminOnly(a.auth, a.admins, requireUser, a.log)(ok)
	if code, _ := serve(admin, boss.AccessToken); code != 403 {
		t.Fatalf("admin with an unverified email: %d, want 403", code)
	}
	seen = nil
	verifyByMail(t, a.auth, mailDir, boss.User)
	if code, _ := serve(admin, boss.AccessToken); code != 204 {
		t.Fatalf("admin: %d", code)
	}
	if code, ec := serve(admin, user.AccessToken); code != 403 || ec != "forbidden" {
		t.Fatalf("non-admin: %d %s", code, ec)
	}
	if code, _ := serve(admin, ""); code != 401 {
		t.Fatalf("anonymous: %d", code)
	}
	if code, _ := serve(requireUser(ok), user.AccessToken); code != 204 {
		t.Fatalf("requireUser: %d", code)
	}
	if len(seen) != 2 || seen[0] != boss.User.ID || seen[1] != user.User.ID {
		t.Fatalf("currentUser saw %v", seen)
	}
	// A token of a user who no longer exists is not an admin's.
	ghost, _, _ := a.issuer.Issue("access", ecoid.New(ecoid.User), ecoid.New(ecoid.Session))
	if code, _ := serve(admin, ghost); code != 401 {
		t.Fatalf("deleted user: %d", code)
	}
}

func TestOnRegisterHooksRun(t *testing.T) {
	cfg, _ := parseConfig(nil, func(k string) string { return authEnv()[k] })
	a, err := newServices(context.Background(), cfg, authTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	var got []string
	a.onRegister = append(a.onRegister, func(_ context.Context, u auth.User) error {
		got = append(got, u.Email)
		return nil
	})
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/auth/register", "application/json", strings.NewReader(`{"email":"hook@example.com","password":"Correct-Horse-9"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || len(got) != 1 || got[0] != "hook@example.com" {
		t.Fatalf("%d %v", resp.StatusCode, got)
	}
}

func TestAuthWithPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := startServer(t, authEnv("DATABASE_URL", dsn))
	email := strings.ToLower(string(ecoid.New(ecoid.User))) + "@example.com"
	reg := s.register(email)
	var login sessionAnswer
	if resp := s.do("POST", "/api/auth/login", `{"email":"`+email+`","password":"Correct-Horse-9"}`, jsonHeader(), &login); resp.StatusCode != 200 || login.User.ID != reg.User.ID {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/register", `{"email":"`+strings.ToUpper(email)+`","password":"Correct-Horse-9"}`, jsonHeader(), nil); resp.StatusCode != 409 {
		t.Fatalf("duplicate: %d", resp.StatusCode)
	}
	var p map[string]string
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+login.RefreshToken+`"}`, jsonHeader(), &p); resp.StatusCode != 200 {
		t.Fatalf("refresh: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+login.RefreshToken+`"}`, jsonHeader(), nil); resp.StatusCode != 401 {
		t.Fatalf("reuse: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/logout", "", bearer(reg.AccessToken), nil); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
}

func authTestClient() auth.Client { return auth.Client{IP: "127.0.0.1", UserAgent: "test"} }

func authTestLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestAuthHostileInputWithPostgres sends what Postgres text columns refuse (invalid UTF-8
// in the User-Agent, which goes to the activity log and sessions; NUL in a full name):
// the answers must be the contract's, never a 500.
func TestAuthHostileInputWithPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := startServer(t, authEnv("DATABASE_URL", dsn))
	email := strings.ToLower(string(ecoid.New(ecoid.User))) + "@example.com"
	h := jsonHeader()
	h.Set("User-Agent", "agent\xff\xfe(")
	body := `{"email":"` + email + `","password":"Correct-Horse-9","full_name":"Ann"}`
	if resp := s.do("POST", "/api/auth/register", body, h, nil); resp.StatusCode != 201 {
		t.Fatalf("register with a non-UTF-8 User-Agent: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/login", `{"email":"`+email+`","password":"Correct-Horse-9"}`, h, nil); resp.StatusCode != 200 {
		t.Fatalf("login with a non-UTF-8 User-Agent: %d", resp.StatusCode)
	}
	var e errorAnswer
	body = `{"email":"nul-` + email + `","password":"Correct-Horse-9","full_name":"A\u0000B"}`
	if resp := s.do("POST", "/api/auth/register", body, jsonHeader(), &e); resp.StatusCode != 400 || e.Error.Code != "invalid_full_name" {
		t.Fatalf("register with NUL in full_name: %d %+v", resp.StatusCode, e)
	}
}

// TestAuthRefreshCookieWithEmptyChunkedBody: a POST whose empty body is sent chunked (its
// length unknown in advance) has no body, like one with Content-Length: 0, so the refresh
// cookie is used instead of answering 400 invalid_json.
func TestAuthRefreshCookieWithEmptyChunkedBody(t *testing.T) {
	s := startServer(t, authEnv())
	reg := s.register("ann@example.com")
	req, err := http.NewRequest("POST", s.base+"/api/auth/refresh", io.MultiReader()) // unknown length: chunked
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "nexus_refresh", Value: reg.RefreshToken})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pair map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&pair); err != nil || resp.StatusCode != 200 {
		t.Fatalf("refresh by cookie with an empty chunked body: %d %v", resp.StatusCode, err)
	}
	// A chunked body that is not empty is still read.
	body := io.MultiReader(strings.NewReader(`{"refresh_token":"` + pair["refresh_token"] + `"}`))
	req, err = http.NewRequest("POST", s.base+"/api/auth/refresh", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Fatalf("refresh with a chunked JSON body: %d", resp2.StatusCode)
	}
}
