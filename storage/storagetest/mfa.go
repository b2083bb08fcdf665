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

// testMFA runs every behaviour of auth.MFAStore, on the Auth store when it implements it.
func testMFA(t *testing.T, newStores NewStores) {
	store := func(t *testing.T) (auth.Store, auth.MFAStore) {
		t.Helper()
		s := provided(t, newStores(t).Auth, "Auth")
		m, ok := s.(auth.MFAStore)
		if !ok {
			t.Skipf("the Auth store (%T) does not implement auth.MFAStore", s)
		}
		return s, m
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s auth.Store, m auth.MFAStore)
	}{
		{"EnrollmentLifecycle", mfaEnrollmentLifecycle},
		{"EnableIsCompareAndSwap", mfaEnableCAS},
		{"StepIsCompareAndSet", mfaStepCAS},
		{"ConcurrentStepOneWins", mfaConcurrentStep},
		{"RecoveryCodesSingleUse", mfaRecoveryCodes},
		{"ConcurrentRecoveryCodeOneWins", mfaConcurrentRecovery},
		{"ChallengeAttempts", mfaChallengeAttempts},
		{"ConcurrentChallengeAttemptsBounded", mfaConcurrentChallenge},
		{"ChallengesBoundedPerUser", mfaChallengesBounded},
		{"DeleteUserTakesMFA", mfaDeleteUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, m := store(t)
			tc.fn(t, s, m)
		})
	}
}

func mfaHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// mfaEnabledUser makes a user with confirmed TOTP (last step 100) and recovery codes r0..r2.
func mfaEnabledUser(t *testing.T, s auth.Store, m auth.MFAStore, email string) auth.User {
	t.Helper()
	ctx := context.Background()
	u := authUser(t, s, email)
	sealed := []byte("sealed-" + email)
	if err := m.PutPendingTOTP(ctx, u.ID, sealed, authTime); err != nil {
		t.Fatalf("PutPendingTOTP: %v", err)
	}
	if err := m.EnableTOTP(ctx, u.ID, sealed, 100, [][]byte{mfaHash("r0"), mfaHash("r1"), mfaHash("r2")}, authTime); err != nil {
		t.Fatalf("EnableTOTP: %v", err)
	}
	return u
}

func mfaEnrollmentLifecycle(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := authUser(t, s, "ann@example.com")
	if _, err := m.TOTP(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("TOTP before enrollment: %v", err)
	}
	if err := m.PutPendingTOTP(ctx, ecoid.New(ecoid.User), []byte("x"), authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("PutPendingTOTP for an unknown user: %v", err)
	}
	if err := m.PutPendingTOTP(ctx, u.ID, []byte("first"), authTime); err != nil {
		t.Fatal(err)
	}
	later := authTime.Add(time.Minute)
	if err := m.PutPendingTOTP(ctx, u.ID, []byte("second"), later); err != nil {
		t.Fatalf("re-enrolling while pending: %v", err)
	}
	st, err := m.TOTP(ctx, u.ID)
	if err != nil || !bytes.Equal(st.Sealed, []byte("second")) || st.Enabled() || st.LastStep != -1 || !st.CreatedAt.Equal(later) || st.UserID != u.ID {
		t.Fatalf("pending TOTP = %+v, %v", st, err)
	}
	enabledAt := later.Add(time.Second)
	if err := m.EnableTOTP(ctx, u.ID, []byte("second"), 42, [][]byte{mfaHash("a")}, enabledAt); err != nil {
		t.Fatal(err)
	}
	st, err = m.TOTP(ctx, u.ID)
	if err != nil || !st.Enabled() || !st.EnabledAt.Equal(enabledAt) || st.LastStep != 42 {
		t.Fatalf("enabled TOTP = %+v, %v", st, err)
	}
	if err := m.PutPendingTOTP(ctx, u.ID, []byte("third"), later); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("enrolling over an enabled TOTP: %v, want ErrConflict", err)
	}
	if st, _ := m.TOTP(ctx, u.ID); !bytes.Equal(st.Sealed, []byte("second")) {
		t.Fatal("a refused enrollment changed the secret")
	}
	if err := m.DeleteTOTP(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TOTP(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("TOTP after DeleteTOTP: %v", err)
	}
	if n, err := m.RecoveryCodesLeft(ctx, u.ID); err != nil || n != 0 {
		t.Fatalf("recovery codes after DeleteTOTP: %d, %v", n, err)
	}
	if err := m.DeleteTOTP(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("DeleteTOTP twice: %v", err)
	}
	if err := m.PutPendingTOTP(ctx, u.ID, []byte("again"), later); err != nil {
		t.Fatalf("enrolling after disable: %v", err)
	}
}

