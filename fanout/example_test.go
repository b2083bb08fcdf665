package fanout_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/nexus-ecosystem/nexus/fanout"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

// A cache guarded by a bus drops one entry per event and everything on a Gap.
func Example() {
	a := memory.NewBus() // instance A's endpoint
	b := a.Connect()     // instance B's endpoint on the same hub
	defer a.Close()
	defer b.Close()

	var mu sync.Mutex
	cache := map[string]string{"key1": "active", "key2": "active"}
	done := make(chan struct{}, 2)
	b.Subscribe(func(e fanout.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case fanout.KeyChanged:
			delete(cache, e.ID)
		case fanout.Gap:
			clear(cache)
		}
		done <- struct{}{}
	})

	_ = a.Publish(context.Background(), fanout.Event{Kind: fanout.KeyChanged, ID: "key1"})
	<-done
	mu.Lock()
	fmt.Println(len(cache), cache["key2"])
	mu.Unlock()

	b.Interrupt() // as after a reconnect: events may have been lost
	<-done
	mu.Lock()
	fmt.Println(len(cache))
	mu.Unlock()
	// Output:
	// 1 active
	// 0
}
