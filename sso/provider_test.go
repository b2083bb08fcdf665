package sso_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/auth/totp"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

const testPassword = "Correct-Horse-9-battery"

// idp is a provider over memory stores on an httptest server, with one user and one
// project the user has a grant on.
type idp struct {
	srv      *httptest.Server
	auth     *auth.Service
	store    *memory.SSOStore
	provider *sso.Provider
	project  sso.Project
	secret   string
	user     auth.User
	redirect string
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	seed := make([]byte, ed25519.SeedSize)
	seed[3] = 9
	is, err := auth.NewIssuer(auth.IssuerConfig{SigningKey: ed25519.NewKeyFromSeed(seed), SigningKeyID: "k1", Issuer: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	mfaKey := make([]byte, auth.MFAKeySize)
	svc, err := auth.NewService(auth.Config{Store: memory.NewAuthStore(), Issuer: is, BcryptCost: 4, MFA: auth.MFAConfig{Key: mfaKey}})
	if err != nil {
		t.Fatal(err)
	}
	store := memory.NewSSOStore()
	projects := sso.NewProjects(store, nil)
	p, err := sso.NewProvider(sso.ProviderConfig{Issuer: srv.URL, Auth: svc, Projects: projects, Store: store, Cookies: auth.CookieConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	p.Register(mux)
	ctx := context.Background()
	res, err := svc.Register(ctx, auth.Client{}, "ann@example.com", testPassword, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://127.0.0.1:1/callback"
	proj, secret, err := projects.Register(ctx, "Atlas", []string{redirect})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.GrantAccess(ctx, auth.Client{}, res.User.ID, proj.ID, auth.RoleMember); err != nil {
		t.Fatal(err)
	}
	return &idp{srv: srv, auth: svc, store: store, provider: p, project: proj, secret: secret, user: res.User, redirect: redirect}
}

// browser is an HTTP client with cookies that does not follow redirects, so the test sees
// where the provider sends it.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := strings.Repeat("v", 20) + base64.RawURLEncoding.EncodeToString([]byte(ecoid.New(ecoid.Event)))
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

func (d *idp) authorizeURL(pk pkce, extra url.Values) string {
	q := url.Values{"response_type": {"code"}, "client_id": {string(d.project.ID)}, "redirect_uri": {d.redirect},
		"scope": {"openid email profile"}, "state": {"st-1"}, "nonce": {"no-1"},
		"code_challenge": {pk.challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return d.srv.URL + "/oauth/authorize?" + q.Encode()
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signIn fetches the sign-in page and posts the credentials from the same origin; it
// returns the final answer.
func (d *idp) signIn(t *testing.T, c *http.Client, authURL, email, password string) *http.Response {
	t.Helper()
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="password"`) {
		t.Fatalf("authorize without a session: %d, want the sign-in page; %s", resp.StatusCode, body)
	}
	form := url.Values{"email": {email}, "password": {password}}
	for _, m := range hiddenRE.FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	req, _ := http.NewRequest(http.MethodPost, d.srv.URL+"/oauth/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", d.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// codeFrom reads the code from a redirect to the client and checks state and iss.
func (d *idp) codeFrom(t *testing.T, resp *http.Response) string {
	t.Helper()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("want a 303 to the client, got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != d.redirect {
		t.Fatalf("redirected to %s, want %s", got, d.redirect)
	}
	q := loc.Query()
	if q.Get("state") != "st-1" || q.Get("iss") != d.srv.URL || q.Get("code") == "" {
		t.Fatalf("redirect query %v", q)
	}
	return q.Get("code")
}

func (d *idp) exchange(t *testing.T, form url.Values, basic bool) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(string(d.project.ID)), url.QueryEscape(d.secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (d *idp) codeGrant(code string, pk pkce) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {d.redirect}, "code_verifier": {pk.verifier}}
}

func TestCodeFlowWithPKCE(t *testing.T) {
	d := newIDP(t)
	pk := newPKCE()
	c := browser(t)
	code := d.codeFrom(t, d.signIn(t, c, d.authorizeURL(pk, nil), "ann@example.com", testPassword))

	status, tok := d.exchange(t, d.codeGrant(code, pk), true)
	if status != http.StatusOK || tok["token_type"] != "Bearer" || tok["id_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("token exchange: %d %v", status, tok)
	}
	claims := jwtPayload(t, tok["id_token"].(string))
	for k, want := range map[string]any{"iss": d.srv.URL, "sub": string(d.user.ID), "aud": string(d.project.ID), "nonce": "no-1", "email": "ann@example.com", "name": "Ann"} {
		if claims[k] != want {
			t.Errorf("id_token %s = %v, want %v", k, claims[k], want)
		}
	}
	for _, k := range []string{"exp", "iat", "auth_time"} {
		if _, ok := claims[k].(float64); !ok {
			t.Errorf("id_token lacks %s: %v", k, claims)
		}
	}
	// The access token is a project token and opens userinfo.
	req, _ := http.NewRequest(http.MethodGet, d.srv.URL+"/oauth/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || info["sub"] != string(d.user.ID) || info["email"] != "ann@example.com" {
		t.Fatalf("userinfo: %d %v", resp.StatusCode, info)
	}

	// A signed-in user is not asked again: the cookie from the sign-in suffices.
	pk2 := newPKCE()
	resp, err = c.Get(d.authorizeURL(pk2, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code2 := d.codeFrom(t, resp); code2 == code {
		t.Fatal("the second authorization returned the first code again")
	}

	// Refresh with client_secret_post, rotating the token.
	status, again := d.exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"client_id": {string(d.project.ID)}, "client_secret": {d.secret}}, false)
	if status != http.StatusOK || again["refresh_token"] == tok["refresh_token"] || again["id_token"] == nil {
		t.Fatalf("refresh: %d %v", status, again)
	}
	// The retired refresh token is reuse: refused, and the session dies.
	if status, _ := d.exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, true); status != http.StatusBadRequest {
		t.Fatalf("reused refresh token: %d, want 400", status)
	}
	if status, _ := d.exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {again["refresh_token"].(string)}}, true); status != http.StatusBadRequest {
		t.Fatalf("refresh after reuse revoked the session: %d, want 400", status)
	}
}

func TestCodeIsUsableOnceAndReuseRevokes(t *testing.T) {
	d := newIDP(t)
	pk := newPKCE()
	code := d.codeFrom(t, d.signIn(t, browser(t), d.authorizeURL(pk, nil), "ann@example.com", testPassword))
	status, tok := d.exchange(t, d.codeGrant(code, pk), true)
	if status != http.StatusOK {
		t.Fatalf("first exchange: %d %v", status, tok)
	}
	status, body := d.exchange(t, d.codeGrant(code, pk), true)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("second exchange: %d %v, want 400 invalid_grant", status, body)
	}
	// What the first use issued is revoked: its refresh token no longer works.
	if status, _ := d.exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, true); status != http.StatusBadRequest {
		t.Fatalf("refresh after code reuse: %d, want 400", status)
	}
}

func TestTokenEndpointEnforcesPKCEAndClientBinding(t *testing.T) {
	d := newIDP(t)
	other, otherSecret, err := sso.NewProjects(d.store, nil).Register(context.Background(), "Other", []string{d.redirect})
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(v url.Values){
		"wrong verifier":     func(v url.Values) { v.Set("code_verifier", strings.Repeat("x", 43)) },
		"missing verifier":   func(v url.Values) { v.Del("code_verifier") },
		"other redirect_uri": func(v url.Values) { v.Set("redirect_uri", d.redirect+"x") },
	} {
		pk := newPKCE()
		code := d.codeFrom(t, d.signIn(t, browser(t), d.authorizeURL(pk, nil), "ann@example.com", testPassword))
		form := d.codeGrant(code, pk)
		mutate(form)
		if status, body := d.exchange(t, form, true); status != http.StatusBadRequest {
			t.Errorf("%s: %d %v, want 400", name, status, body)
		}
		// A failed exchange spent the code, so a verifier cannot be guessed on one code (a
		// request without a verifier is malformed and refused before the code is looked up).
		if name == "missing verifier" {
			continue
		}
		if status, body := d.exchange(t, d.codeGrant(code, pk), true); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("%s, then the right exchange: %d %v, want 400 invalid_grant", name, status, body)
		}
	}
	// A code issued to Atlas cannot be redeemed by another client.
	pk := newPKCE()
	code := d.codeFrom(t, d.signIn(t, browser(t), d.authorizeURL(pk, nil), "ann@example.com", testPassword))
	form := d.codeGrant(code, pk)
	form.Set("client_id", string(other.ID))
	form.Set("client_secret", otherSecret)
	if status, body := d.exchange(t, form, false); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("code of another client: %d %v", status, body)
	}
	// Wrong client secret.
	form = d.codeGrant("x", pk)
	form.Set("client_id", string(d.project.ID))
	form.Set("client_secret", "wrong")
	if status, body := d.exchange(t, form, false); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", status, body)
	}
}

func TestAuthorizeNeverRedirectsToUnregisteredURI(t *testing.T) {
	d := newIDP(t)
	pk := newPKCE()
	for name, extra := range map[string]url.Values{
		"unregistered":   {"redirect_uri": {"https://evil.test/cb"}},
		"prefix":         {"redirect_uri": {d.redirect + "/more"}},
		"unknown client": {"client_id": {string(ecoid.New(ecoid.Project))}, "redirect_uri": {"https://evil.test/cb"}},
		"bad client":     {"client_id": {"nope"}},
	} {
		resp, err := browser(t).Get(d.authorizeURL(pk, extra))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d Location=%q, want 400 and no redirect", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// Errors after the redirect URI is known go back to it: PKCE is required.
	resp, err := browser(t).Get(d.authorizeURL(pk, url.Values{"code_challenge_method": {"plain"}}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "st-1" {
		t.Fatalf("plain PKCE: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestUserWithoutGrantGetsNoCode(t *testing.T) {
	d := newIDP(t)
	if _, err := d.auth.Register(context.Background(), auth.Client{}, "bob@example.com", testPassword, "Bob"); err != nil {
		t.Fatal(err)
	}
	resp := d.signIn(t, browser(t), d.authorizeURL(newPKCE(), nil), "bob@example.com", testPassword)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "access_denied" || loc.Query().Get("code") != "" {
		t.Fatalf("user without a grant: %d %q, want access_denied and no code", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestSignInFormRefusesCrossSiteAndMissingCSRF(t *testing.T) {
	d := newIDP(t)
	pk := newPKCE()
	form := url.Values{"email": {"ann@example.com"}, "password": {testPassword}}
	for k, v := range mustQuery(d.authorizeURL(pk, nil)) {
		form[k] = v
	}
	// No CSRF cookie/field: refused even from the same origin.
	req, _ := http.NewRequest(http.MethodPost, d.srv.URL+"/oauth/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Set-Cookie") != "" && strings.Contains(resp.Header.Get("Set-Cookie"), "nexus_access") {
		t.Fatalf("no CSRF token: %d", resp.StatusCode)
	}
	// Cross-site: refused by CrossOriginProtection.
	req, _ = http.NewRequest(http.MethodPost, d.srv.URL+"/oauth/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site sign-in post: %d, want 403", resp.StatusCode)
	}
}

func TestWrongPasswordShowsThePageAgain(t *testing.T) {
	d := newIDP(t)
	resp := d.signIn(t, browser(t), d.authorizeURL(newPKCE(), nil), "ann@example.com", "wrong-password-1A!")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "Wrong email") {
		t.Fatalf("wrong password: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("sign-in page CSP = %q", csp)
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	d := newIDP(t)
	var doc sso.Discovery
	getJSON(t, d.srv.URL+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != d.srv.URL || doc.JWKSURI != d.srv.URL+"/.well-known/jwks.json" || doc.CodeChallengeMethodsSupported[0] != "S256" ||
		doc.ResponseTypesSupported[0] != "code" || doc.IDTokenSigningAlgValuesSupported[0] != "EdDSA" {
		t.Fatalf("discovery = %+v", doc)
	}
	var set auth.JWKSet
	getJSON(t, doc.JWKSURI, &set)
	if len(set.Keys) != 1 || set.Keys[0].KeyID != "k1" {
		t.Fatalf("jwks = %+v", set)
	}
}

func TestRemoteVerifierTrustsDiscoveryOnly(t *testing.T) {
	d := newIDP(t)
	ctx := context.Background()
	v, err := sso.NewRemoteVerifier(ctx, sso.RemoteConfig{Issuer: d.srv.URL, Audience: string(d.project.ID)})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := sso.MintProjectToken(d.auth.Issuer(), sso.ProjectClaims{UserID: d.user.ID, ProjectID: d.project.ID, Role: auth.RoleMember}, 0, timeNow())
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, tok)
	if err != nil || c.UserID != d.user.ID || c.Role != auth.RoleMember {
		t.Fatalf("remote Verify = %+v, %v", c, err)
	}
	// Another project's token does not verify here.
	tokOther, _, _ := sso.MintProjectToken(d.auth.Issuer(), sso.ProjectClaims{UserID: d.user.ID, ProjectID: ecoid.New(ecoid.Project), Role: auth.RoleOwner}, 0, timeNow())
	if _, err := v.Verify(ctx, tokOther); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("other audience: %v", err)
	}
	// A wrong issuer is refused at start-up.
	if _, err := sso.NewRemoteVerifier(ctx, sso.RemoteConfig{Issuer: d.srv.URL + "/x", Audience: string(d.project.ID)}); !errors.Is(err, sso.ErrDiscovery) {
		t.Fatalf("wrong issuer: %v", err)
	}
}

func mustQuery(raw string) url.Values {
	u, _ := url.Parse(raw)
	return u.Query()
}

func getJSON(t *testing.T, u string, into any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

func jwtPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func timeNow() time.Time { return time.Now() }

var mfaTokenRE = regexp.MustCompile(`name="mfa_token" value="([^"]+)"`)

// TestSignInPageAsksForTheSecondFactor: with TOTP on, the password alone yields the code
// form (no cookie, no code for the client); a wrong code keeps the form; the right code
// finishes the flow.
func TestSignInPageAsksForTheSecondFactor(t *testing.T) {
	d := newIDP(t)
	ctx := context.Background()
	enr, err := d.auth.EnrollTOTP(ctx, auth.Client{}, d.user.ID, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := totp.DecodeSecret(enr.Secret)
	if err != nil {
		t.Fatal(err)
	}
	var params totp.Params
	step := params.Step(time.Now())
	if _, err := d.auth.ConfirmTOTP(ctx, auth.Client{}, d.user.ID, params.Code(secret, step)); err != nil {
		t.Fatal(err)
	}
	pk := newPKCE()
	c := browser(t)
	resp := d.signIn(t, c, d.authorizeURL(pk, nil), "ann@example.com", testPassword)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := mfaTokenRE.FindStringSubmatch(string(body))
	if resp.StatusCode != http.StatusOK || m == nil || resp.Header.Get("Location") != "" || strings.Contains(resp.Header.Get("Set-Cookie"), "nexus_access") {
		t.Fatalf("password of a TOTP user: %d, want the code form without a session", resp.StatusCode)
	}
	// post submits the code form of the page last shown (each page carries a fresh CSRF
	// token, as a browser would submit it).
	post := func(code string) *http.Response {
		form := url.Values{"mfa_token": {htmlUnescape(m[1])}, "code": {code}}
		for _, h := range hiddenRE.FindAllStringSubmatch(string(body), -1) {
			if h[1] != "mfa_token" {
				form.Set(h[1], htmlUnescape(h[2]))
			}
		}
		req, _ := http.NewRequest(http.MethodPost, d.srv.URL+"/oauth/authorize", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	bad := post("000000")
	body, _ = io.ReadAll(bad.Body)
	bad.Body.Close()
	if bad.StatusCode != http.StatusUnauthorized || bad.Header.Get("Location") != "" {
		t.Fatalf("wrong code: %d", bad.StatusCode)
	}
	// The code of the next step (inside the ±1 skew); the one used at confirm is spent.
	good := post(params.Code(secret, step+1))
	good.Body.Close()
	code := d.codeFrom(t, good)
	if status, tok := d.exchange(t, d.codeGrant(code, pk), true); status != http.StatusOK || tok["id_token"] == nil {
		t.Fatalf("exchange after the second factor: %d %v", status, tok)
	}
}

// signedInTokens signs Ann in through the form and exchanges the code: the token answer.
func (d *idp) signedInTokens(t *testing.T) map[string]any {
	t.Helper()
	pk := newPKCE()
	code := d.codeFrom(t, d.signIn(t, browser(t), d.authorizeURL(pk, nil), "ann@example.com", testPassword))
	status, tok := d.exchange(t, d.codeGrant(code, pk), true)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	return tok
}

// authorizeWith asks for a code with the access cookie access.
func (d *idp) authorizeWith(t *testing.T, access string, pk pkce) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.authorizeURL(pk, nil), nil)
	req.AddCookie(&http.Cookie{Name: "nexus_access", Value: access})
	resp, err := browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// login signs Ann in first-party.
func (d *idp) login(t *testing.T) auth.Result {
	t.Helper()
	res, err := d.auth.Login(context.Background(), auth.Client{}, "ann@example.com", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// refreshAt refreshes rt at the token endpoint.
func (d *idp) refreshAt(t *testing.T, rt string) (int, map[string]any) {
	t.Helper()
	return d.exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, true)
}

// A relying party's refresh token is good only at the token endpoint, for its client: as
// a first-party refresh token it is refused (it would open a full Nexus session), and a
// first-party refresh token is refused at the token endpoint.
func TestClientRefreshTokenIsNoFirstPartyToken(t *testing.T) {
	d := newIDP(t)
	ctx := context.Background()
	rt := d.signedInTokens(t)["refresh_token"].(string)
	if _, err := d.auth.Refresh(ctx, auth.Client{}, rt); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("auth.Refresh with the client's refresh token: %v, want ErrInvalidToken", err)
	}
	if _, err := d.auth.Issuer().Verify(rt, auth.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("the client's refresh token verified as an access token: %v", err)
	}
	login := d.login(t)
	if status, body := d.refreshAt(t, login.RefreshToken); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("a first-party refresh token at the token endpoint: %d %v", status, body)
	}
	// The client's own refresh still works, and still cannot be used first-party.
	status, again := d.refreshAt(t, rt)
	if status != http.StatusOK {
		t.Fatalf("client refresh: %d %v", status, again)
	}
	if _, err := d.auth.Refresh(ctx, auth.Client{}, again["refresh_token"].(string)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("auth.Refresh with the rotated client token: %v", err)
	}
}

// The signed-in check is the session's, not only the cookie's signature: after logout
// the cookie's token is still unexpired, and gets the sign-in page, never a code. The
// id_token's auth_time is when the session was opened, not when its token was minted.
func TestAuthorizeNeedsALiveSession(t *testing.T) {
	d := newIDP(t)
	ctx := context.Background()
	login := d.login(t)
	opened := time.Now().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond) // a refreshed token has a later iat than the session
	pair, err := d.auth.Refresh(ctx, auth.Client{}, login.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	pk := newPKCE()
	status, tok := d.exchange(t, d.codeGrant(d.codeFrom(t, d.authorizeWith(t, pair.AccessToken, pk)), pk), true)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	at := int64(jwtPayload(t, tok["id_token"].(string))["auth_time"].(float64))
	if at < opened.Unix()-1 || at > opened.Unix()+1 {
		t.Fatalf("auth_time %d, want the session's opening at %d (the access token was minted later)", at, opened.Unix())
	}
	// A refresh of the client's session keeps that auth_time: the client's own session was
	// opened later, at the exchange.
	status, again := d.refreshAt(t, tok["refresh_token"].(string))
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, again)
	}
	if got := int64(jwtPayload(t, again["id_token"].(string))["auth_time"].(float64)); got != at {
		t.Fatalf("auth_time after a refresh %d, want the sign-in's %d", got, at)
	}
	claims, err := d.auth.Issuer().Verify(pair.AccessToken, auth.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.auth.Logout(ctx, auth.Client{}, claims); err != nil {
		t.Fatal(err)
	}
	if resp := d.authorizeWith(t, pair.AccessToken, newPKCE()); resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("authorize with a logged-out session's cookie: %d %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Scopes the provider does not know are not granted, and a refresh may narrow the
// granted scope but never widen it (RFC 6749 §6).
func TestScopeIsWhatIsSupportedAndGranted(t *testing.T) {
	d := newIDP(t)
	pk := newPKCE()
	authURL := d.authorizeURL(pk, url.Values{"scope": {"openid admin write openid email"}})
	code := d.codeFrom(t, d.signIn(t, browser(t), authURL, "ann@example.com", testPassword))
	status, tok := d.exchange(t, d.codeGrant(code, pk), true)
	if status != http.StatusOK || tok["scope"] != "openid email" {
		t.Fatalf("exchange: %d scope %v, want the known scopes asked for, once: \"openid email\"", status, tok["scope"])
	}
	if got := jwtPayload(t, tok["access_token"].(string))["scope"]; got != "openid email" {
		t.Fatalf("access token scope %v", got)
	}
	refresh := func(rt, scope string) (int, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			form.Set("scope", scope)
		}
		return d.exchange(t, form, true)
	}
	for _, wider := range []string{"openid email profile", "openid superuser", "email"} {
		if status, body := refresh(tok["refresh_token"].(string), wider); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
			t.Fatalf("refresh asking %q: %d %v, want 400 invalid_scope", wider, status, body)
		}
	}
	status, narrow := refresh(tok["refresh_token"].(string), "openid")
	if status != http.StatusOK || narrow["scope"] != "openid" || jwtPayload(t, narrow["id_token"].(string))["email"] != nil {
		t.Fatalf("narrowed refresh: %d %v", status, narrow)
	}
	// Omitted, the scope is the one granted, not the last one asked for.
	status, same := refresh(narrow["refresh_token"].(string), "")
	if status != http.StatusOK || same["scope"] != "openid email" || jwtPayload(t, same["id_token"].(string))["email"] != "ann@example.com" {
		t.Fatalf("refresh without scope: %d %v", status, same)
	}
	if id := jwtPayload(t, same["id_token"].(string)); id["name"] != nil {
		t.Fatalf("the id_token has profile claims that were never granted: %v", id)
	}
}

// A code dies with the sign-in it came from: after a logout (or a password reset, which
// revokes every session), the code still in flight is refused at the token endpoint.
func TestCodeDiesWithItsSignIn(t *testing.T) {
	d := newIDP(t)
	ctx := context.Background()
	login := d.login(t)
	pk := newPKCE()
	code := d.codeFrom(t, d.authorizeWith(t, login.AccessToken, pk))
	claims, err := d.auth.Issuer().Verify(login.AccessToken, auth.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.auth.Logout(ctx, auth.Client{}, claims); err != nil {
		t.Fatal(err)
	}
	if status, body := d.exchange(t, d.codeGrant(code, pk), true); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("a code of a logged-out sign-in: %d %v, want 400 invalid_grant", status, body)
	}

	// The same through the sign-in form: the session it opens is the code's.
	c := browser(t)
	pk = newPKCE()
	code = d.codeFrom(t, d.signIn(t, c, d.authorizeURL(pk, nil), "ann@example.com", testPassword))
	sessions, err := d.auth.Sessions(ctx, d.user.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if err := d.auth.RevokeSession(ctx, auth.Client{}, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := d.exchange(t, d.codeGrant(code, pk), true); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("a code of a revoked form sign-in: %d %v, want 400 invalid_grant", status, body)
	}
}

// A retired client refresh token sent to the first-party refresh is refused there, and
// still counts as reuse: the client's session is revoked. A current one sent there is
// only refused.
func TestClientRefreshReuseIsCaughtAtTheWrongEndpoint(t *testing.T) {
	d := newIDP(t)
	ctx := context.Background()
	first := d.signedInTokens(t)["refresh_token"].(string)
	status, again := d.refreshAt(t, first)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, again)
	}
	current := again["refresh_token"].(string)
	if _, err := d.auth.Refresh(ctx, auth.Client{}, current); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("current client token at Refresh: %v", err)
	}
	status, third := d.refreshAt(t, current)
	if status != http.StatusOK {
		t.Fatalf("a current token sent to the wrong place revoked its session: %d %v", status, third)
	}
	if _, err := d.auth.Refresh(ctx, auth.Client{}, first); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("retired client token at Refresh: %v", err)
	}
	if status, body := d.refreshAt(t, third["refresh_token"].(string)); status != http.StatusBadRequest {
		t.Fatalf("the session survived the reuse of a retired token: %d %v", status, body)
	}
}

// The other way round: a retired first-party refresh token at the token endpoint is
// refused and revokes its first-party session.
func TestFirstPartyRefreshReuseIsCaughtAtTheTokenEndpoint(t *testing.T) {
	d := newIDP(t)
	ctx := context.Background()
	login := d.login(t)
	pair, err := d.auth.Refresh(ctx, auth.Client{}, login.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := d.refreshAt(t, login.RefreshToken); status != http.StatusBadRequest {
		t.Fatalf("a first-party refresh token at the token endpoint: %d", status)
	}
	if _, err := d.auth.Refresh(ctx, auth.Client{}, pair.RefreshToken); !errors.Is(err, auth.ErrSessionRevoked) {
		t.Fatalf("after its retired token was replayed at the token endpoint, Refresh = %v, want ErrSessionRevoked", err)
	}
}
