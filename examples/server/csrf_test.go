package main

import (
	"net/http"
	"testing"
)

// crossSiteForm is what a browser sends for an HTML form (or a no-preflight fetch) posted
// from another site to this server, with the victim's cookie attached.
func crossSiteForm(cookie string) http.Header {
	return http.Header{
		"Cookie":         {cookie},
		"Origin":         {"https://evil.example"},
		"Sec-Fetch-Site": {"cross-site"},
		"Content-Type":   {"text/plain"},
	}
}

// sameSite is a request of this server's own page, with the cookie.
func sameSite(s *testServer, cookie string) http.Header {
	return http.Header{"Cookie": {cookie}, "Origin": {s.base}, "Sec-Fetch-Site": {"same-origin"}, "Content-Type": {"application/json"}}
}

func TestCrossSiteFormCannotCreateAnAPIKey(t *testing.T) {
	s := startServer(t, authEnv())
	victim := s.register("victim@example.com")
	cookie := "nexus_access=" + victim.AccessToken
	var e errorAnswer
	resp := s.do("POST", "/api/keys/generate", `{"name":"evil","scopes":["read"]}`, crossSiteForm(cookie), &e)
	if resp.StatusCode != 403 || e.Error.Code != "cross_origin_request" {
		t.Fatalf("cross-site form: %d %+v", resp.StatusCode, e)
	}
	// An older browser sends Origin but no Sec-Fetch-Site: refused as well.
	old := crossSiteForm(cookie)
	old.Del("Sec-Fetch-Site")
	if resp := s.do("POST", "/api/keys/generate", `{"name":"evil"}`, old, &e); resp.StatusCode != 403 {
		t.Fatalf("cross-site form without Sec-Fetch-Site: %d %+v", resp.StatusCode, e)
	}
	var list struct {
		Keys []map[string]any `json:"keys"`
	}
	if s.do("GET", "/api/keys/list", "", bearer(victim.AccessToken), &list); len(list.Keys) != 0 {
		t.Fatalf("the cross-site form created a key: %+v", list.Keys)
	}
	// The server's own page with the cookie, and a client with the Authorization header
	// from anywhere, are not affected.
	if resp := s.do("POST", "/api/keys/generate", `{"name":"mine"}`, sameSite(s, cookie), nil); resp.StatusCode != 201 {
		t.Fatalf("same-origin generate with the cookie: %d", resp.StatusCode)
	}
	h := bearer(victim.AccessToken)
	h.Set("Origin", "https://elsewhere.example")
	h.Set("Sec-Fetch-Site", "cross-site")
	if resp := s.do("POST", "/api/keys/generate", `{"name":"cli"}`, h, nil); resp.StatusCode != 201 {
		t.Fatalf("header-authenticated generate from another origin: %d", resp.StatusCode)
	}
}

func TestCrossSiteFormCannotLogOut(t *testing.T) {
	s := startServer(t, authEnv())
	victim := s.register("victim@example.com")
	var e errorAnswer
	if resp := s.do("POST", "/api/auth/logout", "", crossSiteForm("nexus_access="+victim.AccessToken), &e); resp.StatusCode != 403 || e.Error.Code != "cross_origin_request" {
		t.Fatalf("cross-site logout: %d %+v", resp.StatusCode, e)
	}
	// The session is still alive: its refresh token still works.
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+victim.RefreshToken+`"}`, jsonHeader(), nil); resp.StatusCode != 200 {
		t.Fatalf("refresh after the refused logout: %d", resp.StatusCode)
	}
}

func TestCrossSiteFormCannotCancelASubscription(t *testing.T) {
	s := startServer(t, authEnv())
	victim := s.register("victim@example.com")
	var e errorAnswer
	if resp := s.do("POST", "/api/subscriptions/cancel", "", crossSiteForm("nexus_access="+victim.AccessToken), &e); resp.StatusCode != 403 || e.Error.Code != "cross_origin_request" {
		t.Fatalf("cross-site cancel: %d %+v", resp.StatusCode, e)
	}
	// The same request with the token in the header reaches the route (billing is off here).
	if resp := s.do("POST", "/api/subscriptions/cancel", "", bearer(victim.AccessToken), &e); resp.StatusCode != 503 || e.Error.Code != "billing_disabled" {
		t.Fatalf("header-authenticated cancel: %d %+v", resp.StatusCode, e)
	}
}

func TestJSONRoutesRefuseOtherMediaTypes(t *testing.T) {
	s := startServer(t, authEnv())
	user := s.register("ann@example.com")
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		h := bearer(user.AccessToken)
		h.Del("Content-Type")
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		var e errorAnswer
		if resp := s.do("POST", "/api/keys/generate", `{"name":"x"}`, h, &e); resp.StatusCode != 415 || e.Error.Code != "unsupported_media_type" {
			t.Fatalf("generate with Content-Type %q: %d %+v", ct, resp.StatusCode, e)
		}
		if resp := s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, http.Header{"Content-Type": {ct}}, &e); resp.StatusCode != 415 {
			t.Fatalf("login with Content-Type %q: %d %+v", ct, resp.StatusCode, e)
		}
	}
	// A route called without a body needs no Content-Type.
	if resp := s.do("POST", "/api/auth/logout", "", http.Header{"Authorization": {"Bearer " + user.AccessToken}}, nil); resp.StatusCode != 204 {
		t.Fatalf("logout without a body: %d", resp.StatusCode)
	}
}

func TestSecretAnswersAreNotCacheable(t *testing.T) {
	s := startServer(t, authEnv())
	noStore := func(what string, resp *http.Response) {
		t.Helper()
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
			t.Fatalf("%s (%d): Cache-Control %q, Pragma %q", what, resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
		}
	}
	var reg sessionAnswer
	noStore("register", s.do("POST", "/api/auth/register", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, jsonHeader(), &reg))
	var login sessionAnswer
	noStore("login", s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, jsonHeader(), &login))
	noStore("refresh", s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+login.RefreshToken+`"}`, jsonHeader(), nil))
	var g generatedAnswer
	noStore("keys/generate", s.do("POST", "/api/keys/generate", `{"name":"k"}`, bearer(reg.AccessToken), &g))
	noStore("keys/rotate", s.do("POST", "/api/keys/rotate", `{"id":"`+g.ID+`"}`, bearer(reg.AccessToken), nil))
}
