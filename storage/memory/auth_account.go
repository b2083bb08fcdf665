package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

// accountData is the part of AuthStore behind auth.AccountStore. Its zero value is
// ready: maps are made on first write. It is guarded by AuthStore.mu.
type accountData struct {
	tokens map[tokenKey]auth.OneTimeToken // at most one per user and purpose
	byHash map[string]tokenKey            // string(hash) -> its token
}

type tokenKey struct {
	user    ecoid.ID
	purpose auth.TokenPurpose
}

func cloneToken(t auth.OneTimeToken) auth.OneTimeToken {
	t.Hash = bytes.Clone(t.Hash)
	return t
}

// dropToken removes the token of k, if any. Called with mu held.
func (s *AuthStore) dropToken(k tokenKey) {
	if t, ok := s.account.tokens[k]; ok {
		delete(s.account.byHash, string(t.Hash))
		delete(s.account.tokens, k)
	}
}

// SaveOneTimeToken implements auth.AccountStore.
func (s *AuthStore) SaveOneTimeToken(_ context.Context, t auth.OneTimeToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[t.UserID]; !ok {
		return auth.ErrNotFound
	}
	if k, ok := s.account.byHash[string(t.Hash)]; ok && k != (tokenKey{t.UserID, t.Purpose}) {
		return fmt.Errorf("%w: token hash exists", auth.ErrConflict)
	}
	if s.account.tokens == nil {
		s.account.tokens = map[tokenKey]auth.OneTimeToken{}
		s.account.byHash = map[string]tokenKey{}
	}
	k := tokenKey{t.UserID, t.Purpose}
	s.dropToken(k)
	s.account.tokens[k] = cloneToken(t)
	s.account.byHash[string(t.Hash)] = k
	return nil
}

// ConsumeOneTimeToken implements auth.AccountStore.
func (s *AuthStore) ConsumeOneTimeToken(_ context.Context, hash []byte, purpose auth.TokenPurpose, now time.Time) (auth.OneTimeToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.account.byHash[string(hash)]
	if !ok || k.purpose != purpose {
		return auth.OneTimeToken{}, auth.ErrNotFound
	}
	t := s.account.tokens[k]
	s.dropToken(k)
	if _, ok := s.users[t.UserID]; !ok || !now.Before(t.ExpiresAt) {
		return auth.OneTimeToken{}, auth.ErrNotFound
	}
	return t, nil
}

// DeleteOneTimeTokens implements auth.AccountStore.
func (s *AuthStore) DeleteOneTimeTokens(_ context.Context, userID ecoid.ID, purpose auth.TokenPurpose) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.account.tokens {
		if k.user == userID && (purpose == "" || k.purpose == purpose) {
			s.dropToken(k)
		}
	}
	return nil
}

// OneTimeTokens implements auth.AccountStore.
func (s *AuthStore) OneTimeTokens(_ context.Context, userID ecoid.ID) ([]auth.OneTimeToken, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []auth.OneTimeToken
	for k, t := range s.account.tokens {
		if k.user == userID {
			out = append(out, cloneToken(t))
		}
	}
	slices.SortFunc(out, func(a, b auth.OneTimeToken) int { return strings.Compare(string(a.Purpose), string(b.Purpose)) })
	return out, nil
}

// SetEmailVerified implements auth.AccountStore.
func (s *AuthStore) SetEmailVerified(_ context.Context, userID ecoid.ID, email string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userID]
	if !ok {
		return auth.ErrNotFound
	}
	if !strings.EqualFold(u.Email, email) {
		return auth.ErrConflict
	}
	u.EmailVerified = true
	s.users[userID] = u
	return nil
}

// UpdateProfile implements auth.AccountStore.
func (s *AuthStore) UpdateProfile(_ context.Context, userID ecoid.ID, fullName string, _ time.Time) (auth.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userID]
	if !ok {
		return auth.User{}, auth.ErrNotFound
	}
	u.FullName = fullName
	s.users[userID] = u
	return u, nil
}

// UserSessions implements auth.AccountStore.
func (s *AuthStore) UserSessions(_ context.Context, userID ecoid.ID) ([]auth.Session, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []auth.Session
	for _, sess := range s.sessions {
		if sess.UserID == userID {
			out = append(out, cloneSession(sess))
		}
	}
	slices.SortFunc(out, func(a, b auth.Session) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(string(b.ID), string(a.ID))
	})
	return out, nil
}

// mentions reports whether a belongs to the account of userID and email.
func mentions(a auth.Activity, userID ecoid.ID, email string) bool {
	return a.UserID == userID || (a.UserID == "" && email != "" && a.Email == email)
}

// AccountActivities implements auth.AccountStore.
func (s *AuthStore) AccountActivities(_ context.Context, userID ecoid.ID, email string, limit int) ([]auth.Activity, error) {
	if limit <= 0 {
		limit = 100
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []auth.Activity
	for i := len(s.activities) - 1; i >= 0 && len(out) < limit; i-- {
		if mentions(s.activities[i], userID, email) {
			out = append(out, s.activities[i])
		}
	}
	return out, nil
}

// EraseUser implements auth.AccountStore.
func (s *AuthStore) EraseUser(_ context.Context, userID ecoid.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userID]
	if !ok {
		return auth.ErrNotFound
	}
	delete(s.users, userID)
	delete(s.byEmail, strings.ToLower(u.Email))
	delete(s.passwords, userID)
	for id, sess := range s.sessions {
		if sess.UserID == userID {
			delete(s.sessions, id)
		}
	}
	for k := range s.grants {
		if k[1] == userID {
			delete(s.grants, k)
		}
	}
	for k := range s.account.tokens {
		if k.user == userID {
			s.dropToken(k)
		}
	}
	s.mfa.deleteUser(userID)
	kept := s.activities[:0]
	for _, a := range s.activities {
		if a.UserID != userID && a.Email != u.Email {
			kept = append(kept, a)
		}
	}
	clear(s.activities[len(kept):])
	s.activities = kept
	return nil
}
