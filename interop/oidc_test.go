package interop

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
)

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signInOverHTTP plays the browser with a plain HTTP client: it opens the RP's login,
// lands on Nexus's sign-in page, posts the credentials, and follows the redirects back to
// the RP's callback. It returns the RP's final answer.
func signInOverHTTP(t *testing.T, rp *relyingParty, n *nexus, email, password string) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second}
	resp, err := c.Get(rp.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), n.srv.URL+"/oauth/authorize") {
		t.Fatalf("login did not reach the sign-in page: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	form := url.Values{"email": {email}, "password": {password}}
	for _, m := range hiddenRE.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], unescape(m[2]))
	}
	req, _ := http.NewRequest(http.MethodPost, n.srv.URL+"/oauth/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", n.srv.URL)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

func unescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// TestGoOIDCRelyingPartySignsIn: a relying party built only on go-oidc and x/oauth2
// discovers Nexus, runs the code flow with PKCE, verifies the id_token from the JWKS and
// reads userinfo.
func TestGoOIDCRelyingPartySignsIn(t *testing.T) {
	rp := newRelyingParty(t)
	n := startNexus(t, rp.redirectURI())
	rp.connect(t, n)

	status, body := signInOverHTTP(t, rp, n, userEmail, userPassword)
	res := <-rp.results
	if res.Err != nil || status != http.StatusOK {
		t.Fatalf("sign-in: %d %s (%v)", status, body, res.Err)
	}
	if res.IDToken.Subject != string(n.user.ID) || res.IDToken.Issuer != n.srv.URL || len(res.IDToken.Audience) != 1 || res.IDToken.Audience[0] != string(n.project.ID) {
		t.Fatalf("id_token sub/iss/aud = %s %s %v", res.IDToken.Subject, res.IDToken.Issuer, res.IDToken.Audience)
	}
	for _, k := range []string{"auth_time", "iat", "exp", "nonce"} {
		if _, ok := res.Claims[k]; !ok {
			t.Errorf("id_token lacks %s: %v", k, res.Claims)
		}
	}
	if res.UserInfo.Subject != string(n.user.ID) || res.UserInfo.Email != userEmail {
		t.Fatalf("userinfo = %+v", res.UserInfo)
	}
	if res.Token.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	// x/oauth2 refreshes through the token endpoint when the access token has expired.
	expired := *res.Token
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := rp.oauth.TokenSource(context.Background(), &expired).Token()
	if err != nil || fresh.AccessToken == res.Token.AccessToken || fresh.RefreshToken == res.Token.RefreshToken {
		t.Fatalf("refresh through x/oauth2: %v", err)
	}
}

// TestGoOIDCUserWithoutGrantGetsNoCode: Nexus sends access_denied, never a code.
func TestGoOIDCUserWithoutGrantGetsNoCode(t *testing.T) {
	rp := newRelyingParty(t)
	n := startNexus(t, rp.redirectURI())
	rp.connect(t, n)
	if _, err := n.auth.Register(context.Background(), auth.Client{}, "bob@example.com", userPassword, "Bob"); err != nil {
		t.Fatal(err)
	}
	status, _ := signInOverHTTP(t, rp, n, "bob@example.com", userPassword)
	res := <-rp.results
	if res.Err == nil || !strings.Contains(res.Err.Error(), "access_denied") || status != http.StatusBadRequest {
		t.Fatalf("user without a grant: %d %v, want access_denied", status, res.Err)
	}
}

// TestUnregisteredRedirectIsNeverFollowed: an attacker's redirect_uri gets an error page
// at Nexus, not a redirect carrying a code.
func TestUnregisteredRedirectIsNeverFollowed(t *testing.T) {
	rp := newRelyingParty(t)
	n := startNexus(t, rp.redirectURI())
	rp.connect(t, n)
	evil := rp.oauth
	evil.RedirectURL = "https://evil.test/steal"
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(evil.AuthCodeURL("s", oauth2SChallenge()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("unregistered redirect_uri: %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestJOSELibraryVerifiesProjectToken: lestrrat-go/jwx, given only the JWKS URL (from
// discovery), the issuer and the audience, verifies a project token.
func TestJOSELibraryVerifiesProjectToken(t *testing.T) {
	n := startNexus(t, "http://127.0.0.1:1/cb")
	tok, _, err := sso.MintProjectToken(n.auth.Issuer(), sso.ProjectClaims{UserID: n.user.ID, ProjectID: n.project.ID, Role: auth.RoleMember}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set, err := jwk.Fetch(ctx, n.srv.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("jwx fetch: %v", err)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer(n.srv.URL), jwt.WithAudience(string(n.project.ID)), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("jwx verify: %v", err)
	}
	if sub, _ := parsed.Subject(); sub != string(n.user.ID) {
		t.Fatalf("sub = %q", sub)
	}
	var role string
	if err := parsed.Get("role", &role); err != nil || role != "member" {
		t.Fatalf("role = %q (%v)", role, err)
	}
	// The wrong audience fails in the independent implementation too.
	if _, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer(n.srv.URL), jwt.WithAudience(string(ecoid.New(ecoid.Project))), jwt.WithValidate(true)); err == nil {
		t.Fatal("jwx accepted another audience")
	}
}
