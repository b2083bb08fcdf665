module github.com/nexus-ecosystem/nexus

go 1.25.0

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/jmoiron/sqlx v1.4.0
	github.com/lib/pq v1.12.3
	github.com/redis/go-redis/v9 v9.12.1
	github.com/stripe/stripe-go/v76 v76.25.0
	golang.org/x/crypto v0.41.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/text v0.28.0 // indirect
)
