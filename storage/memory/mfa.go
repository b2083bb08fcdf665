package memory

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var _ auth.MFAStore = (*AuthStore)(nil)

// mfaData is the AuthStore's two-factor state, guarded by AuthStore.mu. Its zero value is
// empty and ready.
type mfaData struct {
	totp       map[ecoid.ID]*totpRow
	challenges map[string]auth.MFAChallenge // by string(TokenHash)
}

type totpRow struct {
	state    auth.TOTPState
	recovery map[string]bool // hash -> used
}

func (d *mfaData) init() {
	if d.totp == nil {
		d.totp = map[ecoid.ID]*totpRow{}
		d.challenges = map[string]auth.MFAChallenge{}
	}
}

// deleteUser drops everything of the user. Called with mu held.
func (d *mfaData) deleteUser(id ecoid.ID) {
	delete(d.totp, id)
	for k, c := range d.challenges {
		if c.UserID == id {
			delete(d.challenges, k)
		}
	}
}

// PutPendingTOTP implements auth.MFAStore.
func (s *AuthStore) PutPendingTOTP(_ context.Context, userID ecoid.ID, sealed []byte, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mfa.init()
	if _, ok := s.users[userID]; !ok {
		return auth.ErrNotFound
	}
	if r, ok := s.mfa.totp[userID]; ok && r.state.Enabled() {
		return auth.ErrConflict
	}
	s.mfa.totp[userID] = &totpRow{state: auth.TOTPState{UserID: userID, Sealed: bytes.Clone(sealed), CreatedAt: at, LastStep: -1}}
	return nil
}

// TOTP implements auth.MFAStore.
func (s *AuthStore) TOTP(_ context.Context, userID ecoid.ID) (auth.TOTPState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.mfa.totp[userID]
	if !ok {
		return auth.TOTPState{}, auth.ErrNotFound
	}
	st := r.state
	st.Sealed = bytes.Clone(st.Sealed)
	return st, nil
}

// EnableTOTP implements auth.MFAStore.
func (s *AuthStore) EnableTOTP(_ context.Context, userID ecoid.ID, sealed []byte, step int64, recoveryHashes [][]byte, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.mfa.totp[userID]
	if !ok {
		return auth.ErrNotFound
	}
	if r.state.Enabled() || !bytes.Equal(r.state.Sealed, sealed) {
		return auth.ErrConflict
	}
	r.state.EnabledAt, r.state.LastStep = at, step
	r.recovery = make(map[string]bool, len(recoveryHashes))
	for _, h := range recoveryHashes {
		r.recovery[string(h)] = false
	}
	return nil
}

// DeleteTOTP implements auth.MFAStore.
func (s *AuthStore) DeleteTOTP(_ context.Context, userID ecoid.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mfa.totp[userID]; !ok {
		return auth.ErrNotFound
	}
	s.mfa.deleteUser(userID)
	return nil
}

// UseTOTPStep implements auth.MFAStore.
func (s *AuthStore) UseTOTPStep(_ context.Context, userID ecoid.ID, step int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.mfa.totp[userID]
	if !ok || !r.state.Enabled() {
		return auth.ErrNotFound
	}
	if step <= r.state.LastStep {
		return auth.ErrConflict
	}
	r.state.LastStep = step
	return nil
}

// UseRecoveryCode implements auth.MFAStore.
func (s *AuthStore) UseRecoveryCode(_ context.Context, userID ecoid.ID, hash []byte, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.mfa.totp[userID]
	if !ok {
		return auth.ErrNotFound
	}
	used, ok := r.recovery[string(hash)]
	if !ok || used {
		return auth.ErrNotFound
	}
	r.recovery[string(hash)] = true
	return nil
}

// RecoveryCodesLeft implements auth.MFAStore.
func (s *AuthStore) RecoveryCodesLeft(_ context.Context, userID ecoid.ID) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	if r, ok := s.mfa.totp[userID]; ok {
		for _, used := range r.recovery {
			if !used {
				n++
			}
		}
	}
	return n, nil
}

// CreateMFAChallenge implements auth.MFAStore. It drops the user's expired challenges.
func (s *AuthStore) CreateMFAChallenge(_ context.Context, c auth.MFAChallenge) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mfa.init()
	if _, ok := s.users[c.UserID]; !ok {
		return auth.ErrNotFound
	}
	var live []auth.MFAChallenge
	for k, old := range s.mfa.challenges {
		switch {
		case old.UserID != c.UserID:
		case !c.CreatedAt.Before(old.ExpiresAt):
			delete(s.mfa.challenges, k)
		default:
			live = append(live, old)
		}
	}
	if len(live) >= auth.MaxMFAChallenges {
		slices.SortFunc(live, func(a, b auth.MFAChallenge) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, old := range live[:len(live)-auth.MaxMFAChallenges+1] {
			delete(s.mfa.challenges, string(old.TokenHash))
		}
	}
	c.TokenHash, c.Attempts = bytes.Clone(c.TokenHash), 0
	s.mfa.challenges[string(c.TokenHash)] = c
	return nil
}

// ReserveMFAAttempt implements auth.MFAStore.
func (s *AuthStore) ReserveMFAAttempt(_ context.Context, tokenHash []byte, max int, now time.Time) (auth.MFAChallenge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.mfa.challenges[string(tokenHash)]
	if !ok || !now.Before(c.ExpiresAt) {
		return auth.MFAChallenge{}, auth.ErrNotFound
	}
	if c.Attempts >= max {
		return c, auth.ErrConflict
	}
	c.Attempts++
	s.mfa.challenges[string(tokenHash)] = c
	c.TokenHash = bytes.Clone(c.TokenHash)
	return c, nil
}

// DeleteMFAChallenge implements auth.MFAStore.
func (s *AuthStore) DeleteMFAChallenge(_ context.Context, tokenHash []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mfa.challenges[string(tokenHash)]; !ok {
		return auth.ErrNotFound
	}
	delete(s.mfa.challenges, string(tokenHash))
	return nil
}
