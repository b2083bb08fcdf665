package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// testAccount runs every behaviour of auth.AccountStore.
func testAccount(t *testing.T, newStores NewStores) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s auth.Store)
	}{
		{"OneTimeTokenSingleUse", acctTokenSingleUse},
		{"OneTimeTokenPurposeBound", acctTokenPurposeBound},
		{"OneTimeTokenExpires", acctTokenExpires},
		{"OneTimeTokenReplacesOlder", acctTokenReplaces},
		{"OneTimeTokenConcurrentConsumeOneWins", acctTokenConcurrentConsume},
		{"OneTimeTokenDelete", acctTokenDelete},
		{"EmailVerification", acctEmailVerification},
		{"UpdateProfile", acctUpdateProfile},
		{"UserSessions", acctUserSessions},
		{"AccountActivities", acctActivities},
		{"EraseUser", acctErase},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, provided(t, newStores(t).Auth, "Auth")) })
	}
}

func acctToken(t *testing.T, s auth.Store, u auth.User, purpose auth.TokenPurpose, secret string) auth.OneTimeToken {
	t.Helper()
	h := sha256.Sum256([]byte(secret))
	tok := auth.OneTimeToken{
		Hash: h[:], UserID: u.ID, Purpose: purpose, Email: u.Email,
		CreatedAt: authTime, ExpiresAt: authTime.Add(time.Hour),
	}
	if err := s.SaveOneTimeToken(context.Background(), tok); err != nil {
		t.Fatalf("SaveOneTimeToken: %v", err)
	}
	return tok
}

func acctSameToken(t *testing.T, got, want auth.OneTimeToken) {
	t.Helper()
	if !bytes.Equal(got.Hash, want.Hash) || got.UserID != want.UserID || got.Purpose != want.Purpose || got.Email != want.Email ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("token %+v, want %+v", got, want)
	}
}

func acctTokenSingleUse(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "once@example.com")
	tok := acctToken(t, s, u, auth.PurposeResetPassword, "secret-1")
	got, err := s.ConsumeOneTimeToken(ctx, tok.Hash, auth.PurposeResetPassword, authTime.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	acctSameToken(t, got, tok)
	if _, err := s.ConsumeOneTimeToken(ctx, tok.Hash, auth.PurposeResetPassword, authTime.Add(time.Minute)); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("second consume = %v, want ErrNotFound", err)
	}
	other := sha256.Sum256([]byte("never issued"))
	if _, err := s.ConsumeOneTimeToken(ctx, other[:], auth.PurposeResetPassword, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown token = %v, want ErrNotFound", err)
	}
	ghost := auth.User{ID: ecoid.New(ecoid.User), Email: "ghost@example.com"}
	h := sha256.Sum256([]byte("ghost"))
	err = s.SaveOneTimeToken(ctx, auth.OneTimeToken{Hash: h[:], UserID: ghost.ID, Purpose: auth.PurposeVerifyEmail, Email: ghost.Email, CreatedAt: authTime, ExpiresAt: authTime.Add(time.Hour)})
	if !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("token for an unknown user = %v, want ErrNotFound", err)
	}
}

func acctTokenPurposeBound(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "purpose@example.com")
	tok := acctToken(t, s, u, auth.PurposeVerifyEmail, "verify-secret")
	if _, err := s.ConsumeOneTimeToken(ctx, tok.Hash, auth.PurposeResetPassword, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("verification token redeemed for a reset: %v", err)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, tok.Hash, auth.PurposeVerifyEmail, authTime); err != nil {
		t.Fatalf("the token no longer works for its own purpose after a wrong-purpose try: %v", err)
	}
}

func acctTokenExpires(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "late@example.com")
	tok := acctToken(t, s, u, auth.PurposeResetPassword, "late")
	if _, err := s.ConsumeOneTimeToken(ctx, tok.Hash, auth.PurposeResetPassword, tok.ExpiresAt); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("consume at expiry = %v, want ErrNotFound", err)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, tok.Hash, auth.PurposeResetPassword, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("an expired token is not removed: a clock behind redeemed it: %v", err)
	}
}

func acctTokenReplaces(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "twice@example.com")
	first := acctToken(t, s, u, auth.PurposeResetPassword, "first")
	verify := acctToken(t, s, u, auth.PurposeVerifyEmail, "verify")
	second := acctToken(t, s, u, auth.PurposeResetPassword, "second")
	if _, err := s.ConsumeOneTimeToken(ctx, first.Hash, auth.PurposeResetPassword, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("an older reset token still works: %v", err)
	}
	toks, err := s.OneTimeTokens(ctx, u.ID)
	if err != nil || len(toks) != 2 {
		t.Fatalf("OneTimeTokens = %d, %v; want the reset and the verification token", len(toks), err)
	}
	acctSameToken(t, toks[0], second) // ordered by purpose: reset_password < verify_email
	acctSameToken(t, toks[1], verify)
	if _, err := s.ConsumeOneTimeToken(ctx, second.Hash, auth.PurposeResetPassword, authTime); err != nil {
		t.Fatal(err)
	}
}

