// Package htmlpage sets the headers of the few HTML pages the SDK and its example server
// serve (the OpenID sign-in page, the pages that links in mail open): one place for what
// keeps them out of caches, frames and Referer headers, and free of script.
package htmlpage

import "net/http"

// CSP is the Content-Security-Policy of a page without script: inline styles only, never
// framed, no base URL. A page whose forms post only to its own origin and are not
// redirected elsewhere adds "; form-action 'self'" (CSP's form-action also governs
// where a form's answer may redirect, so the sign-in page, which redirects to the relying
// party, cannot).
const CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"

// SetHeaders sets the headers of an HTML page under the policy csp: the content type, no
// caching, no framing, no sniffing, and no Referer (the URL may hold a token).
func SetHeaders(h http.Header, csp string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
