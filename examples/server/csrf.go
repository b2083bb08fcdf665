package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/nexus-ecosystem/nexus/httpjson"
)

// crossOrigin returns middleware that refuses cross-origin state-changing requests from
// browsers, with 403 cross_origin_request: the defence against CSRF for the routes a
// cookie authenticates. It is the standard library's http.CrossOriginProtection, which
// looks at Sec-Fetch-Site (and Origin against Host for older browsers) of POST, PUT,
// PATCH and DELETE requests; GET, HEAD and OPTIONS, and requests from clients that send
// neither header (curl, servers, Stripe's webhooks), pass. Requests with an Authorization
// header pass too: a cookie does not authenticate them, and a cross-site page cannot set
// that header without a CORS preflight, which this server never grants. trusted lists
// extra origins ("https://app.example.com") allowed to make such requests.
func crossOrigin(trusted []string) (func(http.Handler) http.Handler, error) {
	cop := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("NEXUS_TRUSTED_ORIGINS: %w", err)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Header.Get canonicalizes its argument on every call; the name is canonical.
			if v := r.Header["Authorization"]; len(v) == 0 || v[0] == "" {
				if err := cop.Check(r); err != nil {
					httpjson.WriteError(w, http.StatusForbidden, "cross_origin_request",
						"cross-origin requests authenticated by cookie are refused; send the token in the Authorization header")
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// parseOrigins splits NEXUS_TRUSTED_ORIGINS (comma-separated).
func parseOrigins(v string) []string {
	var out []string
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
