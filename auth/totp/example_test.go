package totp_test

import (
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/auth/totp"
)

// A code is checked within one step of skew, and Match says which step it was, so a
// caller can refuse that step a second time.
func ExampleParams_Match() {
	secret := []byte("12345678901234567890") // the RFC 6238 test seed
	var p totp.Params                        // SHA-1, 6 digits, 30 s
	at := time.Unix(1111111109, 0)
	code := p.Code(secret, p.Step(at))
	fmt.Println(code)

	typed, _ := p.ParseCode("081 804")
	step, ok := p.Match(secret, typed, at.Add(25*time.Second), 1) // the next step, one of skew
	fmt.Println(ok, step == p.Step(at))
	// Output:
	// 081804
	// true true
}
