package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/mail"
)

var mailLinkRE = regexp.MustCompile(`(https?://\S+)\?token=([A-Za-z0-9_-]+)`)

// seenMail remembers the .eml files each test has read, per directory.
var seenMail sync.Map // dir -> *sync.Map of file names

// nextMail waits for a message to to in dir that was not read before and returns it
// with its link's base and token.
func nextMail(t *testing.T, dir, to string) (mail.Message, string, string) {
	t.Helper()
	v, _ := seenMail.LoadOrStore(dir, &sync.Map{})
	seen := v.(*sync.Map)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, f := range files {
			if _, old := seen.Load(f); old {
				continue
			}
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := mail.ParseMessage(fh)
			_ = fh.Close()
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if m.To != "<"+to+">" {
				continue
			}
			seen.Store(f, true)
			sub := mailLinkRE.FindStringSubmatch(m.Text)
			if sub == nil {
				t.Fatalf("no link in mail %q", m.Text)
			}
			return m, sub[1], sub[2]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no mail to %s in %s", to, dir)
	return mail.Message{}, "", ""
}

// noMailTo checks that dir holds no unread message to to.
func noMailTo(t *testing.T, dir, to string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		if strings.Contains(string(raw), "To: <"+to+">") {
			t.Fatalf("mail to %s: %s", to, raw)
		}
	}
}

// verifyByMail verifies u's email through the service and the mail directory.
func verifyByMail(t *testing.T, svc *auth.Service, dir string, u auth.User) {
	t.Helper()
	if err := svc.SendVerification(context.Background(), auth.Client{IP: "127.0.0.1"}, u.ID); err != nil {
		t.Fatal(err)
	}
	_, _, tok := nextMail(t, dir, u.Email)
	if _, err := svc.VerifyEmail(context.Background(), auth.Client{IP: "127.0.0.1"}, tok); err != nil {
		t.Fatal(err)
	}
}

// verifiedUser registers email and verifies it through the routes and the mail.
func (s *testServer) verifiedUser(email string) sessionAnswer {
	s.t.Helper()
	u := s.register(email)
	if resp := s.do("POST", "/api/auth/verify-email/send", "", bearer(u.AccessToken), nil); resp.StatusCode != http.StatusAccepted {
		s.t.Fatalf("verify-email/send: %d", resp.StatusCode)
	}
	_, _, tok := nextMail(s.t, s.mailDir, strings.ToLower(email))
	if resp := s.do("POST", "/api/auth/verify-email", `{"token":"`+tok+`"}`, jsonHeader(), nil); resp.StatusCode != http.StatusOK {
		s.t.Fatalf("verify-email: %d", resp.StatusCode)
	}
	return u
}

type meAnswer struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"`
	FullName      string    `json:"full_name"`
	EmailVerified bool      `json:"email_verified"`
	MFAEnabled    bool      `json:"mfa_enabled"`
	CreatedAt     time.Time `json:"created_at"`
}

func (s *testServer) me(tok string) meAnswer {
	s.t.Helper()
	var me meAnswer
	if resp := s.do("GET", "/api/auth/me", "", bearer(tok), &me); resp.StatusCode != 200 {
		s.t.Fatalf("GET /api/auth/me: %d", resp.StatusCode)
	}
	return me
}

func code(t *testing.T, resp *http.Response, e errorAnswer, status int, want string) {
	t.Helper()
	if resp.StatusCode != status || e.Error.Code != want {
		t.Fatalf("got %d %q, want %d %q", resp.StatusCode, e.Error.Code, status, want)
	}
}

