package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// testAuth runs every behaviour of auth.Store.
func testAuth(t *testing.T, newStores NewStores) {
	store := func(t *testing.T) auth.Store {
		t.Helper()
		return provided(t, newStores(t).Auth, "Auth")
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s auth.Store)
	}{
		{"CreateAndReadUser", authCreateAndReadUser},
		{"EmailTakenCaseInsensitive", authEmailTaken},
		{"ConcurrentRegistrationOneWins", authConcurrentCreate},
		{"UnknownUserNotFound", authUnknownUser},
		{"PasswordHash", authPasswordHash},
		{"DeleteUser", authDeleteUser},
		{"SessionLifecycle", authSessionLifecycle},
		{"RotateIsCompareAndSwap", authRotateCAS},
		{"ConcurrentRotationOneWins", authConcurrentRotate},
		{"RevokeUserSessions", authRevokeUserSessions},
		{"ProjectAccess", authProjectAccess},
		{"ActivityLog", authActivityLog},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, store(t)) })
	}
}

// authAllAtOnce runs f(0..n-1) in n goroutines released together and returns their errors.
func authAllAtOnce(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// authTime is a fixed instant at the microsecond precision every store keeps.
var authTime = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func authUser(t *testing.T, s auth.Store, email string) auth.User {
	t.Helper()
	u := auth.User{ID: ecoid.New(ecoid.User), Email: email, FullName: "Ann Example", CreatedAt: authTime}
	if err := s.CreateUser(context.Background(), u, "$2a$04$hash-of-"+email); err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func authCreateAndReadUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "ann@example.com")
	got, err := s.UserByID(ctx, u.ID)
	if err != nil || got != u {
		t.Fatalf("UserByID = %+v, %v; want %+v", got, err, u)
	}
	got, err = s.UserByEmail(ctx, "ann@example.com")
	if err != nil || got != u {
		t.Fatalf("UserByEmail = %+v, %v; want %+v", got, err, u)
	}
	if err := s.CreateUser(ctx, u, "x"); err == nil {
		t.Fatal("CreateUser with an existing ID succeeded")
	}
}

func authEmailTaken(t *testing.T, s auth.Store) {
	authUser(t, s, "bob@example.com")
	u := auth.User{ID: ecoid.New(ecoid.User), Email: "BOB@example.com", CreatedAt: authTime}
	if err := s.CreateUser(context.Background(), u, "h"); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("second CreateUser of one email (other case) = %v, want ErrEmailTaken", err)
	}
	if _, err := s.UserByID(context.Background(), u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("the refused user exists: %v", err)
	}
}

func authConcurrentCreate(t *testing.T, s auth.Store) {
	const n = 16
	errs := authAllAtOnce(n, func(int) error {
		u := auth.User{ID: ecoid.New(ecoid.User), Email: "race@example.com", CreatedAt: authTime}
		return s.CreateUser(context.Background(), u, "h")
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, auth.ErrEmailTaken):
			t.Errorf("concurrent CreateUser: %v, want nil or ErrEmailTaken", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent registrations succeeded, want exactly 1", ok, n)
	}
}

func authUnknownUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	id := ecoid.New(ecoid.User)
	checks := map[string]error{}
	_, checks["UserByID"] = s.UserByID(ctx, id)
	_, checks["UserByEmail"] = s.UserByEmail(ctx, "nobody@example.com")
	_, checks["PasswordHash"] = s.PasswordHash(ctx, id)
	checks["SetPasswordHash"] = s.SetPasswordHash(ctx, id, "h", authTime)
	checks["DeleteUser"] = s.DeleteUser(ctx, id)
	_, checks["UserByID(garbage)"] = s.UserByID(ctx, "not-an-id")
	for name, err := range checks {
		if !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("%s of an unknown user = %v, want ErrNotFound", name, err)
		}
	}
}

