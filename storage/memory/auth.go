package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var _ auth.Store = (*AuthStore)(nil)

// MaxActivities bounds the in-memory activity log: when it is full, the oldest half is
// dropped, so a long-running demo cannot grow without limit.
const MaxActivities = 100_000

// AuthStore implements auth.Store in memory. It is safe for concurrent use. The activity
// log keeps at most MaxActivities entries.
type AuthStore struct {
	mu         sync.RWMutex
	users      map[ecoid.ID]auth.User
	byEmail    map[string]ecoid.ID // lower-cased email -> user
	passwords  map[ecoid.ID]string
	sessions   map[ecoid.ID]auth.Session
	grants     map[[2]ecoid.ID]auth.Grant // {project, user}
	activities []auth.Activity
	account    accountData // one-time tokens and email verification (auth_account.go)
	mfa        mfaData     // see mfa.go
}

// NewAuthStore returns an empty AuthStore.
func NewAuthStore() *AuthStore {
	return &AuthStore{
		users:     map[ecoid.ID]auth.User{},
		byEmail:   map[string]ecoid.ID{},
		passwords: map[ecoid.ID]string{},
		sessions:  map[ecoid.ID]auth.Session{},
		grants:    map[[2]ecoid.ID]auth.Grant{},
	}
}

// CreateUser implements auth.UserStore.
func (s *AuthStore) CreateUser(_ context.Context, u auth.User, passwordHash string) error {
	key := strings.ToLower(u.Email)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byEmail[key]; ok {
		return auth.ErrEmailTaken
	}
	if _, ok := s.users[u.ID]; ok {
		return fmt.Errorf("%w: user %s exists", auth.ErrConflict, u.ID)
	}
	s.users[u.ID] = u
	s.byEmail[key] = u.ID
	s.passwords[u.ID] = passwordHash
	return nil
}

// DeleteUser implements auth.UserStore.
func (s *AuthStore) DeleteUser(_ context.Context, id ecoid.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return auth.ErrNotFound
	}
	delete(s.users, id)
	delete(s.byEmail, strings.ToLower(u.Email))
	delete(s.passwords, id)
	for sid, sess := range s.sessions {
		if sess.UserID == id {
			delete(s.sessions, sid)
		}
	}
	for k := range s.grants {
		if k[1] == id {
			delete(s.grants, k)
		}
	}
	s.mfa.deleteUser(id)
	return nil
}

// UserByID implements auth.UserStore.
func (s *AuthStore) UserByID(_ context.Context, id ecoid.ID) (auth.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[id]
	if !ok {
		return auth.User{}, auth.ErrNotFound
	}
	return u, nil
}

// UserByEmail implements auth.UserStore.
func (s *AuthStore) UserByEmail(_ context.Context, email string) (auth.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.byEmail[strings.ToLower(email)]
	if !ok {
		return auth.User{}, auth.ErrNotFound
	}
	return s.users[id], nil
}

// PasswordHash implements auth.UserStore.
func (s *AuthStore) PasswordHash(_ context.Context, userID ecoid.ID) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.passwords[userID]
	if !ok {
		return "", auth.ErrNotFound
	}
	return h, nil
}

// SetPasswordHash implements auth.UserStore.
func (s *AuthStore) SetPasswordHash(_ context.Context, userID ecoid.ID, hash string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[userID]; !ok {
		return auth.ErrNotFound
	}
	s.passwords[userID] = hash
	return nil
}

// CreateSession implements auth.SessionStore.
func (s *AuthStore) CreateSession(_ context.Context, sess auth.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[sess.UserID]; !ok {
		return auth.ErrNotFound
	}
	if _, ok := s.sessions[sess.ID]; ok {
		return fmt.Errorf("%w: session %s exists", auth.ErrConflict, sess.ID)
	}
	s.sessions[sess.ID] = cloneSession(sess)
	return nil
}

