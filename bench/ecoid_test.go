// Package bench compares Nexus with peer libraries. It is a module of its own so that the
// peers never enter the library's go.mod. Run: cd bench && go test -bench . -benchmem
package bench

import (
	"testing"

	"github.com/google/uuid"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/oklog/ulid/v2"
	"github.com/rs/xid"
	"github.com/segmentio/ksuid"
	"go.jetify.com/typeid"
)

var (
	sinkString string
	sinkErr    error
)

// New: one fresh identifier as a string, the form every caller stores.
func BenchmarkNew(b *testing.B) {
	b.Run("ecoid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sinkString = ecoid.New(ecoid.User).String()
		}
	})
	b.Run("ulid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sinkString = ulid.Make().String()
		}
	})
	b.Run("uuidv4", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sinkString = uuid.New().String()
		}
	})
	b.Run("uuidv7", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sinkString = uuid.Must(uuid.NewV7()).String()
		}
	})
	b.Run("typeid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sinkString = typeid.Must(typeid.WithPrefix("user")).String()
		}
	})
	b.Run("ksuid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sinkString = ksuid.New().String()
		}
	})
	b.Run("xid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sinkString = xid.New().String()
		}
	})
}

// Parse: validate an identifier received from outside.
func BenchmarkParse(b *testing.B) {
	eco := ecoid.New(ecoid.User).String()
	u := uuid.New().String()
	tid := typeid.Must(typeid.WithPrefix("user")).String()
	ks := ksuid.New().String()
	ul := ulid.Make().String()
	b.Run("ecoid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, sinkErr = ecoid.Parse(eco)
		}
	})
	b.Run("uuid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, sinkErr = uuid.Parse(u)
		}
	})
	b.Run("typeid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, sinkErr = typeid.FromString(tid)
		}
	})
	b.Run("ksuid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, sinkErr = ksuid.Parse(ks)
		}
	})
	b.Run("ulid", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, sinkErr = ulid.ParseStrict(ul)
		}
	})
}