func authPasswordHash(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "pw@example.com")
	if h, err := s.PasswordHash(ctx, u.ID); err != nil || h != "$2a$04$hash-of-pw@example.com" {
		t.Fatalf("PasswordHash = %q, %v", h, err)
	}
	if err := s.SetPasswordHash(ctx, u.ID, "new-hash", authTime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if h, err := s.PasswordHash(ctx, u.ID); err != nil || h != "new-hash" {
		t.Fatalf("PasswordHash after Set = %q, %v", h, err)
	}
}

func authDeleteUser(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "gone@example.com")
	sess := authSession(t, s, u.ID)
	prj := ecoid.New(ecoid.Project)
	if err := s.GrantAccess(ctx, auth.Grant{UserID: u.ID, ProjectID: prj, Role: auth.RoleOwner, GrantedAt: authTime}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByEmail(ctx, u.Email); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted user still found by email: %v", err)
	}
	if _, err := s.PasswordHash(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted user's credentials remain: %v", err)
	}
	if _, err := s.Session(ctx, sess.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted user's session remains: %v", err)
	}
	if _, err := s.Access(ctx, u.ID, prj); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted user's grant remains: %v", err)
	}
	authUser(t, s, "gone@example.com") // the email is free again
}

func authSession(t *testing.T, s auth.Store, userID ecoid.ID) auth.Session {
	t.Helper()
	sess := auth.Session{
		ID: ecoid.New(ecoid.Session), UserID: userID, RefreshHash: []byte("hash-1-padded-to-32-bytes-------"),
		CreatedAt: authTime, RotatedAt: authTime, ExpiresAt: authTime.Add(7 * 24 * time.Hour),
		IP: "192.0.2.1", UserAgent: "test/1.0",
	}
	if err := s.CreateSession(context.Background(), sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return sess
}

func authSessionLifecycle(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "sess@example.com")
	sess := authSession(t, s, u.ID)
	got, err := s.Session(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != sess.ID || got.UserID != u.ID || !bytes.Equal(got.RefreshHash, sess.RefreshHash) || len(got.PrevHash) != 0 ||
		!got.CreatedAt.Equal(authTime) || !got.RotatedAt.Equal(authTime) || !got.ExpiresAt.Equal(sess.ExpiresAt) ||
		got.Revoked() || got.IP != sess.IP || got.UserAgent != sess.UserAgent {
		t.Fatalf("Session = %+v, want %+v", got, sess)
	}
	if err := s.CreateSession(ctx, sess); err == nil {
		t.Fatal("CreateSession with an existing ID succeeded")
	}
	orphan := sess
	orphan.ID, orphan.UserID = ecoid.New(ecoid.Session), ecoid.New(ecoid.User)
	if err := s.CreateSession(ctx, orphan); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreateSession for an unknown user = %v, want ErrNotFound", err)
	}
	if _, err := s.Session(ctx, ecoid.New(ecoid.Session)); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("Session(unknown) = %v", err)
	}
	revokedAt := authTime.Add(time.Minute)
	if err := s.RevokeSession(ctx, sess.ID, revokedAt); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSession(ctx, sess.ID, revokedAt.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeSession = %v, want nil", err)
	}
	got, _ = s.Session(ctx, sess.ID)
	if !got.RevokedAt.Equal(revokedAt) {
		t.Fatalf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, revokedAt)
	}
	if err := s.RevokeSession(ctx, ecoid.New(ecoid.Session), revokedAt); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("RevokeSession(unknown) = %v", err)
	}
	if err := s.RotateSession(ctx, sess.ID, sess.RefreshHash, []byte("h2"), revokedAt, revokedAt); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("RotateSession of a revoked session = %v, want ErrConflict", err)
	}
}

