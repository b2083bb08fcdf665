// Package testenv finds the external services that integration tests use. Each service is
// named by an environment variable; when it is unset the test is skipped with a message
// naming the variable, unless NEXUS_TEST_REQUIRE=1, in which case it fails.
package testenv

import (
	"os"
	"testing"
)

// The variables that name the test services.
const (
	PostgresVar = "NEXUS_TEST_POSTGRES" // a lib/pq DSN
	RedisVar    = "NEXUS_TEST_REDIS"    // host:port
	StripeVar   = "NEXUS_TEST_STRIPE"   // base URL of stripe-mock
	RequireVar  = "NEXUS_TEST_REQUIRE"  // "1": a missing service fails the test
)

// Postgres returns the DSN of the test PostgreSQL server.
func Postgres(t testing.TB) string { return lookup(t, PostgresVar) }

// Redis returns the address of the test Redis server.
func Redis(t testing.TB) string { return lookup(t, RedisVar) }

// Stripe returns the base URL of the test stripe-mock server.
func Stripe(t testing.TB) string { return lookup(t, StripeVar) }

func lookup(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv(RequireVar) == "1" {
		t.Fatalf("%s is not set and %s=1: this test needs the service", name, RequireVar)
	}
	t.Skipf("%s is not set: skipping a test that needs it", name)
	return ""
}