func mfaEnableCAS(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := authUser(t, s, "ann@example.com")
	if err := m.EnableTOTP(ctx, u.ID, []byte("x"), 1, nil, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("EnableTOTP without enrollment: %v", err)
	}
	if err := m.PutPendingTOTP(ctx, u.ID, []byte("new"), authTime); err != nil {
		t.Fatal(err)
	}
	if err := m.EnableTOTP(ctx, u.ID, []byte("old"), 1, nil, authTime); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("EnableTOTP of a replaced secret: %v, want ErrConflict", err)
	}
	errs := authAllAtOnce(8, func(i int) error {
		return m.EnableTOTP(ctx, u.ID, []byte("new"), int64(i), [][]byte{mfaHash(fmt.Sprint("c", i))}, authTime)
	})
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, auth.ErrConflict):
			t.Fatalf("concurrent EnableTOTP: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent confirmations won, want 1", won)
	}
	if n, _ := m.RecoveryCodesLeft(ctx, u.ID); n != 1 {
		t.Fatalf("recovery codes: %d, want the winner's 1", n)
	}
}

func mfaStepCAS(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := authUser(t, s, "pending@example.com")
	if err := m.PutPendingTOTP(ctx, u.ID, []byte("p"), authTime); err != nil {
		t.Fatal(err)
	}
	if err := m.UseTOTPStep(ctx, u.ID, 200); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("UseTOTPStep on a pending TOTP: %v, want ErrNotFound", err)
	}
	if err := m.UseTOTPStep(ctx, ecoid.New(ecoid.User), 200); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("UseTOTPStep of an unknown user: %v", err)
	}
	v := mfaEnabledUser(t, s, m, "ann@example.com") // last step 100
	for _, step := range []int64{99, 100} {
		if err := m.UseTOTPStep(ctx, v.ID, step); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UseTOTPStep(%d) after 100: %v, want ErrConflict", step, err)
		}
	}
	if err := m.UseTOTPStep(ctx, v.ID, 102); err != nil {
		t.Fatal(err)
	}
	for _, step := range []int64{101, 102} {
		if err := m.UseTOTPStep(ctx, v.ID, step); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("UseTOTPStep(%d) after 102: %v, want ErrConflict", step, err)
		}
	}
	if st, _ := m.TOTP(ctx, v.ID); st.LastStep != 102 {
		t.Fatalf("LastStep %d, want 102", st.LastStep)
	}
}

// mfaConcurrentStep: one code verified at once on many instances is accepted once.
func mfaConcurrentStep(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := mfaEnabledUser(t, s, m, "ann@example.com")
	for round := int64(1); round <= 3; round++ {
		errs := authAllAtOnce(16, func(int) error { return m.UseTOTPStep(ctx, u.ID, 100+round) })
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, auth.ErrConflict):
				t.Fatalf("concurrent UseTOTPStep: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of 16 concurrent uses of one step won, want 1", round, won)
		}
	}
}

