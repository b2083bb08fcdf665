package auth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

func TestBearerToken(t *testing.T) {
	cases := map[string]string{
		"Bearer abc.def-ghi_jkl":              "abc.def-ghi_jkl",
		"bearer abc":                          "abc",
		"BEARER   abc":                        "abc",
		"Bearer abc==":                        "abc==",
		"Bearer a+b/c~":                       "a+b/c~",
		"Bearer ":                             "",
		"Bearer":                              "",
		"Basic abc":                           "",
		"Bearer abc def":                      "",
		"Bearer a=b":                          "",
		"Bearer abc\t":                        "",
		"ApiKey eco_api_x.y":                  "",
		"Bearer " + "\xff":                    "",
		"Bearer " + strings.Repeat("a", 9000): "",
	}
	for in, want := range cases {
		got, ok := auth.BearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%.40q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestRequireUser(t *testing.T) {
	clock := newClock()
	clock.Set(time.Now()) // cookies compute Max-Age from the wall clock
	is := newIssuer(t, clock)
	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	access, _, _ := is.Issue(auth.AccessToken, uid, sid)
	refresh, _, _ := is.Issue(auth.RefreshToken, uid, sid)
	var cfg auth.CookieConfig
	h := auth.RequireUser(is, cfg)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.UserFrom(r.Context())
		if !ok || c.UserID != uid || c.SessionID != sid {
			t.Errorf("claims in context: %+v %v", c, ok)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	serve := func(edit func(r *http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/x", nil)
		edit(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	ok := []func(*http.Request){
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+access) },
		func(r *http.Request) { r.AddCookie(&http.Cookie{Name: auth.DefaultAccessCookie, Value: access}) },
	}
	for i, edit := range ok {
		if w := serve(edit); w.Code != http.StatusNoContent {
			t.Errorf("case %d: %d %s", i, w.Code, w.Body)
		}
	}
	bad := map[string]func(*http.Request){
		"nothing":           func(*http.Request) {},
		"refresh as bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+refresh) },
		"garbage":           func(r *http.Request) { r.Header.Set("Authorization", "Bearer x.y.z") },
		"basic":             func(r *http.Request) { r.Header.Set("Authorization", "Basic dXNlcjpwdw==") },
		"empty cookie":      func(r *http.Request) { r.AddCookie(&http.Cookie{Name: auth.DefaultAccessCookie, Value: ""}) },
		"refresh cookie":    func(r *http.Request) { r.AddCookie(&http.Cookie{Name: auth.DefaultAccessCookie, Value: refresh}) },
		// A bad header is not rescued by a good cookie.
		"bad header, good cookie": func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer nope")
			r.AddCookie(&http.Cookie{Name: auth.DefaultAccessCookie, Value: access})
		},
	}
	for name, edit := range bad {
		w := serve(edit)
		var body struct {
			Error struct{ Code, Message string }
		}
		if w.Code != http.StatusUnauthorized || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code != "unauthorized" ||
			w.Header().Get("WWW-Authenticate") == "" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	if _, ok := auth.UserFrom(httptest.NewRequest("GET", "/", nil).Context()); ok {
		t.Error("UserFrom of a bare context")
	}
}

func TestTokenCookies(t *testing.T) {
	now := time.Now()
	tokens := auth.Tokens{AccessToken: "a.b.c", RefreshToken: "d.e.f", AccessExpiresAt: now.Add(15 * time.Minute), RefreshExpiresAt: now.Add(7 * 24 * time.Hour)}
	for _, insecure := range []bool{false, true} {
		w := httptest.NewRecorder()
		cfg := auth.CookieConfig{Insecure: insecure}
		auth.SetTokenCookies(w, tokens, cfg)
		cookies := w.Result().Cookies()
		if len(cookies) != 2 {
			t.Fatalf("%d cookies", len(cookies))
		}
		byName := map[string]*http.Cookie{}
		for _, c := range cookies {
			byName[c.Name] = c
			if !c.HttpOnly || c.Secure == insecure || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie %s: HttpOnly=%v Secure=%v SameSite=%v", c.Name, c.HttpOnly, c.Secure, c.SameSite)
			}
		}
		a, r := byName[auth.DefaultAccessCookie], byName[auth.DefaultRefreshCookie]
		if a == nil || a.Value != "a.b.c" || a.Path != "/" || a.MaxAge < 14*60 || a.MaxAge > 15*60 {
			t.Errorf("access cookie %+v", a)
		}
		if r == nil || r.Value != "d.e.f" || r.Path != auth.DefaultRefreshPath || r.MaxAge < 7*24*3600-60 {
			t.Errorf("refresh cookie %+v", r)
		}
		req := httptest.NewRequest("POST", auth.DefaultRefreshPath, nil)
		req.AddCookie(r)
		if got := auth.RefreshTokenFromCookie(req, cfg); got != "d.e.f" {
			t.Errorf("RefreshTokenFromCookie = %q", got)
		}
	}
	if got := auth.RefreshTokenFromCookie(httptest.NewRequest("POST", "/", nil), auth.CookieConfig{}); got != "" {
		t.Errorf("no cookie: %q", got)
	}
	w := httptest.NewRecorder()
	cfg := auth.CookieConfig{AccessName: "acc", RefreshName: "ref", RefreshPath: "/r", Domain: "example.com"}
	auth.ClearTokenCookies(w, cfg)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge >= 0 || c.Value != "" || (c.Name != "acc" && c.Name != "ref") || (c.Name == "ref" && c.Path != "/r") || c.Domain != "example.com" {
			t.Errorf("clear cookie %+v", c)
		}
	}
}

func TestClientFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "[2001:db8::1]:4321"
	r.Header.Set("User-Agent", strings.Repeat("u", 600))
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	c := auth.ClientFromRequest(r)
	if c.IP != "2001:db8::1" || len(c.UserAgent) != 512 {
		t.Fatalf("%+v", c)
	}
	r.RemoteAddr = "no-port"
	if c := auth.ClientFromRequest(r); c.IP != "no-port" {
		t.Fatalf("%+v", c)
	}
	// Header values may hold any byte from 0x80 up; the stores need valid UTF-8.
	r.Header.Set("User-Agent", "agent\xff\xfe(\x00x")
	if c := auth.ClientFromRequest(r); c.UserAgent != "agent\uFFFD(x" {
		t.Fatalf("User-Agent %q, want invalid bytes replaced and NUL dropped", c.UserAgent)
	}
}
