package memory_test

import (
	"testing"

	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
	"github.com/nexus-ecosystem/nexus/usage"
)

func TestLeaseConformance(t *testing.T) {
	storagetest.RunLeases(t, func(*testing.T) usage.BlockCounter { return memory.NewUsageStore() })
}