func mfaRecoveryCodes(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := mfaEnabledUser(t, s, m, "ann@example.com")
	other := mfaEnabledUser(t, s, m, "bob@example.com")
	if n, err := m.RecoveryCodesLeft(ctx, u.ID); err != nil || n != 3 {
		t.Fatalf("RecoveryCodesLeft = %d, %v", n, err)
	}
	if err := m.UseRecoveryCode(ctx, u.ID, mfaHash("r1"), authTime); err != nil {
		t.Fatal(err)
	}
	if err := m.UseRecoveryCode(ctx, u.ID, mfaHash("r1"), authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("second use of a recovery code: %v, want ErrNotFound", err)
	}
	if err := m.UseRecoveryCode(ctx, u.ID, mfaHash("nope"), authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown recovery code: %v", err)
	}
	if n, _ := m.RecoveryCodesLeft(ctx, u.ID); n != 2 {
		t.Fatalf("left after one use: %d", n)
	}
	if n, _ := m.RecoveryCodesLeft(ctx, other.ID); n != 3 {
		t.Fatalf("another user's codes changed: %d", n)
	}
	// Re-confirming replaces every code, used or not.
	if err := m.DeleteTOTP(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.PutPendingTOTP(ctx, u.ID, []byte("s2"), authTime); err != nil {
		t.Fatal(err)
	}
	if err := m.EnableTOTP(ctx, u.ID, []byte("s2"), 1, [][]byte{mfaHash("n0"), mfaHash("n1")}, authTime); err != nil {
		t.Fatal(err)
	}
	if err := m.UseRecoveryCode(ctx, u.ID, mfaHash("r0"), authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("an old recovery code after re-enrollment: %v", err)
	}
	if n, _ := m.RecoveryCodesLeft(ctx, u.ID); n != 2 {
		t.Fatalf("left after re-enrollment: %d", n)
	}
}

func mfaConcurrentRecovery(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := mfaEnabledUser(t, s, m, "ann@example.com")
	errs := authAllAtOnce(16, func(int) error { return m.UseRecoveryCode(ctx, u.ID, mfaHash("r2"), authTime) })
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, auth.ErrNotFound):
			t.Fatalf("concurrent UseRecoveryCode: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 16 concurrent uses of one recovery code won, want 1", won)
	}
}

func mfaChallenge(u auth.User, token string, ttl time.Duration) auth.MFAChallenge {
	return auth.MFAChallenge{TokenHash: mfaHash(token), UserID: u.ID, IP: "192.0.2.1", UserAgent: "ua/1", CreatedAt: authTime, ExpiresAt: authTime.Add(ttl)}
}

