package main

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth/totp"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
)

var testMFAKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

type mfaAnswer struct {
	MFARequired bool   `json:"mfa_required"`
	MFAToken    string `json:"mfa_token"`
	sessionAnswer
}

// totpCode is the code of the step d steps from now.
func totpCode(t *testing.T, secret string, d int64) string {
	t.Helper()
	raw, err := totp.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	var p totp.Params
	return p.Code(raw, p.Step(time.Now())+d)
}

// mfaOn registers email and turns TOTP on over HTTP; it returns the session, the
// secret and the recovery codes. The confirmation spends the current step.
func (s *testServer) mfaOn(email string) (sessionAnswer, string, []string) {
	s.t.Helper()
	reg := s.register(email)
	var en struct {
		Secret string `json:"secret"`
		URL    string `json:"otpauth_url"`
	}
	resp := s.do("POST", "/api/auth/mfa/totp/enroll", `{"password":"Correct-Horse-9"}`, bearer(reg.AccessToken), &en)
	if resp.StatusCode != 200 || len(en.Secret) != 32 || !strings.HasPrefix(en.URL, "otpauth://totp/") || resp.Header.Get("Cache-Control") != "no-store" {
		s.t.Fatalf("enroll: %d %+v %v", resp.StatusCode, en, resp.Header)
	}
	var conf struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	resp = s.do("POST", "/api/auth/mfa/totp/confirm", `{"code":"`+totpCode(s.t, en.Secret, 0)+`"}`, bearer(reg.AccessToken), &conf)
	if resp.StatusCode != 200 || len(conf.RecoveryCodes) != 10 || resp.Header.Get("Cache-Control") != "no-store" {
		s.t.Fatalf("confirm: %d %+v", resp.StatusCode, conf)
	}
	return reg, en.Secret, conf.RecoveryCodes
}

func (s *testServer) mfaLogin(email string, header http.Header) string {
	s.t.Helper()
	var out mfaAnswer
	resp := s.do("POST", "/api/auth/login", `{"email":"`+email+`","password":"Correct-Horse-9"}`, header, &out)
	if resp.StatusCode != 200 || !out.MFARequired || out.MFAToken == "" || out.AccessToken != "" || out.RefreshToken != "" ||
		len(resp.Cookies()) != 0 || resp.Header.Get("Cache-Control") != "no-store" {
		s.t.Fatalf("login with TOTP on: %d %+v cookies %v", resp.StatusCode, out, resp.Cookies())
	}
	return out.MFAToken
}

func (s *testServer) mfaVerify(body string, header http.Header) (*http.Response, mfaAnswer, errorAnswer) {
	s.t.Helper()
	var out struct {
		mfaAnswer
		errorAnswer
	}
	resp := s.do("POST", "/api/auth/mfa/verify", body, header, &out)
	return resp, out.mfaAnswer, out.errorAnswer
}

func TestMFAOverHTTP(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_MFA_KEY", testMFAKey))
	mfaFlow(t, s, "ann@example.com")
}

func TestMFAWithPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := startServer(t, authEnv("DATABASE_URL", dsn, "NEXUS_MFA_KEY", testMFAKey))
	mfaFlow(t, s, strings.ToLower(string(ecoid.New(ecoid.User)))+"@example.com")
}

