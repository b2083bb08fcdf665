// Package interop tests Nexus with clients no one here wrote: coreos/go-oidc with
// golang.org/x/oauth2 as an OpenID Connect relying party, lestrrat-go/jwx as an
// independent JOSE implementation, and headless Chromium (through chromedp) on the
// built-in sign-in page. It is a module of its own so that these test-only dependencies
// stay out of the SDK's go.mod.
package interop
