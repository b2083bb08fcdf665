package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
)

// testSSO runs every behaviour of sso.Store. Codes belong to users, so the suite creates
// them through the same backend's auth.Store.
func testSSO(t *testing.T, newStores NewStores) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s sso.Store, users auth.Store)
	}{
		{"ProjectLifecycle", ssoProjectLifecycle},
		{"CodeRedeemedOnce", ssoCodeRedeemedOnce},
		{"ConcurrentRedeemOneWins", ssoConcurrentRedeem},
		{"DeleteExpiredCodes", ssoDeleteExpiredCodes},
		{"SessionBinding", ssoSessionBinding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStores(t)
			tc.fn(t, provided(t, st.SSO, "SSO"), provided(t, st.Auth, "Auth"))
		})
	}
}

var ssoT0 = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func ssoProject(t *testing.T, s sso.Store, secret string) sso.Project {
	t.Helper()
	p := sso.Project{ID: ecoid.New(ecoid.Project), Name: "Atlas", RedirectURIs: []string{"https://atlas.test/cb", "http://127.0.0.1:9/cb"}, CreatedAt: ssoT0}
	h := sha256.Sum256([]byte(secret))
	if err := s.CreateProject(context.Background(), p, h[:]); err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	return p
}

func ssoUser(t *testing.T, users auth.Store) ecoid.ID {
	t.Helper()
	u := auth.User{ID: ecoid.New(ecoid.User), Email: string(ecoid.New(ecoid.User))[8:] + "@sso.test", CreatedAt: ssoT0}
	if err := users.CreateUser(context.Background(), u, "hash"); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u.ID
}

func ssoCode(t *testing.T, s sso.Store, p sso.Project, user ecoid.ID, value string, expires time.Time) sso.Code {
	t.Helper()
	h := sha256.Sum256([]byte(value))
	c := sso.Code{Hash: h[:], ProjectID: p.ID, UserID: user, RedirectURI: p.RedirectURIs[0], Challenge: "ch",
		Nonce: "n-1", Scope: "openid email", AuthTime: ssoT0, SignInSession: ecoid.New(ecoid.Session), ExpiresAt: expires, CreatedAt: ssoT0}
	if err := s.CreateCode(context.Background(), c); err != nil {
		t.Fatalf("CreateCode: %v", err)
	}
	return c
}

func ssoProjectLifecycle(t *testing.T, s sso.Store, _ auth.Store) {
	ctx := context.Background()
	a := ssoProject(t, s, "secret-a")
	b := ssoProject(t, s, "secret-b")
	got, err := s.Project(ctx, a.ID)
	if err != nil || got.Name != "Atlas" || len(got.RedirectURIs) != 2 || got.RedirectURIs[1] != "http://127.0.0.1:9/cb" || !got.CreatedAt.Equal(ssoT0) {
		t.Fatalf("Project = %+v, %v", got, err)
	}
	h, err := s.ProjectSecretHash(ctx, b.ID)
	want := sha256.Sum256([]byte("secret-b"))
	if err != nil || !bytes.Equal(h, want[:]) {
		t.Fatalf("ProjectSecretHash = %x, %v", h, err)
	}
	if err := s.CreateProject(ctx, a, want[:]); !errors.Is(err, sso.ErrConflict) {
		t.Fatalf("duplicate CreateProject = %v, want ErrConflict", err)
	}
	all, err := s.Projects(ctx)
	if err != nil || len(all) != 2 || all[0].ID > all[1].ID {
		t.Fatalf("Projects = %+v, %v (want both, by ID)", all, err)
	}
	unknown := ecoid.New(ecoid.Project)
	if _, err := s.Project(ctx, unknown); !errors.Is(err, sso.ErrNotFound) {
		t.Fatalf("unknown Project = %v", err)
	}
	if _, err := s.ProjectSecretHash(ctx, unknown); !errors.Is(err, sso.ErrNotFound) {
		t.Fatalf("unknown ProjectSecretHash = %v", err)
	}
}