func mfaFlow(t *testing.T, s *testServer, email string) {
	reg, secret, recovery := s.mfaOn(email)
	var e errorAnswer
	if resp := s.do("POST", "/api/auth/mfa/totp/enroll", `{"password":"Correct-Horse-9"}`, bearer(reg.AccessToken), &e); resp.StatusCode != 409 || e.Error.Code != "mfa_already_enabled" {
		t.Fatalf("enroll twice: %d %+v", resp.StatusCode, e)
	}
	token := s.mfaLogin(email, jsonHeader())
	// The next step's code (one step of skew) finishes the login with the login's shape.
	next := totpCode(t, secret, 1)
	resp, ok, _ := s.mfaVerify(`{"mfa_token":"`+token+`","code":"`+next+`"}`, jsonHeader())
	if resp.StatusCode != 200 || ok.AccessToken == "" || ok.RefreshToken == "" || ok.User.ID != reg.User.ID ||
		len(resp.Cookies()) == 0 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("verify: %d %+v", resp.StatusCode, ok)
	}
	// Replaying that code on a new login is refused.
	resp, _, e = s.mfaVerify(`{"mfa_token":"`+s.mfaLogin(email, jsonHeader())+`","code":"`+next+`"}`, jsonHeader())
	if resp.StatusCode != 401 || e.Error.Code != "invalid_code" {
		t.Fatalf("replayed code: %d %+v", resp.StatusCode, e)
	}
	// A recovery code works once.
	resp, ok, _ = s.mfaVerify(`{"mfa_token":"`+s.mfaLogin(email, jsonHeader())+`","recovery_code":"`+recovery[0]+`"}`, jsonHeader())
	if resp.StatusCode != 200 || ok.AccessToken == "" {
		t.Fatalf("recovery code: %d", resp.StatusCode)
	}
	resp, _, e = s.mfaVerify(`{"mfa_token":"`+s.mfaLogin(email, jsonHeader())+`","recovery_code":"`+recovery[0]+`"}`, jsonHeader())
	if resp.StatusCode != 401 || e.Error.Code != "invalid_code" {
		t.Fatalf("recovery code reused: %d %+v", resp.StatusCode, e)
	}
	// The token is bound to the client that logged in.
	other := jsonHeader()
	other.Set("User-Agent", "another-browser/1")
	resp, _, e = s.mfaVerify(`{"mfa_token":"`+s.mfaLogin(email, jsonHeader())+`","recovery_code":"`+recovery[1]+`"}`, other)
	if resp.StatusCode != 401 || e.Error.Code != "invalid_mfa_token" {
		t.Fatalf("token from another client: %d %+v", resp.StatusCode, e)
	}
	for _, body := range []string{`{"mfa_token":"x"}`, `{"mfa_token":"x","code":"1","recovery_code":"2"}`} {
		if resp, _, e := s.mfaVerify(body, jsonHeader()); resp.StatusCode != 400 || e.Error.Code != "invalid_request" {
			t.Fatalf("verify %s: %d %+v", body, resp.StatusCode, e)
		}
	}
	// Disable: a wrong password is 401, the password with a recovery code turns TOTP off.
	if resp := s.do("POST", "/api/auth/mfa/totp/disable", `{"password":"Wrong-Horse-9","code":"`+recovery[2]+`"}`, bearer(reg.AccessToken), &e); resp.StatusCode != 401 || e.Error.Code != "invalid_credentials" {
		t.Fatalf("disable, wrong password: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/auth/mfa/totp/disable", `{"password":"Correct-Horse-9","code":"000000x"}`, bearer(reg.AccessToken), &e); resp.StatusCode != 401 || e.Error.Code != "invalid_code" {
		t.Fatalf("disable, bad code: %d %+v", resp.StatusCode, e)
	}
	if resp := s.do("POST", "/api/auth/mfa/totp/disable", `{"password":"Correct-Horse-9","code":"`+recovery[2]+`"}`, bearer(reg.AccessToken), nil); resp.StatusCode != 200 {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	var login sessionAnswer
	if resp := s.do("POST", "/api/auth/login", `{"email":"`+email+`","password":"Correct-Horse-9"}`, jsonHeader(), &login); resp.StatusCode != 200 || login.AccessToken == "" {
		t.Fatalf("login after disable: %d", resp.StatusCode)
	}
	// The secret never shows again: not in the logs.
	if strings.Contains(s.logs.String(), secret) {
		t.Fatal("the TOTP secret is in the server log")
	}
}

func TestMFABruteForceOverHTTP(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_MFA_KEY", testMFAKey))
	_, secret, _ := s.mfaOn("ann@example.com")
	token := s.mfaLogin("ann@example.com", jsonHeader())
	wrong := "000000"
	for _, c := range []string{"000000", "111111", "222222"} {
		if c != totpCode(t, secret, -1) && c != totpCode(t, secret, 0) && c != totpCode(t, secret, 1) && c != totpCode(t, secret, 2) {
			wrong = c
			break
		}
	}
	for i := range 5 {
		if resp, _, e := s.mfaVerify(`{"mfa_token":"`+token+`","code":"`+wrong+`"}`, jsonHeader()); resp.StatusCode != 401 || e.Error.Code != "invalid_code" {
			t.Fatalf("wrong code %d: %d %+v", i+1, resp.StatusCode, e)
		}
	}
	resp, _, e := s.mfaVerify(`{"mfa_token":"`+token+`","code":"`+totpCode(t, secret, 1)+`"}`, jsonHeader())
	if resp.StatusCode != 429 || e.Error.Code != "too_many_attempts" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("6th attempt: %d %+v", resp.StatusCode, e)
	}
	resp, _, _ = s.mfaVerify(`{"mfa_token":"`+s.mfaLogin("ann@example.com", jsonHeader())+`","code":"`+totpCode(t, secret, 1)+`"}`, jsonHeader())
	if resp.StatusCode != 429 {
		t.Fatalf("a new login after 5 failures: %d, want 429 (per user)", resp.StatusCode)
	}
}

