package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// closeObjects makes every object schema of doc that lists properties and says nothing of
// others refuse them (additionalProperties: false), so that a live answer with a field
// the description does not declare fails the test: the description is complete, not
// only correct.
func closeObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		sc := ref.Value
		seen[sc] = true
		if sc.Type.Is(openapi3.TypeObject) && len(sc.Properties) > 0 && sc.AdditionalProperties.Has == nil && sc.AdditionalProperties.Schema == nil {
			sc.AdditionalProperties = openapi3.AdditionalProperties{Has: openapi3.Ptr(false)}
		}
		for _, p := range sc.Properties {
			walk(p)
		}
		walk(sc.Items)
		walk(sc.AdditionalProperties.Schema)
		for _, list := range []openapi3.SchemaRefs{sc.AllOf, sc.AnyOf, sc.OneOf} {
			for _, r := range list {
				walk(r)
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for _, mt := range resp.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// documented lists "METHOD /path" of every operation of doc, sorted.
func documented(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// The document names exactly the routes the router has, in the mode where all exist
// (EdDSA on, so the OIDC routes are registered; metrics on the API listener).
func TestOpenAPINamesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	s := edApp(t, ssoEnv())
	routes := s.routes().Patterns()
	sort.Strings(routes)
	if got := documented(doc); !slices.Equal(got, routes) {
		for _, r := range routes {
			if !slices.Contains(got, r) {
				t.Errorf("route %q is not in openapi.yaml", r)
			}
		}
		for _, d := range got {
			if !slices.Contains(routes, d) {
				t.Errorf("openapi.yaml names %q, which the router does not have", d)
			}
		}
	}
}

func init() {
	openapi3.SchemaErrorDetailsDisabled = true // an error names the field, not the whole schema
	for _, ct := range []string{"text/html", "application/yaml"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	// A JWK Set is JSON (RFC 7517 §8.5.1): its answer is held to its schema as JSON.
	openapi3filter.RegisterBodyDecoder("application/jwk-set+json", openapi3filter.JSONBodyDecoder)
}

// validator is an http.RoundTripper that checks every answer of the server against the
// document (status, headers, content type, body schema) and notes which statuses each
// operation answered.
type validator struct {
	t      *testing.T
	router routers.Router
	next   http.RoundTripper

	mu   sync.Mutex
	seen map[string]map[int]bool // "METHOD /path template" → statuses
}

func newValidator(t *testing.T, base string) *validator {
	doc := loadOpenAPI(t)
	closeObjects(doc)
	doc.Servers = openapi3.Servers{{URL: base}}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{t: t, router: r, next: http.DefaultTransport, seen: map[string]map[int]bool{}}
}

func (v *validator) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	route, params, ferr := v.router.FindRoute(req)
	if ferr != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			v.t.Errorf("%s %s answered %d but openapi.yaml has no such operation: %v", req.Method, req.URL.Path, resp.StatusCode, ferr)
		}
		return resp, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		v.t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %.400s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	op := route.Method + " " + route.Path
	v.mu.Lock()
	if v.seen[op] == nil {
		v.seen[op] = map[int]bool{}
	}
	v.seen[op][resp.StatusCode] = true
	v.mu.Unlock()
	return resp, nil
}

// install makes http.DefaultClient (what testServer.do uses) validate every answer until
// the test ends. The package's tests do not run in parallel.
func (v *validator) install(t *testing.T) {
	old := http.DefaultClient.Transport
	http.DefaultClient.Transport = v
	t.Cleanup(func() { http.DefaultClient.Transport = old })
}

// require fails the test for each operation of the document that never answered its
// success status, and for each named (operation, status) never seen.
func (v *validator) require(t *testing.T, doc *openapi3.T, also map[string][]int) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, op := range documented(doc) {
		if op == "POST /oauth/authorize" {
			continue // the sign-in form carries a per-page CSRF token: interop/'s browser test signs in through it
		}
		method, path, _ := strings.Cut(op, " ")
		success := 0
		for code := range doc.Paths.Find(path).GetOperation(method).Responses.Map() {
			if c := atoiOr(code); c >= 200 && c < 300 && (success == 0 || c < success) {
				success = c
			}
		}
		if !v.seen[op][success] {
			t.Errorf("%s: its success %d was never validated (seen %v)", op, success, v.seen[op])
		}
	}
	for op, codes := range also {
		for _, c := range codes {
			if !v.seen[op][c] {
				t.Errorf("%s: answer %d was never validated (seen %v)", op, c, v.seen[op])
			}
		}
	}
}

