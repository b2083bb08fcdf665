package memory_test

import (
	"context"
	"fmt"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

func ExampleNewLimiter() {
	l := memory.NewLimiter()
	for i := 0; i < 3; i++ {
		d, _ := l.Allow(context.Background(), "eco_api_example", apikey.PerMinute(2))
		fmt.Println(d.Allowed, d.Remaining)
	}
	// Output:
	// true 1
	// true 0
	// false 0
}