// TestAdminNeedsAVerifiedEmail is the regression test of the admin takeover: whoever
// registers an address of NEXUS_ADMINS first is not an admin until the address is
// verified.
func TestAdminNeedsAVerifiedEmail(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_ADMINS", "boss@example.com"))
	squatter := s.register("boss@example.com")
	var e errorAnswer
	code(t, s.do("GET", "/api/admin/analytics/overview", "", bearer(squatter.AccessToken), &e), e, 403, "forbidden")
	if resp := s.do("POST", "/api/auth/verify-email/send", "", bearer(squatter.AccessToken), nil); resp.StatusCode != 202 {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	_, _, tok := nextMail(t, s.mailDir, "boss@example.com") // only the mailbox's owner reads this
	if resp := s.do("POST", "/api/auth/verify-email", `{"token":"`+tok+`"}`, jsonHeader(), nil); resp.StatusCode != 200 {
		t.Fatalf("verify: %d", resp.StatusCode)
	}
	if resp := s.do("GET", "/api/admin/analytics/overview", "", bearer(squatter.AccessToken), nil); resp.StatusCode != 200 {
		t.Fatalf("verified admin: %d", resp.StatusCode)
	}
}

func TestVerifyEmailRoutes(t *testing.T) {
	s := startServer(t, authEnv())
	ann := s.register("ann@example.com")
	me := s.me(ann.AccessToken)
	if me.EmailVerified || me.MFAEnabled || me.Email != "ann@example.com" || me.ID != ann.User.ID || me.CreatedAt.IsZero() {
		t.Fatalf("me %+v", me)
	}
	if resp := s.do("POST", "/api/auth/verify-email/send", "", bearer(ann.AccessToken), nil); resp.StatusCode != 202 {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	m, base, tok := nextMail(t, s.mailDir, "ann@example.com")
	if base != "http://127.0.0.1:8080/verify-email" || m.Subject == "" {
		t.Fatalf("link %q in %+v", base, m)
	}
	var out struct {
		User meAnswer `json:"user"`
	}
	if resp := s.do("POST", "/api/auth/verify-email", `{"token":"`+tok+`"}`, jsonHeader(), &out); resp.StatusCode != 200 || !out.User.EmailVerified || out.User.ID != ann.User.ID {
		t.Fatalf("verify: %d %+v", resp.StatusCode, out)
	}
	if !s.me(ann.AccessToken).EmailVerified {
		t.Fatal("me after verification")
	}
	var e errorAnswer
	code(t, s.do("POST", "/api/auth/verify-email", `{"token":"`+tok+`"}`, jsonHeader(), &e), e, 400, "invalid_token")
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/verify-email", `{"token":"nope"}`, jsonHeader(), &e), e, 400, "invalid_token")
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/verify-email/send", "", bearer(ann.AccessToken), &e), e, 409, "already_verified")
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/verify-email", `{"token":1}`, jsonHeader(), &e), e, 400, "invalid_json")
}

func TestMailDisabled(t *testing.T) {
	s := startServer(t, authEnv("NEXUS_MAIL_DIR", ""))
	ann := s.register("ann@example.com")
	var e errorAnswer
	code(t, s.do("POST", "/api/auth/verify-email/send", "", bearer(ann.AccessToken), &e), e, 503, "mail_disabled")
	if resp := s.do("POST", "/api/auth/password/forgot", `{"email":"ann@example.com"}`, jsonHeader(), nil); resp.StatusCode != 202 {
		t.Fatalf("forgot without mail: %d, want 202 as always", resp.StatusCode)
	}
}

func TestMailConfig(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"both":       {"NEXUS_MAIL_DIR": "/tmp/x", "NEXUS_SMTP_URL": "smtp://localhost:25"},
		"bad url":    {"NEXUS_SMTP_URL": "http://u:hunter2@host"},
		"bad sender": {"NEXUS_MAIL_FROM": "nobody"},
	} {
		_, err := parseConfig(nil, func(k string) string { return env[k] })
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error repeats the password: %v", name, err)
		}
	}
	cfg, err := parseConfig([]string{"-mail-dir", "/tmp/flag"}, func(k string) string { return map[string]string{"NEXUS_MAIL_DIR": "/tmp/env"}[k] })
	if err != nil || cfg.MailDir != "/tmp/flag" {
		t.Fatalf("flag over variable: %q %v", cfg.MailDir, err)
	}
}

