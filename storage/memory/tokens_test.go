package memory_test

import (
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestTokenConformance(t *testing.T) {
	storagetest.RunTokens(t, func(_ *testing.T, now func() time.Time) apikey.TokenStore {
		return memory.NewTokenStore(memory.WithClock(now))
	})
}