func mfaChallengeAttempts(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := mfaEnabledUser(t, s, m, "ann@example.com")
	if err := m.CreateMFAChallenge(ctx, auth.MFAChallenge{TokenHash: mfaHash("x"), UserID: ecoid.New(ecoid.User), CreatedAt: authTime, ExpiresAt: authTime.Add(time.Minute)}); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("challenge of an unknown user: %v", err)
	}
	want := mfaChallenge(u, "t1", 5*time.Minute)
	if err := m.CreateMFAChallenge(ctx, want); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReserveMFAAttempt(ctx, mfaHash("unknown"), 3, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	for i := 1; i <= 3; i++ {
		c, err := m.ReserveMFAAttempt(ctx, want.TokenHash, 3, authTime.Add(time.Second))
		if err != nil || c.Attempts != i || c.UserID != u.ID || c.IP != want.IP || c.UserAgent != want.UserAgent ||
			!c.ExpiresAt.Equal(want.ExpiresAt) || !c.CreatedAt.Equal(want.CreatedAt) || !bytes.Equal(c.TokenHash, want.TokenHash) {
			t.Fatalf("attempt %d: %+v, %v", i, c, err)
		}
	}
	c, err := m.ReserveMFAAttempt(ctx, want.TokenHash, 3, authTime.Add(time.Second))
	if !errors.Is(err, auth.ErrConflict) || c.UserID != u.ID || c.Attempts != 3 || !c.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("4th attempt of 3: %+v, %v; want the challenge with ErrConflict", c, err)
	}
	if _, err := m.ReserveMFAAttempt(ctx, want.TokenHash, 10, want.ExpiresAt); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("at expiry: %v, want ErrNotFound", err)
	}
	if err := m.DeleteMFAChallenge(ctx, want.TokenHash); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteMFAChallenge(ctx, want.TokenHash); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := m.ReserveMFAAttempt(ctx, want.TokenHash, 10, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("a deleted challenge: %v", err)
	}
	// DeleteTOTP takes the user's challenges with it.
	if err := m.CreateMFAChallenge(ctx, mfaChallenge(u, "t2", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTOTP(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReserveMFAAttempt(ctx, mfaHash("t2"), 10, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("a challenge after DeleteTOTP: %v", err)
	}
}

func mfaConcurrentChallenge(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := mfaEnabledUser(t, s, m, "ann@example.com")
	if err := m.CreateMFAChallenge(ctx, mfaChallenge(u, "t", time.Minute)); err != nil {
		t.Fatal(err)
	}
	errs := authAllAtOnce(20, func(int) error {
		_, err := m.ReserveMFAAttempt(ctx, mfaHash("t"), 5, authTime)
		return err
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, auth.ErrConflict):
			t.Fatalf("concurrent ReserveMFAAttempt: %v", err)
		}
	}
	if ok != 5 {
		t.Fatalf("%d of 20 concurrent attempts reserved, want exactly 5", ok)
	}
	dels := authAllAtOnce(8, func(int) error { return m.DeleteMFAChallenge(ctx, mfaHash("t")) })
	won := 0
	for _, err := range dels {
		if err == nil {
			won++
		} else if !errors.Is(err, auth.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent deletes won, want 1", won)
	}
}

func mfaDeleteUser(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := mfaEnabledUser(t, s, m, "ann@example.com")
	if err := m.CreateMFAChallenge(ctx, mfaChallenge(u, "t", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TOTP(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("TOTP of a deleted user: %v", err)
	}
	if n, _ := m.RecoveryCodesLeft(ctx, u.ID); n != 0 {
		t.Fatalf("recovery codes of a deleted user: %d", n)
	}
	if _, err := m.ReserveMFAAttempt(ctx, mfaHash("t"), 5, authTime); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("challenge of a deleted user: %v", err)
	}
}

// mfaChallengesBounded: logging in again and again keeps at most MaxMFAChallenges live
// challenges per user, the newest; expired ones go; other users' stay.
func mfaChallengesBounded(t *testing.T, s auth.Store, m auth.MFAStore) {
	ctx := context.Background()
	u := mfaEnabledUser(t, s, m, "ann@example.com")
	v := mfaEnabledUser(t, s, m, "bob@example.com")
	if err := m.CreateMFAChallenge(ctx, mfaChallenge(v, "bob", time.Hour)); err != nil {
		t.Fatal(err)
	}
	n := auth.MaxMFAChallenges + 5
	for i := range n {
		c := mfaChallenge(u, fmt.Sprint("t", i), 5*time.Minute)
		c.CreatedAt = authTime.Add(time.Duration(i) * time.Second)
		c.ExpiresAt = c.CreatedAt.Add(5 * time.Minute)
		if err := m.CreateMFAChallenge(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	at := authTime.Add(time.Duration(n) * time.Second)
	for i := range n {
		_, err := m.ReserveMFAAttempt(ctx, mfaHash(fmt.Sprint("t", i)), 100, at)
		if kept := i >= n-auth.MaxMFAChallenges; kept != (err == nil) {
			t.Fatalf("challenge %d of %d: %v (kept: %v)", i, n, err, kept)
		}
	}
	if _, err := m.ReserveMFAAttempt(ctx, mfaHash("bob"), 100, at); err != nil {
		t.Fatalf("another user's challenge: %v", err)
	}
	// A new login after they expired removes them all but itself.
	late := mfaChallenge(u, "late", time.Minute)
	late.CreatedAt, late.ExpiresAt = at.Add(time.Hour), at.Add(time.Hour+time.Minute)
	if err := m.CreateMFAChallenge(ctx, late); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReserveMFAAttempt(ctx, mfaHash("late"), 100, late.CreatedAt); err != nil {
		t.Fatal(err)
	}
}