func acctTokenConcurrentConsume(t *testing.T, s auth.Store) {
	u := authUser(t, s, "race-token@example.com")
	tok := acctToken(t, s, u, auth.PurposeResetPassword, "contested")
	const n = 16
	errs := authAllAtOnce(n, func(int) error {
		_, err := s.ConsumeOneTimeToken(context.Background(), tok.Hash, auth.PurposeResetPassword, authTime)
		return err
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, auth.ErrNotFound):
			t.Errorf("concurrent consume: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent redemptions succeeded, want exactly 1", ok, n)
	}
}

func acctTokenDelete(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "del-token@example.com")
	reset := acctToken(t, s, u, auth.PurposeResetPassword, "r")
	verify := acctToken(t, s, u, auth.PurposeVerifyEmail, "v")
	other := authUser(t, s, "keep-token@example.com")
	kept := acctToken(t, s, other, auth.PurposeResetPassword, "k")
	if err := s.DeleteOneTimeTokens(ctx, u.ID, auth.PurposeResetPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, reset.Hash, auth.PurposeResetPassword, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted token works: %v", err)
	}
	if toks, _ := s.OneTimeTokens(ctx, u.ID); len(toks) != 1 || toks[0].Purpose != auth.PurposeVerifyEmail {
		t.Fatalf("tokens left %+v, want the verification one", toks)
	}
	if err := s.DeleteOneTimeTokens(ctx, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, verify.Hash, auth.PurposeVerifyEmail, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("token of a delete-all works: %v", err)
	}
	if err := s.DeleteOneTimeTokens(ctx, u.ID, ""); err != nil {
		t.Fatalf("deleting nothing: %v", err)
	}
	if _, err := s.ConsumeOneTimeToken(ctx, kept.Hash, auth.PurposeResetPassword, authTime); err != nil {
		t.Fatalf("another user's token was deleted: %v", err)
	}
}

func acctEmailVerification(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "verify@example.com")
	if got, _ := s.UserByID(ctx, u.ID); got.EmailVerified {
		t.Fatal("a new user is verified")
	}
	if err := s.SetEmailVerified(ctx, u.ID, "other@example.com", authTime); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("verifying another address = %v, want ErrConflict", err)
	}
	if got, _ := s.UserByID(ctx, u.ID); got.EmailVerified {
		t.Fatal("verified through another address")
	}
	if err := s.SetEmailVerified(ctx, ecoid.New(ecoid.User), u.Email, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown user = %v, want ErrNotFound", err)
	}
	for range 2 { // the second time is a no-op
		if err := s.SetEmailVerified(ctx, u.ID, "Verify@Example.com", authTime); err != nil {
			t.Fatal(err)
		}
	}
	for name, get := range map[string]func() (auth.User, error){
		"UserByID":    func() (auth.User, error) { return s.UserByID(ctx, u.ID) },
		"UserByEmail": func() (auth.User, error) { return s.UserByEmail(ctx, u.Email) },
	} {
		if got, err := get(); err != nil || !got.EmailVerified {
			t.Fatalf("%s after verification = %+v, %v", name, got, err)
		}
	}
	v := auth.User{ID: ecoid.New(ecoid.User), Email: "born-verified@example.com", CreatedAt: authTime, EmailVerified: true}
	if err := s.CreateUser(ctx, v, "h"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserByID(ctx, v.ID); got != v {
		t.Fatalf("CreateUser of a verified user = %+v, want %+v", got, v)
	}
}

func acctUpdateProfile(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "profile@example.com")
	got, err := s.UpdateProfile(ctx, u.ID, "Ann Renamed", authTime.Add(time.Hour))
	u.FullName = "Ann Renamed"
	if err != nil || got != u {
		t.Fatalf("UpdateProfile = %+v, %v; want %+v", got, err, u)
	}
	if got, _ := s.UserByID(ctx, u.ID); got != u {
		t.Fatalf("UserByID after update = %+v", got)
	}
	if _, err := s.UpdateProfile(ctx, ecoid.New(ecoid.User), "x", authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown user = %v, want ErrNotFound", err)
	}
}