func atoiOr(s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0
	}
	return n
}

func pkce(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Real answers of the running server (in memory, EdDSA on, billing on stripe-mock, mail to
// a directory, TOTP on) for every route, its success and its main errors, validated
// against openapi.yaml.
func TestOpenAPIMatchesLiveAnswers(t *testing.T) {
	env := billingEnv(t)
	delete(env, "NEXUS_JWT_SECRET")
	for k, v := range ssoEnv("NEXUS_MFA_KEY", testMFAKey) {
		env[k] = v
	}
	s := startServer(t, env)
	v := newValidator(t, s.base)
	v.install(t)
	j := jsonHeader()
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

	// Operations.
	s.do("GET", "/healthz", "", nil, nil)
	s.do("GET", "/readyz", "", nil, nil)
	s.do("GET", "/metrics", "", nil, nil)
	s.do("GET", "/openapi.yaml", "", nil, nil)

	// Accounts.
	ann := s.verifiedUser("ann@example.com")
	tok := bearer(ann.AccessToken)
	s.do("POST", "/api/auth/register", `{"email":"ann@example.com","password":"Correct-Horse-9","full_name":"Ann"}`, j, nil) // 409
	s.do("POST", "/api/auth/register", `{"email":"nope","password":"Correct-Horse-9"}`, j, nil)                              // 400
	s.do("POST", "/api/auth/register", `{"email":`, j, nil)                                                                  // 400 invalid_json
	s.do("POST", "/api/auth/register", `{}`, http.Header{"Content-Type": {"text/plain"}}, nil)                               // 415
	big := http.Header{"Content-Type": {"application/json"}}
	s.do("POST", "/api/auth/register", `{"email":"`+strings.Repeat("a", 1<<20)+`"}`, big, nil) // 413
	s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"wrong-Horse-9"}`, j, nil)
	var pair sessionAnswer
	s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Correct-Horse-9"}`, j, &pair)
	s.do("POST", "/api/auth/refresh", `{"refresh_token":"`+pair.RefreshToken+`"}`, j, nil)
	s.do("POST", "/api/auth/refresh", `{"refresh_token":"nonsense"}`, j, nil) // 401
	s.do("GET", "/api/auth/me", "", tok, nil)
	s.do("GET", "/api/auth/me", "", nil, nil) // 401
	s.do("PATCH", "/api/auth/me", `{"full_name":"Ann B"}`, tok, nil)
	s.do("PATCH", "/api/auth/me", `{}`, tok, nil) // 400
	s.do("GET", "/api/auth/me/export", "", tok, nil)
	s.do("POST", "/api/auth/verify-email/send", "", tok, nil)                                                                                     // 409 already verified
	s.do("POST", "/api/auth/verify-email/send", `{bad`, tok, nil)                                                                                 // 400 invalid_json
	s.do("POST", "/api/auth/verify-email/send", `hello`, http.Header{"Authorization": tok["Authorization"], "Content-Type": {"text/plain"}}, nil) // 415
	s.do("POST", "/api/auth/verify-email", `{"token":"nonsense"}`, j, nil)                                                                        // 400
	s.do("POST", "/api/auth/password/forgot", `{"email":"ann@example.com"}`, j, nil)
	_, _, resetTok := nextMail(t, s.mailDir, "ann@example.com")
	s.do("POST", "/api/auth/password/reset", `{"token":"nonsense","password":"Another-Horse-9"}`, j, nil) // 400
	s.do("POST", "/api/auth/password/reset", `{"token":"`+resetTok+`","password":"Another-Horse-9"}`, j, nil)
	// The pages the links in mail open.
	bea := s.register("bea@example.com")
	s.do("POST", "/api/auth/verify-email/send", "", bearer(bea.AccessToken), nil)
	_, _, verifyTok := nextMail(t, s.mailDir, "bea@example.com")
	s.do("GET", "/verify-email?token="+verifyTok, "", nil, nil)
	s.do("GET", "/verify-email", "", nil, nil)                                           // 400
	s.do("POST", "/verify-email", url.Values{"token": {"nonsense"}}.Encode(), form, nil) // 400
	s.do("POST", "/verify-email", url.Values{"token": {verifyTok}}.Encode(), form, nil)
	s.do("POST", "/api/auth/password/forgot", `{"email":"bea@example.com"}`, j, nil)
	_, _, beaReset := nextMail(t, s.mailDir, "bea@example.com")
	s.do("GET", "/reset-password?token="+beaReset, "", nil, nil)
	s.do("GET", "/reset-password", "", nil, nil)                                                                // 400
	s.do("POST", "/reset-password", url.Values{"token": {beaReset}, "password": {"short"}}.Encode(), form, nil) // 400
	s.do("POST", "/reset-password", url.Values{"token": {beaReset}, "password": {"Another-Horse-9"}}.Encode(), form, nil)

	var changed sessionAnswer
	s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Another-Horse-9"}`, j, &changed)
	tok = bearer(changed.AccessToken)
	s.do("POST", "/api/auth/password/change", `{"current_password":"wrong","new_password":"Correct-Horse-9"}`, tok, nil) // 401
	s.do("POST", "/api/auth/password/change", `{"current_password":"Another-Horse-9","new_password":"Correct-Horse-9"}`, tok, &changed)
	tok = bearer(changed.AccessToken)
	var sessions struct {
		Sessions []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"sessions"`
	}
	s.do("GET", "/api/auth/sessions", "", tok, &sessions)
	s.do("POST", "/api/auth/sessions/revoke", `{"id":"eco_ses_0000000000000000000000"}`, tok, nil) // 400 or 404
	other := s.register("other@example.com")
	var otherSessions struct {
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
	}
	s.do("GET", "/api/auth/sessions", "", bearer(other.AccessToken), &otherSessions)
	if len(otherSessions.Sessions) > 0 {
		s.do("POST", "/api/auth/sessions/revoke", `{"id":"`+otherSessions.Sessions[0].ID+`"}`, tok, nil) // 404
	}
	second := s.loginAs("ann@example.com", "Correct-Horse-9")
	s.do("GET", "/api/auth/sessions", "", tok, &sessions)
	for _, ss := range sessions.Sessions {
		if !ss.Current {
			s.do("POST", "/api/auth/sessions/revoke", `{"id":"`+ss.ID+`"}`, tok, nil) // 204
			break
		}
	}
	_ = second
	s.do("GET", "/api/auth/activity?limit=5", "", tok, nil)
	s.do("GET", "/api/auth/activity?limit=0", "", tok, nil) // 400
	s.do("POST", "/api/auth/logout", "", bearer(s.register("leaver@example.com").AccessToken), nil)
	// Cross-origin cookie request: 403.
	s.do("PATCH", "/api/auth/me", `{"full_name":"x"}`, http.Header{"Content-Type": {"application/json"}, "Sec-Fetch-Site": {"cross-site"},
		"Cookie": {"nexus_access=" + changed.AccessToken}}, nil)

	// Two-factor authentication.
	fresh := bearer(s.register("nomfa@example.com").AccessToken)
	s.do("POST", "/api/auth/mfa/totp/confirm", `{"code":"123456"}`, fresh, nil)                                                                   // 400: nothing enrolled
	s.do("POST", "/api/auth/mfa/totp/enroll", `{bad`, fresh, nil)                                                                                 // 400 invalid_json
	s.do("POST", "/api/auth/mfa/totp/enroll", `hello`, http.Header{"Authorization": fresh["Authorization"], "Content-Type": {"text/plain"}}, nil) // 415
	mfaUser, secret, recovery := s.mfaOn("mfa@example.com")
	s.do("POST", "/api/auth/mfa/totp/enroll", `{"password":"Correct-Horse-9"}`, bearer(mfaUser.AccessToken), nil) // 409
	s.do("POST", "/api/auth/mfa/totp/enroll", `{"password":"Wrong-Horse-9"}`, fresh, nil)                         // 401
	s.do("POST", "/api/auth/mfa/totp/confirm", `{"code":"000000"}`, bearer(mfaUser.AccessToken), nil)             // 409 (already on)
	mfaTok := s.mfaLogin("mfa@example.com", j)
	s.mfaVerify(`{"mfa_token":"`+mfaTok+`","code":"000000"}`, j) // 401
	s.mfaVerify(`{"mfa_token":"`+mfaTok+`"}`, j)                 // 400
	s.mfaVerify(`{"mfa_token":"`+mfaTok+`","recovery_code":"`+recovery[0]+`"}`, j)
	s.do("POST", "/api/auth/mfa/totp/disable", `{"password":"wrong","code":"000000"}`, bearer(mfaUser.AccessToken), nil) // 401
	s.do("POST", "/api/auth/mfa/totp/disable", `{"password":"Correct-Horse-9","code":"`+totpCode(t, secret, 1)+`"}`, bearer(mfaUser.AccessToken), nil)
	s.do("POST", "/api/auth/mfa/totp/disable", `{"password":"Correct-Horse-9","code":"000000"}`, bearer(mfaUser.AccessToken), nil) // 409

	// API keys and the API.
	key := s.generate(changed.AccessToken, `{"name":"k","scopes":["read"],"rate_limit_per_minute":2}`)
	s.do("POST", "/api/keys/generate", `{"name":"k","rate_limit_per_minute":0}`, tok, nil) // 400
	s.do("GET", "/api/keys/list?limit=1", "", tok, nil)
	s.do("GET", "/api/keys/list?cursor=nonsense", "", tok, nil) // 400
	var rotated generatedAnswer
	s.do("POST", "/api/keys/rotate", `{"id":"`+string(key.ID)+`"}`, tok, &rotated)
	s.do("POST", "/api/keys/rotate", `{"id":"eco_api_00000000000000000000"}`, tok, nil) // 400 or 404
	s.do("GET", "/api/v1/ping", "", apiKey(rotated.Key), nil)
	s.do("GET", "/api/v1/ping", "", apiKey(rotated.Key), nil)
	s.do("GET", "/api/v1/ping", "", apiKey(rotated.Key), nil) // 429
	s.do("GET", "/api/v1/ping", "", nil, nil)                 // 401
	writeOnly := s.generate(changed.AccessToken, `{"name":"w","scopes":["write"]}`)
	s.do("GET", "/api/v1/ping", "", apiKey(writeOnly.Key), nil) // 403
	s.do("POST", "/api/keys/revoke", `{"id":"`+string(writeOnly.ID)+`"}`, tok, nil)
	s.do("GET", "/api/v1/ping", "", apiKey(writeOnly.Key), nil)                                     // 401 revoked_api_key
	s.do("POST", "/api/keys/revoke", `{"id":"`+string(key.ID)+`"}`, bearer(other.AccessToken), nil) // 404
	s.do("POST", "/api/keys/rotate", `{"id":"`+string(writeOnly.ID)+`"}`, tok, nil)                 // 409

	// Usage.
	s.do("GET", "/api/usage/current", "", tok, nil)
	s.do("GET", "/api/usage/history?days=7", "", tok, nil)
	s.do("GET", "/api/usage/history?days=0", "", tok, nil) // 400
	s.do("GET", "/api/usage/endpoints?days=7", "", tok, nil)
	s.do("GET", "/api/usage/overage", "", tok, nil)

	// Billing.
	s.do("GET", "/api/subscriptions/current", "", tok, nil)
	s.do("POST", "/api/subscriptions/checkout", `{"plan":"gold"}`, tok, nil) // 400
	s.do("POST", "/api/subscriptions/checkout", `{"plan":"pro"}`, tok, nil)
	s.do("POST", "/api/subscriptions/portal", "", tok, nil)
	s.do("POST", "/api/subscriptions/cancel", "", tok, nil) // 409 on Free
	uid := changed.User.ID
	s.stripeEvent("checkout.session.completed", time.Now().Add(-time.Minute), fmt.Sprintf(
		`{"id":"cs_1","object":"checkout.session","payment_status":"paid","client_reference_id":%q,"customer":"cus_srv","subscription":"sub_srv","metadata":{"eco_id":%q,"plan":"pro"}}`, uid, uid))
	s.do("POST", "/api/webhooks/stripe", `{}`, http.Header{"Stripe-Signature": {"t=1,v1=00"}}, nil) // 400
	s.do("POST", "/api/subscriptions/cancel", "", tok, nil)
	s.do("POST", "/api/cron/process-overage", "", nil, nil) // 401
	s.do("POST", "/api/cron/process-overage", "", bearer(testCronSecret), nil)
	s.do("POST", "/api/cron/process-overage?period=bad", "", bearer(testCronSecret), nil)                                 // 400
	s.do("POST", "/api/cron/process-overage?period="+time.Now().UTC().Format("2006-01"), "", bearer(testCronSecret), nil) // 409

	// Admin and projects.
	boss := bearer(s.adminSession("boss@example.com"))
	s.do("GET", "/api/admin/analytics/overview", "", boss, nil)
	s.do("GET", "/api/admin/analytics/overview", "", tok, nil) // 403
	s.do("GET", "/api/admin/analytics/users?page=1&limit=10", "", boss, nil)
	s.do("GET", "/api/admin/analytics/users?page=0", "", boss, nil) // 400
	var proj projectAnswer
	s.do("POST", "/api/projects", `{"name":"Shop","redirect_uris":["https://shop.example.com/cb"]}`, boss, &proj)
	s.do("POST", "/api/projects", `{"name":"","redirect_uris":[]}`, boss, nil)                           // 400
	s.do("POST", "/api/projects", `{"name":"x","redirect_uris":["https://x.example.com/cb"]}`, tok, nil) // 403
	s.do("GET", "/api/projects", "", boss, nil)
	s.do("POST", "/api/auth/token", `{"project_id":"`+proj.ID+`"}`, tok, nil)                    // 403 no access
	s.do("POST", "/api/auth/token", `{"project_id":"eco_prj_0000000000000000000000"}`, tok, nil) // 403: no project, no access
	s.do("POST", "/api/projects/access", `{"project_id":"`+proj.ID+`","user_id":"`+uid+`","role":"member"}`, boss, nil)
	s.do("POST", "/api/projects/access", `{"project_id":"eco_prj_00000000000000000000","user_id":"`+uid+`","role":"member"}`, boss, nil) // 400/404
	s.do("GET", "/api/projects/mine", "", tok, nil)
	s.do("POST", "/api/projects/access", `{"project_id":"`+proj.ID+`","user_id":"`+other.User.ID+`","role":"viewer"}`, boss, nil)
	s.do("POST", "/api/projects/access/revoke", `{"project_id":"`+proj.ID+`","user_id":"`+other.User.ID+`"}`, boss, nil)
	s.do("POST", "/api/projects/access/revoke", `{"project_id":"`+proj.ID+`","user_id":"`+other.User.ID+`"}`, boss, nil) // 404
	s.do("POST", "/api/auth/token", `{"project_id":"`+proj.ID+`"}`, tok, nil)

	// OIDC: discovery, keys, the code flow with PKCE, userinfo.
	s.do("GET", "/.well-known/openid-configuration", "", nil, nil)
	s.do("GET", "/.well-known/jwks.json", "", nil, nil)
	noFollow := &http.Client{Transport: v, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := strings.Repeat("v", 43)
	q := url.Values{"response_type": {"code"}, "client_id": {proj.ClientID}, "redirect_uri": {"https://shop.example.com/cb"},
		"scope": {"openid email profile"}, "state": {"st"}, "nonce": {"n"}, "code_challenge": {pkce(verifier)}, "code_challenge_method": {"S256"}}
	get := func(rawQuery string, cookie string) *http.Response {
		req, _ := http.NewRequest("GET", s.base+"/oauth/authorize?"+rawQuery, nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "nexus_access", Value: cookie})
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	get(q.Encode(), "") // 200 sign-in page
	bad := url.Values{"response_type": {"code"}, "client_id": {"eco_prj_unknown"}}
	get(bad.Encode(), "") // 400 page
	resp := get(q.Encode(), changed.AccessToken)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if resp.StatusCode != http.StatusSeeOther || code == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	s.do("POST", "/oauth/authorize", "", form, nil) // the sign-in form without its fields
	s.do("POST", "/oauth/authorize", "email=a", http.Header{"Content-Type": form["Content-Type"], "Origin": {"http://evil.example"},
		"Sec-Fetch-Site": {"cross-site"}}, nil) // 403 cross_origin_request
	tokenForm := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://shop.example.com/cb"},
		"code_verifier": {verifier}, "client_id": {proj.ClientID}, "client_secret": {proj.ClientSecret}}
	var oidc struct {
		AccessToken string `json:"access_token"`
	}
	s.do("POST", "/oauth/token", tokenForm.Encode(), form, &oidc)
	s.do("POST", "/oauth/token", tokenForm.Encode(), form, nil) // 400 invalid_grant: the code works once
	wrong := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {verifier},
		"client_id": {proj.ClientID}, "client_secret": {"wrong"}}
	s.do("POST", "/oauth/token", wrong.Encode(), form, nil) // 401 invalid_client
	s.do("GET", "/oauth/userinfo", "", http.Header{"Authorization": {"Bearer " + oidc.AccessToken}}, nil)
	s.do("POST", "/oauth/userinfo", "", http.Header{"Authorization": {"Bearer " + oidc.AccessToken}}, nil)
	s.do("GET", "/oauth/userinfo", "", nil, nil) // 401

	// Erasure last: it revokes ann's keys and sessions.
	s.do("DELETE", "/api/auth/me", `{"password":"wrong"}`, tok, nil) // 401
	s.do("DELETE", "/api/auth/me", `{"password":"Correct-Horse-9"}`, bearer(s.register("gone@example.com").AccessToken), nil)

	// Unrouted: 404 and 405 as JSON (not operations of the document).
	s.do("GET", "/no/such/route", "", nil, nil)
	s.do("DELETE", "/healthz", "", nil, nil)

	v.require(t, loadOpenAPI(t), map[string][]int{
		"POST /api/auth/register":           {400, 409, 413, 415},
		"POST /api/auth/login":              {401},
		"POST /api/auth/refresh":            {401},
		"GET /api/auth/me":                  {401},
		"PATCH /api/auth/me":                {400, 403},
		"POST /api/auth/verify-email/send":  {409},
		"POST /api/auth/verify-email":       {400},
		"POST /api/auth/password/reset":     {400},
		"GET /verify-email":                 {400},
		"POST /verify-email":                {400},
		"GET /reset-password":               {400},
		"POST /reset-password":              {400},
		"POST /api/auth/password/change":    {401},
		"POST /api/auth/sessions/revoke":    {404},
		"GET /api/auth/activity":            {400},
		"POST /api/auth/mfa/totp/enroll":    {401, 409},
		"POST /api/auth/mfa/verify":         {400, 401},
		"POST /api/auth/mfa/totp/disable":   {401, 409},
		"POST /api/keys/generate":           {400},
		"GET /api/keys/list":                {400},
		"POST /api/keys/revoke":             {404},
		"POST /api/keys/rotate":             {409},
		"GET /api/v1/ping":                  {401, 403, 429},
		"GET /api/usage/history":            {400},
		"POST /api/subscriptions/checkout":  {400},
		"POST /api/subscriptions/cancel":    {409},
		"POST /api/webhooks/stripe":         {400},
		"POST /api/cron/process-overage":    {401},
		"GET /api/admin/analytics/overview": {403},
		"GET /api/admin/analytics/users":    {400},
		"POST /api/projects":                {400, 403},
		"POST /api/auth/token":              {403},
		"GET /oauth/authorize":              {303, 400},
		"POST /oauth/token":                 {400, 401},
		"GET /oauth/userinfo":               {401},
		"DELETE /api/auth/me":               {401},
	})
}
