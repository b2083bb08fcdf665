package ecoid_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

func ExampleNew() {
	id := ecoid.New(ecoid.User)
	fmt.Println(len(id), id.Type(), id.String()[:8])
	// Output: 30 usr eco_usr_
}

func ExampleNewAt() {
	created := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	id := ecoid.NewAt(ecoid.Project, created)
	fmt.Println(id.Type(), id.Time())
	// Output: prj 2026-11-25 12:00:00 +0000 UTC
}

func ExampleParse() {
	id, err := ecoid.Parse("eco_api_0Ub2cYzA9fKq3XwT7mNpLs")
	fmt.Println(id.Type(), err)

	_, err = ecoid.Parse("eco_api_too-short")
	fmt.Println(errors.Is(err, ecoid.ErrInvalid))
	fmt.Println(err)
	// Output:
	// api <nil>
	// true
	// ecoid: invalid ID "eco_api_too-short": length 17, want 30
}
