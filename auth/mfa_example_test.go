package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/auth/totp"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"golang.org/x/crypto/bcrypt"
)

// Turning TOTP on, and a login that needs the second factor. The clock is fixed so the
// codes, computed as an authenticator app would, are deterministic.
func ExampleService_VerifyMFA() {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	issuer, _ := auth.NewIssuer(auth.IssuerConfig{Secret: []byte("an example secret of 32+ bytes!!"), Now: clock})
	svc, err := auth.NewService(auth.Config{
		Store: memory.NewAuthStore(), Issuer: issuer, BcryptCost: bcrypt.MinCost, Now: clock,
		MFA: auth.MFAConfig{Key: bytes.Repeat([]byte{1}, auth.MFAKeySize)}, // from NEXUS_MFA_KEY in real life
	})
	if err != nil {
		panic(err)
	}
	client := auth.Client{IP: "192.0.2.1", UserAgent: "example"}
	ann, _ := svc.Register(ctx, client, "ann@example.com", "Correct-Horse-9", "Ann")

	en, _ := svc.EnrollTOTP(ctx, client, ann.User.ID, "Correct-Horse-9") // the password again; show en.URL as a QR code, once
	secret, _ := totp.DecodeSecret(en.Secret)
	var app totp.Params // what the user's authenticator app computes
	codes, err := svc.ConfirmTOTP(ctx, client, ann.User.ID, app.Code(secret, app.Step(now)))
	fmt.Println(len(codes), err)

	now = now.Add(30 * time.Second) // the next code
	_, err = svc.Login(ctx, client, "ann@example.com", "Correct-Horse-9")
	var mr *auth.MFARequiredError
	fmt.Println(errors.As(err, &mr))

	code := app.Code(secret, app.Step(now))
	res, err := svc.VerifyMFA(ctx, client, mr.Token, code)
	fmt.Println(res.User.Email, err)

	_, err = svc.VerifyMFA(ctx, client, mr.Token, code) // the same token and code again
	fmt.Println(err)
	// Output:
	// 10 <nil>
	// true
	// ann@example.com <nil>
	// auth: invalid or expired mfa token
}
