// Package sso makes Nexus the identity provider of the ecosystem's other projects, and
// gives those projects the other half.
//
// On the Nexus side, Projects registers a project as an OpenID Connect client (exact
// redirect URIs, a client secret shown once and stored as a SHA-256), and
// MintProjectToken issues short project access tokens (aud = the project's ID, claim
// role) signed with the EdDSA key that the JWKS publishes. On the project side,
// TokenVerifier checks those tokens with keys from a KeyFunc: LocalKeys inside Nexus, or
// keys fetched through OIDC discovery and the JWKS.
//
// Standards: RFC 6749 and RFC 7636 (PKCE, S256 only), OpenID Connect Core 1.0, RFC 7517
// and RFC 8037 (Ed25519 JWKs), RFC 9068 (JWT access tokens), RFC 8725 (JWT best practice).
package sso