func TestPasswordResetRoutes(t *testing.T) {
	t.Run("memory", func(t *testing.T) { resetFlow(t, startServer(t, authEnv())) })
	t.Run("postgres", func(t *testing.T) {
		resetFlow(t, startServer(t, authEnv("DATABASE_URL", pgDSN(t))))
	})
}

func resetFlow(t *testing.T, s *testServer) {
	email := "ann-" + strings.ToLower(hex.EncodeToString([]byte(t.Name()))[:12]) + "@example.com"
	ann := s.register(email)
	login := s.loginAs(email, "Correct-Horse-9")
	for _, addr := range []string{email, "nobody-" + email} {
		if resp := s.do("POST", "/api/auth/password/forgot", `{"email":"`+addr+`"}`, jsonHeader(), nil); resp.StatusCode != 202 {
			t.Fatalf("forgot %s: %d", addr, resp.StatusCode)
		}
	}
	var e errorAnswer
	code(t, s.do("POST", "/api/auth/password/forgot", `{"email":"not an email"}`, jsonHeader(), &e), e, 400, "invalid_email")
	_, base, tok := nextMail(t, s.mailDir, email)
	if base != "http://127.0.0.1:8080/reset-password" {
		t.Fatalf("link %s", base)
	}
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/password/reset", `{"token":"`+tok+`","password":"weak"}`, jsonHeader(), &e), e, 400, "weak_password")
	var out struct {
		User meAnswer `json:"user"`
	}
	if resp := s.do("POST", "/api/auth/password/reset", `{"token":"`+tok+`","password":"New-Good-Pass-42"}`, jsonHeader(), &out); resp.StatusCode != 200 || out.User.Email != email {
		t.Fatalf("reset: %d %+v", resp.StatusCode, out)
	}
	for _, r := range []string{ann.RefreshToken, login.RefreshToken} {
		if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+r+`"}`, jsonHeader(), nil); resp.StatusCode != 401 {
			t.Fatalf("refresh after reset: %d, want 401 (every session revoked)", resp.StatusCode)
		}
	}
	if resp := s.do("POST", "/api/auth/login", `{"email":"`+email+`","password":"Correct-Horse-9"}`, jsonHeader(), nil); resp.StatusCode != 401 {
		t.Fatalf("old password: %d", resp.StatusCode)
	}
	s.loginAs(email, "New-Good-Pass-42")
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/password/reset", `{"token":"`+tok+`","password":"Third-Good-Pass-3"}`, jsonHeader(), &e), e, 400, "invalid_token")
	noMailTo(t, s.mailDir, "nobody-"+email)
}

func (s *testServer) loginAs(email, password string) sessionAnswer {
	s.t.Helper()
	var out sessionAnswer
	if resp := s.do("POST", "/api/auth/login", `{"email":"`+email+`","password":"`+password+`"}`, jsonHeader(), &out); resp.StatusCode != 200 {
		s.t.Fatalf("login %s: %d", email, resp.StatusCode)
	}
	return out
}

func TestPasswordChangeRoute(t *testing.T) {
	s := startServer(t, authEnv())
	ann := s.register("ann@example.com")
	other := s.loginAs("ann@example.com", "Correct-Horse-9")
	var e errorAnswer
	code(t, s.do("POST", "/api/auth/password/change", `{"current_password":"wrong","new_password":"New-Good-Pass-42"}`, bearer(ann.AccessToken), &e), e, 401, "invalid_credentials")
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/password/change", `{"current_password":"Correct-Horse-9","new_password":"weak"}`, bearer(ann.AccessToken), &e), e, 400, "weak_password")
	var pair struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	resp := s.do("POST", "/api/auth/password/change", `{"current_password":"Correct-Horse-9","new_password":"New-Good-Pass-42"}`, bearer(ann.AccessToken), &pair)
	if resp.StatusCode != 200 || pair.AccessToken == "" || pair.RefreshToken == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("change: %d %+v %q", resp.StatusCode, pair, resp.Header.Get("Cache-Control"))
	}
	for _, r := range []string{ann.RefreshToken, other.RefreshToken} {
		if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+r+`"}`, jsonHeader(), nil); resp.StatusCode != 401 {
			t.Fatalf("old refresh token after change: %d", resp.StatusCode)
		}
	}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+pair.RefreshToken+`"}`, jsonHeader(), nil); resp.StatusCode != 200 {
		t.Fatalf("new pair: %d", resp.StatusCode)
	}
	s.loginAs("ann@example.com", "New-Good-Pass-42")
}

