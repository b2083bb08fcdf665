package main

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/internal/htmlpage"
)

// linkPages serve the pages that the links in mail open, NEXUS_PUBLIC_URL followed by
// /verify-email?token=… or /reset-password?token=…, so that a link works with the server
// alone. A front end of one's own can serve these paths instead: the JSON routes
// (POST /api/auth/verify-email, POST /api/auth/password/reset) are the API.
//
// GET shows a form that holds the token; only its POST spends the token, calling the
// same service method as the JSON route. A mail scanner or link preview that fetches the
// link therefore spends nothing. The pages carry no script, and their headers keep the
// token out of Referer headers and caches (Referrer-Policy: no-referrer, no-store); the
// request log never has the query. The form posts to the same origin, which the
// server's cross-origin check lets through and refuses from any other.
type linkPages struct {
	svc     *auth.Service
	cookies auth.CookieConfig
	log     *slog.Logger
}

func (p linkPages) register(rt *router) {
	rt.HandleFunc("GET /verify-email", p.showVerify)
	rt.HandleFunc("POST /verify-email", p.verify)
	rt.HandleFunc("GET /reset-password", p.showReset)
	rt.HandleFunc("POST /reset-password", p.reset)
}

// page is what linkPage renders.
type page struct {
	Title, Message string
	Action, Token  string // a form posting the token to Action; none when Action is ""
	Password       bool   // the form asks for a new password
}

var linkPage = template.Must(template.New("link").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
input,button{font:inherit;padding:.4rem .6rem}label{display:block;margin:.8rem 0}</style></head>
<body><h1>{{.Title}}</h1>{{if .Message}}<p>{{.Message}}</p>{{end}}
{{- if .Action}}<form method="post" action="{{.Action}}"><input type="hidden" name="token" value="{{.Token}}">
{{- if .Password}}<label>New password <input type="password" name="password" autocomplete="new-password" required minlength="8"></label>{{end}}
<button type="submit">{{if .Password}}Set the new password{{else}}Confirm my email{{end}}</button></form>{{end}}
</body></html>
`))

// linkPageCSP is htmlpage.CSP with form-action 'self': the forms post here, and are
// answered here.
const linkPageCSP = htmlpage.CSP + "; form-action 'self'"

// render writes p with the headers every link page has.
func (lp linkPages) render(w http.ResponseWriter, status int, p page) {
	htmlpage.SetHeaders(w.Header(), linkPageCSP)
	w.WriteHeader(status)
	if err := linkPage.Execute(w, p); err != nil {
		lp.log.Warn("link page", "err", err)
	}
}

// maxLinkToken bounds the token a page accepts; the links' tokens are far shorter.
const maxLinkToken = 512

// linkToken reads the token of the query (GET) or form (POST).
func linkToken(r *http.Request) string {
	t := r.FormValue("token")
	if len(t) > maxLinkToken {
		return ""
	}
	return t
}

func (lp linkPages) showVerify(w http.ResponseWriter, r *http.Request) {
	lp.showForm(w, r, page{Title: "Confirm your email", Action: "/verify-email"})
}

func (lp linkPages) showReset(w http.ResponseWriter, r *http.Request) {
	lp.showForm(w, r, page{Title: "Choose a new password", Action: "/reset-password", Password: true})
}

// showForm renders p's form with the token of the link, or says that the link has none.
func (lp linkPages) showForm(w http.ResponseWriter, r *http.Request, p page) {
	if p.Token = linkToken(r); p.Token == "" {
		lp.render(w, http.StatusBadRequest, page{Title: "Link incomplete", Message: "This link has no token. Open the link from the mail again."})
		return
	}
	lp.render(w, http.StatusOK, p)
}

func (lp linkPages) verify(w http.ResponseWriter, r *http.Request) {
	_, err := lp.svc.VerifyEmail(r.Context(), auth.ClientFromRequest(r), linkToken(r))
	switch {
	case err == nil:
		lp.render(w, http.StatusOK, page{Title: "Email confirmed", Message: "Your email address is confirmed. You can close this page."})
	case errors.Is(err, auth.ErrAlreadyVerified):
		lp.render(w, http.StatusOK, page{Title: "Email confirmed", Message: "Your email address was already confirmed."})
	default:
		lp.failed(w, r, err)
	}
}

func (lp linkPages) reset(w http.ResponseWriter, r *http.Request) {
	t := linkToken(r)
	_, err := lp.svc.ResetPassword(r.Context(), auth.ClientFromRequest(r), t, r.PostFormValue("password"))
	var pe *auth.PolicyError
	switch {
	case err == nil:
		auth.ClearTokenCookies(w, lp.cookies) // every session is revoked, this browser's too
		lp.render(w, http.StatusOK, page{Title: "Password changed", Message: "Your password is changed, and every session of your account is signed out. Sign in with the new password."})
	case errors.As(err, &pe): // the token is not spent: try another password
		lp.render(w, http.StatusBadRequest, page{Title: "Choose a new password", Message: strings.TrimPrefix(pe.Error(), "auth: "),
			Action: "/reset-password", Token: t, Password: true})
	default:
		lp.failed(w, r, err)
	}
}

// failed shows why a link did not work, without internals.
func (lp linkPages) failed(w http.ResponseWriter, r *http.Request, err error) {
	var te *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrInvalidOneTimeToken):
		lp.render(w, http.StatusBadRequest, page{Title: "Link not valid", Message: "This link is invalid, was used already or has expired. Ask for a new one."})
	case errors.As(err, &te):
		lp.render(w, http.StatusTooManyRequests, page{Title: "Too many attempts", Message: "Too many attempts from here. Try again later."})
	default:
		lp.log.ErrorContext(r.Context(), "link page failed", "path", r.URL.Path, "err", err)
		lp.render(w, http.StatusServiceUnavailable, page{Title: "Try again later", Message: "This could not be done right now. Try the link again later."})
	}
}
