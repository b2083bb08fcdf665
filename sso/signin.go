package sso

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"

	"github.com/nexus-ecosystem/nexus/internal/htmlpage"
)

// authParamNames are the authorization request parameters the sign-in form carries in
// hidden fields from the GET to the POST.
var authParamNames = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method"}

// authParams picks the authorization request out of a posted form.
func authParams(form url.Values) url.Values {
	q := url.Values{}
	for _, k := range authParamNames {
		if v, ok := form[k]; ok {
			q[k] = v
		}
	}
	return q
}

type signInPage struct {
	Project  string
	Error    string
	MFAToken string // set when the second step asks for a code
	CSRF     string
	Hidden   []hiddenField
	Action   string
}

type hiddenField struct{ Name, Value string }

// signInTemplate is the built-in sign-in page: no script, no external resource, escaped
// by html/template. The CSRF token is a double-submit value: the same random string in a
// SameSite=Strict cookie and in the form.
var signInTemplate = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to {{.Project}}</title>
<style>body{font:16px system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;box-sizing:border-box}button{margin-top:1rem;padding:.6rem 1.2rem}.err{color:#b00020}</style>
</head><body>
<h1>Sign in</h1>
<p>to continue to <strong>{{.Project}}</strong> with your Nexus account.</p>
{{if .Error}}<p class="err" role="alert" id="error">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<input type="hidden" name="csrf_token" value="{{.CSRF}}">
{{if .MFAToken}}<input type="hidden" name="mfa_token" value="{{.MFAToken}}">
<label for="code">Authentication code</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" autofocus>
<label for="recovery_code">or a recovery code</label>
<input id="recovery_code" name="recovery_code" autocomplete="off">
{{else}}<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{{end}}<button type="submit" id="submit">Continue</button>
</form>
</body></html>
`))

// renderSignIn writes the sign-in page (or its second step when mfaToken is set) with a
// fresh CSRF token.
func (p *Provider) renderSignIn(w http.ResponseWriter, r *http.Request, ar authRequest, msg, mfaToken string, status int) {
	csrf := randomToken()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: csrf, Path: authorizePath, HttpOnly: true,
		Secure: !p.cfg.Cookies.Insecure, SameSite: http.SameSiteStrictMode, MaxAge: 15 * 60})
	page := signInPage{Project: ar.project.Name, Error: msg, MFAToken: mfaToken, CSRF: csrf, Action: authorizePath}
	for _, k := range authParamNames {
		if v := ar.params.Get(k); v != "" {
			page.Hidden = append(page.Hidden, hiddenField{k, v})
		}
	}
	securePage(w)
	w.WriteHeader(status)
	_ = signInTemplate.Execute(w, page)
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title></head>
<body><h1>Sign-in error</h1><p id="error">{{.}}</p></body></html>
`))

// renderError shows an error that must not be redirected (an unknown client or
// redirect_uri: RFC 6749 §4.1.2.1).
func (p *Provider) renderError(w http.ResponseWriter, e *pageError) {
	securePage(w)
	w.WriteHeader(e.status)
	_ = errorTemplate.Execute(w, e.message)
}

// securePage sets the headers of every HTML page: no caching, no framing
// (clickjacking), no script, no referrer leaking the authorization request. No
// form-action: the sign-in form's answer redirects to the relying party.
func securePage(w http.ResponseWriter) { htmlpage.SetHeaders(w.Header(), htmlpage.CSP) }

// csrfOK compares the form's csrf_token with the cookie set by the page, in constant
// time. Cross-origin posts are refused before this by http.CrossOriginProtection.
func (p *Provider) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf_token"))) == 1
}
