package memory_test

import (
	"testing"

	"github.com/nexus-ecosystem/nexus/storage/memory"

	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Stores {
		return storagetest.Stores{
			Auth: memory.NewAuthStore(),
		}
	})
}
