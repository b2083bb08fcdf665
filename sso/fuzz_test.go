package sso

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzValidateRedirectURI: registration input from an administrator. Whatever it accepts
// is an absolute https URI, or http on a loopback host, without fragment or user info.
func FuzzValidateRedirectURI(f *testing.F) {
	for _, s := range []string{"https://a.test/cb", "http://127.0.0.1:8081/cb", "http://[::1]/x", "javascript:alert(1)",
		"https://a.test/cb#frag", "http://evil.test/cb", "https://u:p@a.test/", "//a.test/cb", "http://127.0.0.1.evil.test/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidateRedirectURI(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil || u.Host == "" {
			t.Fatalf("accepted %q", raw)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			t.Fatalf("accepted %q with scheme %q host %q", raw, u.Scheme, u.Hostname())
		}
	})
}

// FuzzUnverifiedAudience: the userinfo endpoint reads aud from any Bearer token before
// verifying it; it must never panic, and only a project ID comes out.
func FuzzUnverifiedAudience(f *testing.F) {
	for _, s := range []string{"a.b.c", "eyJhbGciOiJFZERTQSJ9.eyJhdWQiOiJlY29fcHJqXzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAifQ.x", "...", "", "a.%%%.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if id, ok := unverifiedAudience(tok); ok && id.Type() != "prj" {
			t.Fatalf("%q gave audience %q", tok, id)
		}
	})
}

// FuzzValidPKCE: accepted verifiers and challenges are 43-128 unreserved characters.
func FuzzValidPKCE(f *testing.F) {
	for _, s := range []string{strings.Repeat("a", 43), strings.Repeat("~", 128), "short", strings.Repeat("a", 129), strings.Repeat("a", 42) + " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validPKCE(s) {
			return
		}
		if len(s) < 43 || len(s) > 128 || strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != "" {
			t.Fatalf("accepted %q", s)
		}
	})
}