func authRotateCAS(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "rot@example.com")
	sess := authSession(t, s, u.ID)
	h2, h3 := []byte("hash-2"), []byte("hash-3")
	at, exp := authTime.Add(time.Hour), authTime.Add(8*24*time.Hour)
	if err := s.RotateSession(ctx, sess.ID, sess.RefreshHash, h2, exp, at); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Session(ctx, sess.ID)
	if !bytes.Equal(got.RefreshHash, h2) || !bytes.Equal(got.PrevHash, sess.RefreshHash) || !got.RotatedAt.Equal(at) || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("after rotation: %+v", got)
	}
	if err := s.RotateSession(ctx, sess.ID, sess.RefreshHash, h3, exp, at); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("rotation from a retired hash = %v, want ErrConflict", err)
	}
	if got, _ := s.Session(ctx, sess.ID); !bytes.Equal(got.RefreshHash, h2) {
		t.Fatal("a refused rotation changed the session")
	}
	if err := s.RotateSession(ctx, ecoid.New(ecoid.Session), h2, h3, exp, at); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("RotateSession(unknown) = %v, want ErrNotFound", err)
	}
}

func authConcurrentRotate(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "crot@example.com")
	sess := authSession(t, s, u.ID)
	errs := authAllAtOnce(12, func(i int) error {
		return s.RotateSession(ctx, sess.ID, sess.RefreshHash, []byte(fmt.Sprintf("next-%d", i)), authTime, authTime)
	})
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("two concurrent rotations from one hash succeeded (%d and %d)", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, auth.ErrConflict):
			t.Fatalf("concurrent rotation: %v", err)
		}
	}
	got, _ := s.Session(ctx, sess.ID)
	if won < 0 || string(got.RefreshHash) != fmt.Sprintf("next-%d", won) {
		t.Fatalf("winner %d, stored hash %q", won, got.RefreshHash)
	}
}

func authRevokeUserSessions(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "many@example.com")
	other := authUser(t, s, "other@example.com")
	keep := authSession(t, s, u.ID)
	a, b := authSession(t, s, u.ID), authSession(t, s, u.ID)
	theirs := authSession(t, s, other.ID)
	if err := s.RevokeSession(ctx, b.ID, authTime); err != nil {
		t.Fatal(err)
	}
	n, err := s.RevokeUserSessions(ctx, u.ID, keep.ID, authTime.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("RevokeUserSessions = %d, %v; want 1 (one live session besides keep)", n, err)
	}
	for _, c := range []struct {
		id      ecoid.ID
		revoked bool
	}{{keep.ID, false}, {a.ID, true}, {b.ID, true}, {theirs.ID, false}} {
		got, _ := s.Session(ctx, c.id)
		if got.Revoked() != c.revoked {
			t.Errorf("session %s revoked = %v, want %v", c.id, got.Revoked(), c.revoked)
		}
	}
	if got, _ := s.Session(ctx, b.ID); !got.RevokedAt.Equal(authTime) {
		t.Errorf("an already revoked session got a new RevokedAt %v", got.RevokedAt)
	}
	n, err = s.RevokeUserSessions(ctx, u.ID, "", authTime)
	if err != nil || n != 1 {
		t.Fatalf("RevokeUserSessions without exception = %d, %v; want 1", n, err)
	}
}