func TestProfileSessionsActivityRoutes(t *testing.T) {
	s := startServer(t, authEnv())
	ann := s.register("ann@example.com")
	laptop := s.loginAs("ann@example.com", "Correct-Horse-9")
	bob := s.register("bob@example.com")
	_ = s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"wrong"}`, jsonHeader(), nil)

	// Personal data stays out of caches, whoever asks; an API answer is not forced so.
	for _, path := range []string{"/api/auth/me", "/api/auth/sessions", "/api/auth/activity", "/api/auth/me/export"} {
		for _, tok := range []string{ann.AccessToken, "not-a-token"} {
			if resp := s.do("GET", path, "", bearer(tok), nil); resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("GET %s (%d): Cache-Control %q, want no-store", path, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
		}
	}
	if resp := s.do("GET", "/healthz", "", nil, nil); resp.Header.Get("Cache-Control") == "no-store" {
		t.Error("GET /healthz is no-store: the header is meant for user routes")
	}

	var me meAnswer
	if resp := s.do("PATCH", "/api/auth/me", `{"full_name":"Ann Lee"}`, bearer(ann.AccessToken), &me); resp.StatusCode != 200 || me.FullName != "Ann Lee" {
		t.Fatalf("PATCH me: %d %+v", resp.StatusCode, me)
	}
	var e errorAnswer
	code(t, s.do("PATCH", "/api/auth/me", `{"full_name":"a\u0000b"}`, bearer(ann.AccessToken), &e), e, 400, "invalid_full_name")
	e = errorAnswer{}
	code(t, s.do("PATCH", "/api/auth/me", `{}`, bearer(ann.AccessToken), &e), e, 400, "invalid_request")

	var list struct {
		Sessions []struct {
			ID         string    `json:"id"`
			CreatedAt  time.Time `json:"created_at"`
			LastUsedAt time.Time `json:"last_used_at"`
			IP         string    `json:"ip"`
			UserAgent  string    `json:"user_agent"`
			Current    bool      `json:"current"`
		} `json:"sessions"`
	}
	req, _ := http.NewRequest("GET", s.base+"/api/auth/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+ann.AccessToken)
	raw := s.raw(req)
	if err := json.Unmarshal(raw, &list); err != nil || len(list.Sessions) != 2 {
		t.Fatalf("sessions: %v %s", err, raw)
	}
	current := 0
	for _, ss := range list.Sessions {
		if ss.Current {
			current++
		}
		if ss.IP != "127.0.0.1" || ss.CreatedAt.IsZero() || ss.LastUsedAt.IsZero() {
			t.Fatalf("session %+v", ss)
		}
	}
	if current != 1 {
		t.Fatalf("%d current sessions", current)
	}
	for _, secret := range []string{ann.AccessToken, ann.RefreshToken, laptop.RefreshToken, `"hash"`, "refresh_"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("sessions answer holds %q", secret)
		}
	}
	laptopID := ""
	for _, ss := range list.Sessions {
		if !ss.Current {
			laptopID = ss.ID
		}
	}
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/sessions/revoke", `{"id":"`+laptopID+`"}`, bearer(bob.AccessToken), &e), e, 404, "not_found")
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/sessions/revoke", `{"id":"nope"}`, bearer(ann.AccessToken), &e), e, 400, "invalid_id")
	if resp := s.do("POST", "/api/auth/sessions/revoke", `{"id":"`+laptopID+`"}`, bearer(ann.AccessToken), nil); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+laptop.RefreshToken+`"}`, jsonHeader(), nil); resp.StatusCode != 401 {
		t.Fatalf("revoked session refreshes: %d", resp.StatusCode)
	}

	var acts struct {
		Events []struct {
			At      time.Time `json:"at"`
			Action  string    `json:"action"`
			Success bool      `json:"success"`
			IP      string    `json:"ip"`
		} `json:"events"`
	}
	if resp := s.do("GET", "/api/auth/activity?limit=50", "", bearer(ann.AccessToken), &acts); resp.StatusCode != 200 {
		t.Fatalf("activity: %d", resp.StatusCode)
	}
	failed := false
	for _, a := range acts.Events {
		failed = failed || (a.Action == "login" && !a.Success)
	}
	if !failed || len(acts.Events) < 4 {
		t.Fatalf("activity without the failed login: %+v", acts.Events)
	}
	for _, bad := range []string{"0", "101", "abc", "-1"} {
		e = errorAnswer{}
		code(t, s.do("GET", "/api/auth/activity?limit="+bad, "", bearer(ann.AccessToken), &e), e, 400, "invalid_limit")
	}
	if resp := s.do("GET", "/api/auth/activity?limit=1", "", bearer(ann.AccessToken), &acts); resp.StatusCode != 200 || len(acts.Events) != 1 {
		t.Fatalf("limit=1: %d %d", resp.StatusCode, len(acts.Events))
	}
}

