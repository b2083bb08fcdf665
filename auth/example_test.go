package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
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