func TestMFAConfirmErrors(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_MFA_KEY", testMFAKey))
	reg := s.register("ann@example.com")
	var e errorAnswer
	if resp := s.do("POST", "/api/auth/mfa/totp/confirm", `{"code":"123456"}`, bearer(reg.AccessToken), &e); resp.StatusCode != 400 || e.Error.Code != "invalid_code" {
		t.Fatalf("confirm without enrollment: %d %+v", resp.StatusCode, e)
	}
	s.do("POST", "/api/auth/mfa/totp/enroll", `{"password":"Correct-Horse-9"}`, bearer(reg.AccessToken), nil)
	for _, body := range []string{`{"code":"12345"}`, `{"code":"abcdef"}`, `{"code":""}`} {
		if resp := s.do("POST", "/api/auth/mfa/totp/confirm", body, bearer(reg.AccessToken), &e); resp.StatusCode != 400 || e.Error.Code != "invalid_code" {
			t.Fatalf("confirm %s: %d %+v", body, resp.StatusCode, e)
		}
	}
	if resp := s.do("POST", "/api/auth/mfa/totp/enroll", `{"password":"Correct-Horse-9"}`, nil, &e); resp.StatusCode != 401 {
		t.Fatalf("enroll without a user: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/mfa/totp/disable", `{"password":"Correct-Horse-9","code":"123456"}`, bearer(reg.AccessToken), &e); resp.StatusCode != 409 || e.Error.Code != "mfa_not_enabled" {
		t.Fatalf("disable while off: %d %+v", resp.StatusCode, e)
	}
}

func TestMFAKeySetting(t *testing.T) {
	bad := "not-a-key-but-secret-looking-text"
	_, err := parseConfig(nil, func(k string) string {
		if k == "NEXUS_MFA_KEY" {
			return bad
		}
		return ""
	})
	if err == nil || strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "NEXUS_MFA_KEY") {
		t.Fatalf("malformed NEXUS_MFA_KEY: %v", err)
	}
	short := base64.StdEncoding.EncodeToString([]byte("short"))
	if _, err := parseConfig(nil, func(k string) string {
		if k == "NEXUS_MFA_KEY" {
			return short
		}
		return ""
	}); err == nil || strings.Contains(err.Error(), short) {
		t.Fatalf("short NEXUS_MFA_KEY: %v", err)
	}
	// Postgres without a key: two-factor authentication is off, not randomly keyed.
	dsn := testenv.Postgres(t)
	s := startServer(t, authEnv("DATABASE_URL", dsn))
	reg := s.register(strings.ToLower(string(ecoid.New(ecoid.User))) + "@example.com")
	var e errorAnswer
	if resp := s.do("POST", "/api/auth/mfa/totp/enroll", `{"password":"Correct-Horse-9"}`, bearer(reg.AccessToken), &e); resp.StatusCode != 503 || e.Error.Code != "mfa_disabled" {
		t.Fatalf("enroll without NEXUS_MFA_KEY on Postgres: %d %+v", resp.StatusCode, e)
	}
}

// TestMFAAcrossInstancesWithPostgres: two servers on one database. A code spent on one
// is refused on the other, and failed codes alternated between them are throttled
// together.
func TestMFAAcrossInstancesWithPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	a := startServer(t, authEnv("DATABASE_URL", dsn, "NEXUS_MFA_KEY", testMFAKey))
	b := startServer(t, authEnv("DATABASE_URL", dsn, "NEXUS_MFA_KEY", testMFAKey))
	email := strings.ToLower(string(ecoid.New(ecoid.User))) + "@example.com"
	_, secret, _ := a.mfaOn(email)
	next := totpCode(t, secret, 1)
	if resp, _, _ := a.mfaVerify(`{"mfa_token":"`+a.mfaLogin(email, jsonHeader())+`","code":"`+next+`"}`, jsonHeader()); resp.StatusCode != 200 {
		t.Fatalf("verify on A: %d", resp.StatusCode)
	}
	if resp, _, e := b.mfaVerify(`{"mfa_token":"`+b.mfaLogin(email, jsonHeader())+`","code":"`+next+`"}`, jsonHeader()); resp.StatusCode != 401 || e.Error.Code != "invalid_code" {
		t.Fatalf("the same code on B: %d %+v", resp.StatusCode, e)
	}
	// That was failure 1; four more, alternating, then the sixth attempt is refused on both.
	wrong := "000000"
	for _, c := range []string{"000000", "111111", "222222"} {
		if c != totpCode(t, secret, -1) && c != totpCode(t, secret, 0) && c != totpCode(t, secret, 1) && c != totpCode(t, secret, 2) {
			wrong = c
			break
		}
	}
	servers := []*testServer{a, b}
	for i := range 4 {
		s := servers[i%2]
		if resp, _, e := s.mfaVerify(`{"mfa_token":"`+s.mfaLogin(email, jsonHeader())+`","code":"`+wrong+`"}`, jsonHeader()); resp.StatusCode != 401 {
			t.Fatalf("wrong code %d: %d %+v", i+2, resp.StatusCode, e)
		}
	}
	for _, s := range servers {
		if resp, _, e := s.mfaVerify(`{"mfa_token":"`+s.mfaLogin(email, jsonHeader())+`","code":"`+totpCode(t, secret, 2)+`"}`, jsonHeader()); resp.StatusCode != 429 {
			t.Fatalf("after 5 failures over two instances: %d %+v, want 429", resp.StatusCode, e)
		}
	}
}
