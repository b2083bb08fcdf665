package auth_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
	"golang.org/x/crypto/bcrypt"
)

func Example() {
	ctx := context.Background()
	issuer, err := auth.NewIssuer(auth.IssuerConfig{Secret: []byte("an example secret of 32+ bytes!!")})
	if err != nil {
		panic(err)
	}
	svc, err := auth.NewService(auth.Config{
		Store:      memory.NewAuthStore(),
		Issuer:     issuer,
		BcryptCost: bcrypt.MinCost, // keep the example fast; the default is 10
	})
	if err != nil {
		panic(err)
	}
	client := auth.Client{IP: "192.0.2.1", UserAgent: "example"}

	res, err := svc.Register(ctx, client, "Ann@Example.com", "Correct-Horse-9", "Ann")
	fmt.Println(res.User.Email, err)

	_, err = svc.Login(ctx, client, "ann@example.com", "wrong")
	fmt.Println(err)

	pair, err := svc.Refresh(ctx, client, res.RefreshToken)
	fmt.Println(pair.SessionID == res.SessionID, err)

	_, err = svc.Refresh(ctx, client, res.RefreshToken) // the retired token again
	fmt.Println(errors.Is(err, auth.ErrRefreshReuse))
	// Output:
	// ann@example.com <nil>
	// auth: invalid email or password
	// true <nil>
	// true
}

func ExamplePolicy_Validate() {
	err := auth.DefaultPolicy().Validate("password")
	fmt.Println(err)
	var pe *auth.PolicyError
	if errors.As(err, &pe) {
		fmt.Println(pe.Failed)
	}
	fmt.Println(auth.NISTPolicy().Validate("a long lowercase passphrase"))
	// Output:
	// auth: weak password: at least 12 characters; an upper-case letter; a digit; a symbol
	// [min_length upper digit symbol]
	// <nil>
}

func ExampleNormalizeEmail() {
	fmt.Println(auth.NormalizeEmail("  Ann.Lee@Example.COM "))
	_, err := auth.NormalizeEmail("Ann <ann@example.com>")
	fmt.Println(err)
	// Output:
	// ann.lee@example.com <nil>
	// auth: invalid email address
}

func ExampleRequireUser() {
	now := func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) }
	issuer, _ := auth.NewIssuer(auth.IssuerConfig{Secret: []byte("an example secret of 32+ bytes!!"), Now: now})
	h := auth.RequireUser(issuer, auth.CookieConfig{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := auth.UserFrom(r.Context())
		fmt.Fprint(w, claims.UserID.Type())
	}))

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/me", nil))
	fmt.Println(w.Code, w.Body.String())

	token, _, _ := issuer.Issue(auth.AccessToken, "eco_usr_0VbxTV3rFkrg1WJJljozdv", "eco_ses_0VbxTV3rtsgOJ5TjFJanNi")
	r := httptest.NewRequest("GET", "/me", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Body.String())
	// Output:
	// 401 {"error":{"code":"unauthorized","message":"missing or malformed access token"}}
	//
	// 200 usr
}

// Rotating an EdDSA signing key: the new issuer signs with the new key and still accepts
// tokens of the old kid until that kid is removed from VerificationKeys.
func ExampleIssuerConfig_rotation() {
	oldKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)) // use crypto/rand in production
	newKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	user, session := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)

	before, _ := auth.NewIssuer(auth.IssuerConfig{SigningKey: oldKey, SigningKeyID: "2026-01"})
	oldToken, _, _ := before.Issue(auth.AccessToken, user, session)

	during, _ := auth.NewIssuer(auth.IssuerConfig{
		SigningKey: newKey, SigningKeyID: "2026-02",
		VerificationKeys: map[string]ed25519.PublicKey{"2026-01": oldKey.Public().(ed25519.PublicKey)},
	})
	_, err := during.Verify(oldToken, auth.AccessToken)
	fmt.Println(during.Algorithm(), "old token during rotation:", err == nil)

	after, _ := auth.NewIssuer(auth.IssuerConfig{SigningKey: newKey, SigningKeyID: "2026-02"})
	_, err = after.Verify(oldToken, auth.AccessToken)
	fmt.Println("old token after rotation:", err)
	// Output:
	// EdDSA old token during rotation: true
	// old token after rotation: auth: invalid token: unknown or missing kid
}
