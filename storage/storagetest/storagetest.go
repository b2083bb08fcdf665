// Package storagetest is the one conformance suite that every Nexus storage adapter must
// pass. An adapter's test file calls Run with a constructor for fresh, empty stores; each
// behaviour is a subtest, so `go test -run 'Conformance/auth/…'` picks one.
//
// Every store behaviour the domain packages rely on is written here once, so the memory
// and PostgreSQL adapters (and any third-party one) are held to the same contract.
package storagetest

import (
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/sso"
	"github.com/nexus-ecosystem/nexus/usage"
)

// Stores is one set of adapters under test. A nil field is an adapter that this backend
// does not provide; its part of the suite is skipped with a message saying so.
type Stores struct {
	// Auth is the auth.Store under test (users, sessions, grants, activity log).
	Auth auth.Store

	// APIKeys is the apikey.Store under test.
	APIKeys apikey.Store
	// Limiter returns the apikey.Limiter under test, reading time from now.
	Limiter func(now func() time.Time) apikey.Limiter

	// Usage is the usage.Store under test (request log, quota counter, daily rollup).
	Usage usage.Store

	// Billing is the billing.Store under test (subscriptions, Stripe events, overage ledger).
	Billing billing.Store

	// SSO is the sso.Store under test (registered projects, authorization codes). Its
	// codes reference users of Auth, so both must be of the same backend.
	SSO sso.Store

	// Throttle is the auth.ThrottleStore under test. ThrottlePeer, when not nil, is a
	// second handle on the same state, as another instance of a service would hold one
	// (nil for a backend that lives in one process).
	Throttle, ThrottlePeer auth.ThrottleStore
}

// NewStores returns fresh, empty stores for one test. It may call t.Cleanup to release
// them.
type NewStores func(t *testing.T) Stores

// Run runs the whole suite. Each subtest calls newStores for stores of its own.
func Run(t *testing.T, newStores NewStores) {
	t.Helper()
	t.Run("auth", func(t *testing.T) { testAuth(t, newStores) })
	t.Run("account", func(t *testing.T) { testAccount(t, newStores) })
	t.Run("mfa", func(t *testing.T) { testMFA(t, newStores) })
	t.Run("apikey", func(t *testing.T) { testAPIKeys(t, newStores) })
	t.Run("limiter", func(t *testing.T) { testLimiter(t, newStores) })
	t.Run("usage", func(t *testing.T) { runUsage(t, newStores) })
	t.Run("billing", func(t *testing.T) { testBilling(t, newStores) })
	t.Run("sso", func(t *testing.T) { testSSO(t, newStores) })
	t.Run("throttle", func(t *testing.T) { testThrottle(t, newStores) })
}

// provided returns a store of the backend under test, or skips the test, naming the nil
// field, when the backend does not provide that store.
func provided[T comparable](t *testing.T, store T, field string) T {
	t.Helper()
	var none T
	if store == none {
		t.Skipf("Stores.%s is nil: this backend does not provide it", field)
	}
	return store
}