func authProjectAccess(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u, v := authUser(t, s, "pa@example.com"), authUser(t, s, "pb@example.com")
	prj, other := ecoid.New(ecoid.Project), ecoid.New(ecoid.Project)
	if _, err := s.Access(ctx, u.ID, prj); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("Access without a grant = %v", err)
	}
	g := auth.Grant{UserID: u.ID, ProjectID: prj, Role: auth.RoleMember, GrantedAt: authTime}
	if err := s.GrantAccess(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Access(ctx, u.ID, prj); err != nil || got != g {
		t.Fatalf("Access = %+v, %v; want %+v", got, err, g)
	}
	g.Role, g.GrantedAt = auth.RoleAdmin, authTime.Add(time.Hour)
	if err := s.GrantAccess(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Access(ctx, u.ID, prj); got != g {
		t.Fatalf("re-grant: %+v, want %+v", got, g)
	}
	if _, err := s.Access(ctx, u.ID, other); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("grant leaked to another project: %v", err)
	}
	gv := auth.Grant{UserID: v.ID, ProjectID: prj, Role: auth.RoleViewer, GrantedAt: authTime}
	if err := s.GrantAccess(ctx, gv); err != nil {
		t.Fatal(err)
	}
	grants, err := s.ProjectGrants(ctx, prj)
	want := []auth.Grant{g, gv}
	if strings.Compare(string(u.ID), string(v.ID)) > 0 {
		want = []auth.Grant{gv, g}
	}
	if err != nil || len(grants) != 2 || grants[0] != want[0] || grants[1] != want[1] {
		t.Fatalf("ProjectGrants = %+v, %v; want %+v", grants, err, want)
	}
	gOther := auth.Grant{UserID: u.ID, ProjectID: other, Role: auth.RoleOwner, GrantedAt: authTime}
	if err := s.GrantAccess(ctx, gOther); err != nil {
		t.Fatal(err)
	}
	mine, err := s.UserGrants(ctx, u.ID)
	wantMine := []auth.Grant{g, gOther}
	if strings.Compare(string(prj), string(other)) > 0 {
		wantMine = []auth.Grant{gOther, g}
	}
	if err != nil || len(mine) != 2 || mine[0] != wantMine[0] || mine[1] != wantMine[1] {
		t.Fatalf("UserGrants = %+v, %v; want %+v", mine, err, wantMine)
	}
	if none, err := s.UserGrants(ctx, ecoid.New(ecoid.User)); err != nil || len(none) != 0 {
		t.Fatalf("UserGrants of a user without grants = %+v, %v", none, err)
	}
	if err := s.RevokeAccess(ctx, u.ID, other); err != nil {
		t.Fatal(err)
	}
	if err := s.GrantAccess(ctx, auth.Grant{UserID: ecoid.New(ecoid.User), ProjectID: prj, Role: auth.RoleViewer, GrantedAt: authTime}); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GrantAccess to an unknown user = %v, want ErrNotFound", err)
	}
	if err := s.RevokeAccess(ctx, u.ID, prj); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Access(ctx, u.ID, prj); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("Access after revoke = %v", err)
	}
	if err := s.RevokeAccess(ctx, u.ID, prj); err != nil {
		t.Fatalf("revoking nothing = %v, want nil", err)
	}
	if grants, _ := s.ProjectGrants(ctx, other); len(grants) != 0 {
		t.Fatalf("ProjectGrants of an empty project = %+v", grants)
	}
}

func authActivityLog(t *testing.T, s auth.Store) {
	ctx := context.Background()
	u := authUser(t, s, "log@example.com")
	var want []auth.Activity
	for i := range 5 {
		a := auth.Activity{
			ID: ecoid.New(ecoid.Event), UserID: u.ID, Email: u.Email, Action: auth.ActionLogin, Success: i%2 == 0,
			Detail: fmt.Sprint("attempt ", i), IP: "198.51.100.7", UserAgent: "curl/8", At: authTime.Add(time.Duration(i) * time.Second),
		}
		if err := s.LogActivity(ctx, a); err != nil {
			t.Fatal(err)
		}
		want = append([]auth.Activity{a}, want...)
	}
	anon := auth.Activity{ID: ecoid.New(ecoid.Event), Email: "who@example.com", Action: auth.ActionLogin, Detail: "unknown email", At: authTime}
	if err := s.LogActivity(ctx, anon); err != nil {
		t.Fatalf("LogActivity without a user: %v", err)
	}
	got, err := s.Activities(ctx, u.ID, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("Activities(limit 3) = %d entries, %v", len(got), err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("entry %d = %+v, want %+v (newest first)", i, got[i], want[i])
		}
	}
	if all, _ := s.Activities(ctx, u.ID, 0); len(all) != 5 {
		t.Fatalf("Activities(limit 0) = %d entries, want all 5", len(all))
	}
	if none, _ := s.Activities(ctx, ecoid.New(ecoid.User), 10); len(none) != 0 {
		t.Fatalf("another user's log: %+v", none)
	}
}