// raw sends req and returns the body.
func (s *testServer) raw(req *http.Request) []byte {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return []byte(b.String())
}

func TestExportAndErasure(t *testing.T) {
	t.Run("memory", func(t *testing.T) { eraseFlow(t, startServer(t, authEnv())) })
	t.Run("postgres", func(t *testing.T) {
		eraseFlow(t, startServer(t, authEnv("DATABASE_URL", pgDSN(t))))
	})
}

func eraseFlow(t *testing.T, s *testServer) {
	const email = "erase-me@example.com"
	ann := s.verifiedUser(email)
	key := s.generate(ann.AccessToken, `{"name":"ci","scopes":["read"]}`)
	if resp := s.do("GET", "/api/v1/ping", "", apiKey(key.Key), nil); resp.StatusCode != 200 {
		t.Fatalf("ping: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/password/forgot", `{"email":"`+email+`"}`, jsonHeader(), nil); resp.StatusCode != 202 {
		t.Fatalf("forgot: %d", resp.StatusCode)
	}
	_, _, resetTok := nextMail(t, s.mailDir, email)

	req, _ := http.NewRequest("GET", s.base+"/api/auth/me/export", nil)
	req.Header.Set("Authorization", "Bearer "+ann.AccessToken)
	raw := s.raw(req)
	var exp struct {
		Account meAnswer `json:"account"`
		Auth    struct {
			Sessions     []json.RawMessage `json:"sessions"`
			Activity     []json.RawMessage `json:"activity"`
			PendingLinks []json.RawMessage `json:"pending_links"`
		} `json:"auth"`
		APIKeys      []struct{ ID, Name string } `json:"api_keys"`
		UsageByMonth []struct {
			Month string `json:"month"`
			Calls int64  `json:"calls"`
		} `json:"usage_by_month"`
		Subscription *struct {
			Plan string `json:"plan"`
		} `json:"subscription"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatalf("export: %v %s", err, raw)
	}
	if exp.Account.Email != email || !exp.Account.EmailVerified || len(exp.Auth.Sessions) == 0 || len(exp.Auth.Activity) == 0 ||
		len(exp.Auth.PendingLinks) != 1 || len(exp.APIKeys) != 1 || exp.APIKeys[0].ID != key.ID ||
		len(exp.UsageByMonth) == 0 || exp.UsageByMonth[0].Calls != 1 || exp.Subscription == nil || exp.Subscription.Plan != "free" {
		t.Fatalf("export incomplete: %+v\n%s", exp, raw)
	}
	current := 0
	for _, sess := range exp.Auth.Sessions {
		if strings.Contains(string(sess), `"current":true`) {
			current++
		}
	}
	if current != 1 {
		t.Errorf("the export marks %d sessions current, want the caller's: %s", current, raw)
	}
	_, secret, _ := strings.Cut(key.Key, ".")
	for name, s := range map[string]string{
		"password": "Correct-Horse-9", "bcrypt hash": "$2a$", "access token": ann.AccessToken, "refresh token": ann.RefreshToken,
		"api key": key.Key, "key secret": secret, "reset token": resetTok,
		"reset token b64": base64.RawURLEncoding.EncodeToString([]byte(resetTok))[:20],
	} {
		if strings.Contains(string(raw), s) {
			t.Errorf("export holds the %s", name)
		}
	}
	for _, field := range []string{`"password":`, `"password_hash":`, `"key_hash":`, `"hash":`, `"token":`, `"secret":`, `"refresh_hash":`} {
		if strings.Contains(string(raw), field) {
			t.Errorf("export has a field %s", field)
		}
	}

	var e errorAnswer
	code(t, s.do("DELETE", "/api/auth/me", `{"password":"wrong"}`, bearer(ann.AccessToken), &e), e, 401, "invalid_credentials")
	if resp := s.do("DELETE", "/api/auth/me", `{"password":"Correct-Horse-9"}`, bearer(ann.AccessToken), nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	// No way back in.
	if resp := s.do("POST", "/api/auth/login", `{"email":"`+email+`","password":"Correct-Horse-9"}`, jsonHeader(), nil); resp.StatusCode != 401 {
		t.Errorf("old password: %d", resp.StatusCode)
	}
	if resp := s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+ann.RefreshToken+`"}`, jsonHeader(), nil); resp.StatusCode != 401 {
		t.Errorf("old refresh token: %d", resp.StatusCode)
	}
	if resp := s.do("GET", "/api/v1/ping", "", apiKey(key.Key), nil); resp.StatusCode != 401 {
		t.Errorf("old API key: %d", resp.StatusCode)
	}
	e = errorAnswer{}
	code(t, s.do("POST", "/api/auth/password/reset", `{"token":"`+resetTok+`","password":"New-Good-Pass-42"}`, jsonHeader(), &e), e, 400, "invalid_token")
	e = errorAnswer{}
	code(t, s.do("GET", "/api/auth/me", "", bearer(ann.AccessToken), &e), e, 401, "unauthorized")
	again := s.register(email)
	if again.User.ID == ann.User.ID || s.me(again.AccessToken).EmailVerified {
		t.Fatalf("re-registration %+v", again.User)
	}
}

// A key made with the token of an account being erased does not outlive the account:
// the token still passes the session check for a moment, but the key is revoked and the
// answer is 401.
func TestNoKeyOutlivesAnErasedAccount(t *testing.T) {
	a, s := startAppWith(t, authEnv(), nil)
	ann := s.register("ann@example.com")
	tok := bearer(ann.AccessToken)
	s.generate(ann.AccessToken, `{"name":"before","scopes":["read"]}`) // and the session check is cached as live
	if resp := s.do("DELETE", "/api/auth/me", `{"password":"Correct-Horse-9"}`, tok, nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	var e errorAnswer
	resp := s.do("POST", "/api/keys/generate", `{"name":"after","scopes":["read"]}`, tok, &e)
	if resp.StatusCode != 401 {
		t.Fatalf("generate after erasure: %d %+v, want 401", resp.StatusCode, e)
	}
	keys, err := a.keys.List(context.Background(), ecoid.MustParse(ann.User.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Status == apikey.Active {
			t.Fatalf("key %s (%s) of the erased account is active", k.ID, k.Name)
		}
	}
}
