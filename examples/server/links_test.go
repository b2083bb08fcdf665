package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// page fetches an HTML page with an optional form body (POST) and returns its status,
// headers and text.
func (s *testServer) page(method, path string, form url.Values, header http.Header) (int, http.Header, string) {
	s.t.Helper()
	h, body := http.Header{}, ""
	if form != nil {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		body = form.Encode()
	}
	for k, v := range header {
		h[k] = v
	}
	resp, raw := s.send(method, path, body, h)
	return resp.StatusCode, resp.Header, string(raw)
}

// linkPath is the path of a mail's link (its host is NEXUS_PUBLIC_URL's, not the test
// server's).
func linkPath(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}

// The links in mail open pages of the server: GET shows a form and spends nothing, its
// POST does what the JSON route does, and the pages keep the token out of referrers and
// caches.
func TestMailLinksOpenPages(t *testing.T) {
	s := startServer(t, authEnv())
	const email = "links@example.com"
	ann := s.register(email)
	if resp := s.do("POST", "/api/auth/verify-email/send", "", bearer(ann.AccessToken), nil); resp.StatusCode != 202 {
		t.Fatalf("send verification: %d", resp.StatusCode)
	}
	_, link, tok := nextMail(t, s.mailDir, email)
	path := linkPath(t, link)
	if path != "/verify-email" {
		t.Fatalf("the verification link goes to %q", path)
	}
	for range 2 { // a scanner's fetch, then the user's: neither spends the token
		status, h, text := s.page("GET", path+"?token="+tok, nil, nil)
		if status != 200 || !strings.Contains(text, `name="token" value="`+tok+`"`) || !strings.Contains(text, `<form method="post" action="/verify-email">`) {
			t.Fatalf("GET %s: %d %s", path, status, text)
		}
		for k, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
			if h.Get(k) != want {
				t.Errorf("%s: %q, want %q", k, h.Get(k), want)
			}
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
	}
	var me meAnswer
	s.do("GET", "/api/auth/me", "", bearer(ann.AccessToken), &me)
	if me.EmailVerified {
		t.Fatal("opening the link verified the email before the form was sent")
	}
	// Another site's form cannot post it.
	if status, _, _ := s.page("POST", "/verify-email", url.Values{"token": {tok}}, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); status != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d, want 403", status)
	}
	if status, _, text := s.page("POST", "/verify-email", url.Values{"token": {tok}}, nil); status != 200 || !strings.Contains(text, "Email confirmed") {
		t.Fatalf("POST /verify-email: %d %s", status, text)
	}
	s.do("GET", "/api/auth/me", "", bearer(ann.AccessToken), &me)
	if !me.EmailVerified {
		t.Fatal("the page's form did not verify the email")
	}
	if status, _, text := s.page("POST", "/verify-email", url.Values{"token": {"x" + tok}}, nil); status != 400 || !strings.Contains(text, "Link not valid") {
		t.Fatalf("POST a wrong token: %d %s", status, text)
	}
	if status, _, _ := s.page("GET", "/verify-email", nil, nil); status != 400 {
		t.Fatalf("GET without a token: %d, want 400", status)
	}

	// Reset: a weak password keeps the token, a good one spends it and signs out.
	if resp := s.do("POST", "/api/auth/password/forgot", `{"email":"`+email+`"}`, jsonHeader(), nil); resp.StatusCode != 202 {
		t.Fatalf("forgot: %d", resp.StatusCode)
	}
	_, link, tok = nextMail(t, s.mailDir, email)
	if path = linkPath(t, link); path != "/reset-password" {
		t.Fatalf("the reset link goes to %q", path)
	}
	if status, _, text := s.page("GET", path+"?token="+tok, nil, nil); status != 200 || !strings.Contains(text, `type="password"`) {
		t.Fatalf("GET %s: %d %s", path, status, text)
	}
	if status, _, text := s.page("POST", path, url.Values{"token": {tok}, "password": {"short"}}, nil); status != 400 || !strings.Contains(text, `value="`+tok+`"`) {
		t.Fatalf("POST a weak password: %d %s", status, text)
	}
	status, h, text := s.page("POST", path, url.Values{"token": {tok}, "password": {"Another-Horse-42"}}, nil)
	if status != 200 || !strings.Contains(text, "Password changed") || !strings.Contains(strings.Join(h.Values("Set-Cookie"), ";"), "Max-Age=0") {
		t.Fatalf("POST a new password: %d %v %s", status, h, text)
	}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+ann.RefreshToken+`"}`, jsonHeader(), nil); resp.StatusCode != 401 {
		t.Fatalf("refresh of a session from before the reset: %d, want 401", resp.StatusCode)
	}
	s.loginAs(email, "Another-Horse-42")
	if status, _, _ := s.page("POST", path, url.Values{"token": {tok}, "password": {"Third-Horse-42"}}, nil); status != 400 {
		t.Fatalf("the token again: %d, want 400", status)
	}
}
