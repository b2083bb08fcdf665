package redis_test

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/redis"
)

// The example needs a Redis server, so it is compiled but not run.
func ExampleNewLimiter() {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	l := redis.NewLimiter(client) // time from the server's TIME; keys under "nexus:rl:"
	d, err := l.Allow(context.Background(), "eco_api_example", apikey.PerMinute(100))
	fmt.Println(d.Allowed, err)
}
