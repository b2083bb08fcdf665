module github.com/nexus-ecosystem/nexus/bench

go 1.24.0

replace github.com/nexus-ecosystem/nexus => ../

require (
	github.com/google/uuid v1.6.0
	github.com/nexus-ecosystem/nexus v0.0.0
	github.com/oklog/ulid/v2 v2.1.1
	github.com/rs/xid v1.6.0
	github.com/segmentio/ksuid v1.0.4
	go.jetify.com/typeid v1.3.0
)

require (
	github.com/gofrs/uuid/v5 v5.2.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
)
