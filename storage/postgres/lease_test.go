package postgres_test

import (
	"testing"

	"github.com/nexus-ecosystem/nexus/storage/postgres"
	"github.com/nexus-ecosystem/nexus/storage/postgres/pgtest"
	"github.com/nexus-ecosystem/nexus/storage/storagetest"
	"github.com/nexus-ecosystem/nexus/usage"
)

func TestLeaseConformance(t *testing.T) {
	storagetest.RunLeases(t, func(t *testing.T) usage.BlockCounter {
		db := pgtest.New(t)
		db.SetMaxOpenConns(16)
		return postgres.NewUsageStore(db)
	})
}
