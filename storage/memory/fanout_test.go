package memory_test

import (
	"testing"

	"github.com/nexus-ecosystem/nexus/fanout"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
)

func TestFanoutConformance(t *testing.T) {
	storagetest.RunFanout(t, func(t *testing.T) storagetest.OpenBus {
		first := memory.NewBus()
		t.Cleanup(func() { _ = first.Close() })
		return func(t *testing.T) (fanout.Bus, func()) {
			b := first.Connect()
			t.Cleanup(func() { _ = b.Close() })
			return b, b.Interrupt
		}
	})
}
