package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/sso"
)

var _ sso.Store = (*SSOStore)(nil)

// SSOStore implements sso.Store in memory: registered projects and authorization codes.
// It is safe for concurrent use.
type SSOStore struct {
	mu       sync.Mutex
	projects map[ecoid.ID]ssoProject
	codes    map[string]sso.Code   // by string(hash)
	sessions map[ecoid.ID]ecoid.ID // session -> project
}

type ssoProject struct {
	p          sso.Project
	secretHash []byte
}

// NewSSOStore returns an empty SSOStore.
func NewSSOStore() *SSOStore {
	return &SSOStore{projects: map[ecoid.ID]ssoProject{}, codes: map[string]sso.Code{}, sessions: map[ecoid.ID]ecoid.ID{}}
}

// CreateProject implements sso.Store.
func (s *SSOStore) CreateProject(_ context.Context, p sso.Project, secretHash []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[p.ID]; ok {
		return fmt.Errorf("%w: project %s exists", sso.ErrConflict, p.ID)
	}
	p.RedirectURIs = slices.Clone(p.RedirectURIs)
	s.projects[p.ID] = ssoProject{p: p, secretHash: bytes.Clone(secretHash)}
	return nil
}

// Project implements sso.Store.
func (s *SSOStore) Project(_ context.Context, id ecoid.ID) (sso.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.projects[id]
	if !ok {
		return sso.Project{}, sso.ErrNotFound
	}
	p := sp.p
	p.RedirectURIs = slices.Clone(p.RedirectURIs)
	return p, nil
}

// ProjectSecretHash implements sso.Store.
func (s *SSOStore) ProjectSecretHash(_ context.Context, id ecoid.ID) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.projects[id]
	if !ok {
		return nil, sso.ErrNotFound
	}
	return bytes.Clone(sp.secretHash), nil
}

// Projects implements sso.Store.
func (s *SSOStore) Projects(_ context.Context) ([]sso.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sso.Project, 0, len(s.projects))
	for _, sp := range s.projects {
		p := sp.p
		p.RedirectURIs = slices.Clone(p.RedirectURIs)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b sso.Project) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out, nil
}

// CreateCode implements sso.Store.
func (s *SSOStore) CreateCode(_ context.Context, c sso.Code) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.codes[string(c.Hash)]; ok {
		return fmt.Errorf("%w: code exists", sso.ErrConflict)
	}
	c.Hash = bytes.Clone(c.Hash)
	s.codes[string(c.Hash)] = c
	return nil
}

// RedeemCode implements sso.Store.
func (s *SSOStore) RedeemCode(_ context.Context, hash []byte, at time.Time) (sso.Code, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[string(hash)]
	if !ok {
		return sso.Code{}, sso.ErrNotFound
	}
	if !c.UsedAt.IsZero() {
		return c, sso.ErrCodeUsed
	}
	c.UsedAt = at
	s.codes[string(hash)] = c
	return c, nil
}

// SetCodeSession implements sso.Store.
func (s *SSOStore) SetCodeSession(_ context.Context, hash []byte, sessionID ecoid.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[string(hash)]
	if !ok {
		return sso.ErrNotFound
	}
	c.SessionID = sessionID
	s.codes[string(hash)] = c
	return nil
}

// DeleteExpiredCodes implements sso.Store.
func (s *SSOStore) DeleteExpiredCodes(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.codes {
		if c.ExpiresAt.Before(before) {
			delete(s.codes, k)
			n++
		}
	}
	return n, nil
}

// BindSession implements sso.Store.
func (s *SSOStore) BindSession(_ context.Context, sessionID, projectID ecoid.ID, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sessionID]; ok {
		return fmt.Errorf("%w: session %s is bound", sso.ErrConflict, sessionID)
	}
	s.sessions[sessionID] = projectID
	return nil
}

// SessionProject implements sso.Store.
func (s *SSOStore) SessionProject(_ context.Context, sessionID ecoid.ID) (ecoid.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.sessions[sessionID]
	if !ok {
		return "", sso.ErrNotFound
	}
	return p, nil
}
