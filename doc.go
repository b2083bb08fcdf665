// Package nexus is an embeddable identity, access and monetization layer for Go services.
//
// Nexus gives a service what a SaaS API needs around its own handlers:
//
//   - [github.com/nexus-ecosystem/nexus/ecoid]: typed, time-sortable identifiers
//     (eco_usr_…, eco_api_…) with strict parsing.
//   - auth: users with passwords (bcrypt), JWT access and refresh tokens with rotation and
//     reuse detection, cookies, the RequireUser middleware, project access and an activity log.
//   - apikey: API keys shown once and stored as hashes, a verify cache, and net/http
//     middleware for authentication, scopes and per-key rate limits.
//   - usage: a non-blocking batching tracker for API calls, its middleware, exact monthly
//     quotas and analytics.
//   - billing: plans, Stripe subscriptions, webhooks and idempotent overage billing.
//
// Each domain package defines the small store interfaces it needs. The adapters live in
// storage/memory (tests, demos, one process), storage/postgres (production, with embedded
// migrations) and storage/redis (a rate limiter shared by many instances); every adapter
// passes the one conformance suite in storage/storagetest.
//
// examples/server wires everything into a complete HTTP API, and is the place to copy
// handler wiring from.
package nexus
