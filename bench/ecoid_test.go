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

// contender is one library's way of doing the operation under test. Every contender pays
// the same indirect call, so the comparison stays fair.
type contender struct {
	name string
	op   func()
}

func runContenders(b *testing.B, contenders []contender) {
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.op()
			}
		})
	}
}

// BenchmarkNew: one fresh identifier as a string, the form every caller stores.
func BenchmarkNew(b *testing.B) {
	runContenders(b, []contender{
		{"ecoid", func() { sinkString = ecoid.New(ecoid.User).String() }},
		{"ulid", func() { sinkString = ulid.Make().String() }},
		{"uuidv4", func() { sinkString = uuid.New().String() }},
		{"uuidv7", func() { sinkString = uuid.Must(uuid.NewV7()).String() }},
		{"typeid", func() { sinkString = typeid.Must(typeid.WithPrefix("user")).String() }},
		{"ksuid", func() { sinkString = ksuid.New().String() }},
		{"xid", func() { sinkString = xid.New().String() }},
	})
}

// BenchmarkParse: validate an identifier received from outside.
func BenchmarkParse(b *testing.B) {
	eco := ecoid.New(ecoid.User).String()
	u := uuid.New().String()
	tid := typeid.Must(typeid.WithPrefix("user")).String()
	ks := ksuid.New().String()
	ul := ulid.Make().String()
	runContenders(b, []contender{
		{"ecoid", func() { _, sinkErr = ecoid.Parse(eco) }},
		{"uuid", func() { _, sinkErr = uuid.Parse(u) }},
		{"typeid", func() { _, sinkErr = typeid.FromString(tid) }},
		{"ksuid", func() { _, sinkErr = ksuid.Parse(ks) }},
		{"ulid", func() { _, sinkErr = ulid.ParseStrict(ul) }},
	})
}
