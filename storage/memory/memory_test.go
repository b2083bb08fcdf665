package memory_test

import (
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Stores {
		return storagetest.Stores{
			Auth:    memory.NewAuthStore(),
			APIKeys: memory.NewKeyStore(),
			Limiter: func(now func() time.Time) apikey.Limiter { return memory.NewLimiter(memory.WithClock(now)) },
			Usage:   memory.NewUsageStore(),
			Billing: memory.NewBillingStore(),
			SSO:     memory.NewSSOStore(),

			// The login throttle (auth.ThrottleStore).
			Throttle: memory.NewThrottleStore(0),
		}
	})
}