func acctUserSessions(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "many-sessions@example.com")
	other := authUser(t, s, "other-sessions@example.com")
	authSession(t, s, other.ID)
	var ids []ecoid.ID
	for i := range 3 {
		sess := auth.Session{
			ID: ecoid.New(ecoid.Session), UserID: u.ID, RefreshHash: []byte(fmt.Sprintf("hash-%d", i)),
			CreatedAt: authTime.Add(time.Duration(i) * time.Minute), RotatedAt: authTime.Add(time.Hour),
			ExpiresAt: authTime.Add(24 * time.Hour), IP: "198.51.100.7", UserAgent: "ua",
		}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	if err := s.RevokeSession(ctx, ids[0], authTime.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.UserSessions(ctx, u.ID)
	if err != nil || len(got) != 3 {
		t.Fatalf("UserSessions = %d, %v; want 3 (revoked included)", len(got), err)
	}
	for i, want := range []ecoid.ID{ids[2], ids[1], ids[0]} {
		if got[i].ID != want || got[i].UserID != u.ID {
			t.Fatalf("session %d = %s, want %s (newest first)", i, got[i].ID, want)
		}
	}
	if !got[2].Revoked() || got[0].Revoked() || !got[0].RotatedAt.Equal(authTime.Add(time.Hour)) || got[0].IP != "198.51.100.7" {
		t.Fatalf("session fields %+v", got)
	}
	if none, err := s.UserSessions(ctx, ecoid.New(ecoid.User)); err != nil || len(none) != 0 {
		t.Fatalf("sessions of nobody = %v, %v", none, err)
	}
}

func acctLog(t *testing.T, s auth.Store, userID ecoid.ID, email string, action auth.Action, at time.Time) auth.Activity {
	t.Helper()
	a := auth.Activity{ID: ecoid.New(ecoid.Event), UserID: userID, Email: email, Action: action, IP: "192.0.2.9", UserAgent: "ua", At: at}
	if err := s.LogActivity(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func acctActivities(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "log@example.com")
	other := authUser(t, s, "other-log@example.com")
	a1 := acctLog(t, s, "", u.Email, auth.ActionLoginThrottled, authTime)
	a2 := acctLog(t, s, u.ID, u.Email, auth.ActionLogin, authTime.Add(time.Second))
	acctLog(t, s, other.ID, other.Email, auth.ActionLogin, authTime.Add(2*time.Second))
	acctLog(t, s, "", other.Email, auth.ActionLogin, authTime.Add(3*time.Second))
	a3 := acctLog(t, s, u.ID, "", auth.ActionRefresh, authTime.Add(4*time.Second))
	got, err := s.AccountActivities(ctx, u.ID, u.Email, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []auth.Activity{a3, a2, a1}
	if len(got) != len(want) {
		t.Fatalf("AccountActivities = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Action != want[i].Action || !got[i].At.Equal(want[i].At) {
			t.Fatalf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got, _ := s.AccountActivities(ctx, u.ID, u.Email, 2); len(got) != 2 || got[0].ID != a3.ID {
		t.Fatalf("limit 2 = %+v", got)
	}
}

func acctErase(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "erase@example.com")
	sess := authSession(t, s, u.ID)
	prj := ecoid.New(ecoid.Project)
	if err := s.GrantAccess(ctx, auth.Grant{UserID: u.ID, ProjectID: prj, Role: auth.RoleMember, GrantedAt: authTime}); err != nil {
		t.Fatal(err)
	}
	tok := acctToken(t, s, u, auth.PurposeResetPassword, "erase-reset")
	if err := s.SetEmailVerified(ctx, u.ID, u.Email, authTime); err != nil {
		t.Fatal(err)
	}
	acctLog(t, s, u.ID, u.Email, auth.ActionLogin, authTime)
	acctLog(t, s, "", u.Email, auth.ActionLoginThrottled, authTime)
	ms, hasMFA := s.(auth.MFAStore)
	if hasMFA {
		if err := ms.PutPendingTOTP(ctx, u.ID, []byte("sealed-secret"), authTime); err != nil {
			t.Fatal(err)
		}
	}
	other := authUser(t, s, "stays@example.com")
	otherSess := authSession(t, s, other.ID)
	otherLog := acctLog(t, s, other.ID, other.Email, auth.ActionLogin, authTime)

	if err := s.EraseUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	_, checks["UserByID"] = s.UserByID(ctx, u.ID)
	_, checks["UserByEmail"] = s.UserByEmail(ctx, u.Email)
	_, checks["PasswordHash"] = s.PasswordHash(ctx, u.ID)
	_, checks["Session"] = s.Session(ctx, sess.ID)
	_, checks["Access"] = s.Access(ctx, u.ID, prj)
	_, checks["ConsumeOneTimeToken"] = s.ConsumeOneTimeToken(ctx, tok.Hash, auth.PurposeResetPassword, authTime)
	if hasMFA {
		_, checks["TOTP"] = ms.TOTP(ctx, u.ID)
	}
	checks["EraseUser again"] = s.EraseUser(ctx, u.ID)
	for name, err := range checks {
		if !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("%s after erasure = %v, want ErrNotFound", name, err)
		}
	}
	if acts, _ := s.AccountActivities(ctx, u.ID, u.Email, 100); len(acts) != 0 {
		t.Errorf("activity entries survive erasure: %+v", acts)
	}
	if acts, _ := s.Activities(ctx, u.ID, 100); len(acts) != 0 {
		t.Errorf("activity entries survive erasure: %+v", acts)
	}
	again := authUser(t, s, "erase@example.com") // the email is free again
	if got, _ := s.UserByID(ctx, again.ID); got.EmailVerified {
		t.Error("the new account inherits the erased one's verification")
	}
	if _, err := s.Session(ctx, otherSess.ID); err != nil {
		t.Errorf("another user's session was erased: %v", err)
	}
	if acts, _ := s.Activities(ctx, other.ID, 10); len(acts) != 1 || acts[0].ID != otherLog.ID {
		t.Errorf("another user's log was erased: %+v", acts)
	}
}