// Session implements auth.SessionStore.
func (s *AuthStore) Session(_ context.Context, id ecoid.ID) (auth.Session, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sess, ok := s.sessions[id]
	if !ok {
		return auth.Session{}, auth.ErrNotFound
	}
	return cloneSession(sess), nil
}

// RotateSession implements auth.SessionStore.
func (s *AuthStore) RotateSession(_ context.Context, id ecoid.ID, oldHash, newHash []byte, expiresAt, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return auth.ErrNotFound
	}
	if sess.Revoked() || !bytes.Equal(sess.RefreshHash, oldHash) {
		return auth.ErrConflict
	}
	sess.PrevHash = bytes.Clone(oldHash)
	sess.RefreshHash = bytes.Clone(newHash)
	sess.RotatedAt = at
	sess.ExpiresAt = expiresAt
	s.sessions[id] = sess
	return nil
}

// RevokeSession implements auth.SessionStore.
func (s *AuthStore) RevokeSession(_ context.Context, id ecoid.ID, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return auth.ErrNotFound
	}
	if !sess.Revoked() {
		sess.RevokedAt = at
		s.sessions[id] = sess
	}
	return nil
}

// RevokeUserSessions implements auth.SessionStore.
func (s *AuthStore) RevokeUserSessions(_ context.Context, userID, except ecoid.ID, at time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sess := range s.sessions {
		if sess.UserID == userID && id != except && !sess.Revoked() {
			sess.RevokedAt = at
			s.sessions[id] = sess
			n++
		}
	}
	return n, nil
}

// GrantAccess implements auth.AccessStore.
func (s *AuthStore) GrantAccess(_ context.Context, g auth.Grant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[g.UserID]; !ok {
		return auth.ErrNotFound
	}
	s.grants[[2]ecoid.ID{g.ProjectID, g.UserID}] = g
	return nil
}

// RevokeAccess implements auth.AccessStore.
func (s *AuthStore) RevokeAccess(_ context.Context, userID, projectID ecoid.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.grants, [2]ecoid.ID{projectID, userID})
	return nil
}

// Access implements auth.AccessStore.
func (s *AuthStore) Access(_ context.Context, userID, projectID ecoid.ID) (auth.Grant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.grants[[2]ecoid.ID{projectID, userID}]
	if !ok {
		return auth.Grant{}, auth.ErrNotFound
	}
	return g, nil
}

// ProjectGrants implements auth.AccessStore.
func (s *AuthStore) ProjectGrants(_ context.Context, projectID ecoid.ID) ([]auth.Grant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []auth.Grant
	for k, g := range s.grants {
		if k[0] == projectID {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b auth.Grant) int { return strings.Compare(string(a.UserID), string(b.UserID)) })
	return out, nil
}

// UserGrants implements auth.AccessStore.
func (s *AuthStore) UserGrants(_ context.Context, userID ecoid.ID) ([]auth.Grant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []auth.Grant
	for k, g := range s.grants {
		if k[1] == userID {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b auth.Grant) int { return strings.Compare(string(a.ProjectID), string(b.ProjectID)) })
	return out, nil
}

// LogActivity implements auth.ActivityLog.
func (s *AuthStore) LogActivity(_ context.Context, a auth.Activity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.activities) >= MaxActivities {
		s.activities = append(s.activities[:0], s.activities[len(s.activities)-MaxActivities/2:]...)
	}
	s.activities = append(s.activities, a)
	return nil
}

// Activities implements auth.ActivityLog.
func (s *AuthStore) Activities(_ context.Context, userID ecoid.ID, limit int) ([]auth.Activity, error) {
	if limit <= 0 {
		limit = 100
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []auth.Activity
	for i := len(s.activities) - 1; i >= 0 && len(out) < limit; i-- {
		if s.activities[i].UserID == userID {
			out = append(out, s.activities[i])
		}
	}
	return out, nil
}

func cloneSession(s auth.Session) auth.Session {
	s.RefreshHash = bytes.Clone(s.RefreshHash)
	s.PrevHash = bytes.Clone(s.PrevHash)
	return s
}