func ssoCodeRedeemedOnce(t *testing.T, s sso.Store, users auth.Store) {
	ctx := context.Background()
	p := ssoProject(t, s, "x")
	c := ssoCode(t, s, p, ssoUser(t, users), "code-1", ssoT0.Add(time.Minute))
	if err := s.CreateCode(ctx, c); !errors.Is(err, sso.ErrConflict) {
		t.Fatalf("duplicate CreateCode = %v, want ErrConflict", err)
	}
	got, err := s.RedeemCode(ctx, c.Hash, ssoT0.Add(time.Second))
	if err != nil || got.UserID != c.UserID || got.ProjectID != p.ID || got.Challenge != "ch" || got.Nonce != "n-1" ||
		got.Scope != "openid email" || !got.AuthTime.Equal(ssoT0) || !got.ExpiresAt.Equal(c.ExpiresAt) || got.RedirectURI != c.RedirectURI ||
		got.SignInSession != c.SignInSession {
		t.Fatalf("RedeemCode = %+v, %v", got, err)
	}
	sid := ecoid.New(ecoid.Session)
	if err := s.SetCodeSession(ctx, c.Hash, sid); err != nil {
		t.Fatalf("SetCodeSession: %v", err)
	}
	again, err := s.RedeemCode(ctx, c.Hash, ssoT0.Add(2*time.Second))
	if !errors.Is(err, sso.ErrCodeUsed) || again.SessionID != sid || !again.UsedAt.Equal(ssoT0.Add(time.Second)) {
		t.Fatalf("second RedeemCode = %+v, %v; want ErrCodeUsed with the session the first opened", again, err)
	}
	other := sha256.Sum256([]byte("nope"))
	if _, err := s.RedeemCode(ctx, other[:], ssoT0); !errors.Is(err, sso.ErrNotFound) {
		t.Fatalf("unknown RedeemCode = %v", err)
	}
	if err := s.SetCodeSession(ctx, other[:], sid); !errors.Is(err, sso.ErrNotFound) {
		t.Fatalf("unknown SetCodeSession = %v", err)
	}
}

func ssoConcurrentRedeem(t *testing.T, s sso.Store, users auth.Store) {
	p := ssoProject(t, s, "x")
	c := ssoCode(t, s, p, ssoUser(t, users), "code-race", ssoT0.Add(time.Minute))
	var wins, used atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.RedeemCode(context.Background(), c.Hash, ssoT0)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, sso.ErrCodeUsed):
				used.Add(1)
			default:
				t.Errorf("RedeemCode: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || used.Load() != 15 {
		t.Fatalf("16 concurrent redemptions: %d won, %d saw ErrCodeUsed; want 1 and 15", wins.Load(), used.Load())
	}
}

func ssoDeleteExpiredCodes(t *testing.T, s sso.Store, users auth.Store) {
	ctx := context.Background()
	p := ssoProject(t, s, "x")
	u := ssoUser(t, users)
	old := ssoCode(t, s, p, u, "old", ssoT0.Add(time.Minute))
	fresh := ssoCode(t, s, p, u, "fresh", ssoT0.Add(time.Hour))
	n, err := s.DeleteExpiredCodes(ctx, ssoT0.Add(2*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredCodes = %d, %v; want 1", n, err)
	}
	if _, err := s.RedeemCode(ctx, old.Hash, ssoT0); !errors.Is(err, sso.ErrNotFound) {
		t.Fatalf("expired code after delete: %v", err)
	}
	if _, err := s.RedeemCode(ctx, fresh.Hash, ssoT0); err != nil {
		t.Fatalf("fresh code after delete: %v", err)
	}
}

func ssoSessionBinding(t *testing.T, s sso.Store, users auth.Store) {
	ctx := context.Background()
	p := ssoProject(t, s, "x")
	u := ssoUser(t, users)
	sid := ecoid.New(ecoid.Session)
	if err := users.CreateSession(ctx, auth.Session{ID: sid, UserID: u, RefreshHash: []byte("h"), CreatedAt: ssoT0, RotatedAt: ssoT0, ExpiresAt: ssoT0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionProject(ctx, sid); !errors.Is(err, sso.ErrNotFound) {
		t.Fatalf("unbound SessionProject = %v, want ErrNotFound", err)
	}
	if err := s.BindSession(ctx, sid, p.ID, ssoT0); err != nil {
		t.Fatalf("BindSession: %v", err)
	}
	if got, err := s.SessionProject(ctx, sid); err != nil || got != p.ID {
		t.Fatalf("SessionProject = %s, %v; want %s", got, err, p.ID)
	}
	if err := s.BindSession(ctx, sid, p.ID, ssoT0); !errors.Is(err, sso.ErrConflict) {
		t.Fatalf("second BindSession = %v, want ErrConflict", err)
	}
}
