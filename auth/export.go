package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// Export is everything auth holds about one user (GDPR articles 15 and 20), as JSON:
// identity and profile, every session (revoked ones too), project grants, outstanding
// one-time links, the second factor's state and the activity log. It holds no password
// hash, token, token hash, TOTP secret or recovery code.
type Export struct {
	User          User           `json:"user"`
	Sessions      []SessionInfo  `json:"sessions"`
	ProjectAccess []GrantInfo    `json:"project_access"`
	PendingLinks  []TokenInfo    `json:"pending_links"`
	MFA           MFAInfo        `json:"mfa"`
	Activity      []ActivityInfo `json:"activity"`
}

// MFAInfo is the user's second factor as Export shows it: never the secret or a
// recovery code.
type MFAInfo struct {
	TOTPEnabled       bool       `json:"totp_enabled"`
	TOTPPending       bool       `json:"totp_pending"`
	EnrolledAt        *time.Time `json:"enrolled_at,omitempty"`
	EnabledAt         *time.Time `json:"enabled_at,omitempty"`
	RecoveryCodesLeft int        `json:"recovery_codes_left"`
}

// GrantInfo is a project grant as Export shows it.
type GrantInfo struct {
	ProjectID ecoid.ID  `json:"project_id"`
	Role      Role      `json:"role"`
	GrantedAt time.Time `json:"granted_at"`
}

// TokenInfo is an outstanding one-time link as Export shows it: never the token or its
// hash.
type TokenInfo struct {
	Purpose   TokenPurpose `json:"purpose"`
	Email     string       `json:"email"`
	CreatedAt time.Time    `json:"created_at"`
	ExpiresAt time.Time    `json:"expires_at"`
}

// ActivityInfo is an activity-log entry as a user sees it.
type ActivityInfo struct {
	At        time.Time `json:"at"`
	Action    Action    `json:"action"`
	Success   bool      `json:"success"`
	Detail    string    `json:"detail,omitempty"`
	Email     string    `json:"email,omitempty"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
}

// MarkCurrent sets Current on the export's session with ID current (the caller's), as
// Sessions does.
func (x *Export) MarkCurrent(current ecoid.ID) {
	for i := range x.Sessions {
		x.Sessions[i].Current = current != "" && x.Sessions[i].ID == current
	}
}

// ActivityInfos converts log entries for showing them to their user.
func ActivityInfos(as []Activity) []ActivityInfo {
	out := make([]ActivityInfo, len(as))
	for i, a := range as {
		out[i] = ActivityInfo{At: a.At, Action: a.Action, Success: a.Success, Detail: a.Detail, Email: a.Email, IP: a.IP, UserAgent: a.UserAgent}
	}
	return out
}

// Export returns what auth holds about the user (see Export): at most
// MaxExportActivities activity entries, the newest. ErrNotFound for an unknown user.
// Export does not know which session asks, so no session is marked Current; a handler
// that does know marks it (MarkCurrent).
func (s *Service) Export(ctx context.Context, userID ecoid.ID) (Export, error) {
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return Export{}, fmt.Errorf("auth: export: %w", err)
	}
	sessions, err := s.store.UserSessions(ctx, userID)
	if err != nil {
		return Export{}, fmt.Errorf("auth: export: %w", err)
	}
	grants, err := s.store.UserGrants(ctx, userID)
	if err != nil {
		return Export{}, fmt.Errorf("auth: export: %w", err)
	}
	tokens, err := s.store.OneTimeTokens(ctx, userID)
	if err != nil {
		return Export{}, fmt.Errorf("auth: export: %w", err)
	}
	acts, err := s.store.AccountActivities(ctx, userID, u.Email, MaxExportActivities)
	if err != nil {
		return Export{}, fmt.Errorf("auth: export: %w", err)
	}
	mfaInfo, err := s.mfaInfo(ctx, userID)
	if err != nil {
		return Export{}, fmt.Errorf("auth: export: %w", err)
	}
	out := Export{
		MFA:  mfaInfo,
		User: u, Sessions: make([]SessionInfo, len(sessions)), ProjectAccess: make([]GrantInfo, len(grants)),
		PendingLinks: make([]TokenInfo, len(tokens)), Activity: ActivityInfos(acts),
	}
	for i, sess := range sessions {
		out.Sessions[i] = sessionInfo(sess, "")
	}
	for i, g := range grants {
		out.ProjectAccess[i] = GrantInfo{ProjectID: g.ProjectID, Role: g.Role, GrantedAt: g.GrantedAt}
	}
	for i, t := range tokens {
		out.PendingLinks[i] = TokenInfo{Purpose: t.Purpose, Email: t.Email, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
	}
	return out, nil
}

// DeleteAccount erases the account (GDPR article 17) after checking its password: the
// OnErase hook runs first (the caller's other data: API keys, billing), then the store
// erases identity, credentials, profile, email verification, sessions (so every refresh
// token dies at once), grants, one-time links and every activity entry of the user or
// naming its email. The email can register again. What stays is one activity entry
// with the user's ID only (no email, address or user agent), recording that the account
// was erased. Wrong passwords are throttled per user (AccountConfig.PasswordPerUser).
// Errors: ErrInvalidCredentials for a wrong password, a *ThrottledError, ErrNotFound for
// an unknown user, the hook's error (nothing erased), or a store error.
func (s *Service) DeleteAccount(ctx context.Context, c Client, userID ecoid.ID, password string) error {
	if err := s.checkPassword(ctx, c, userID, password, ActionAccountErase); err != nil {
		return fmt.Errorf("auth: delete account: %w", err)
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return fmt.Errorf("auth: delete account: %w", err)
	}
	if s.acct.onErase != nil {
		if err := s.acct.onErase(ctx, u); err != nil {
			return fmt.Errorf("auth: delete account: erase hook: %w", err)
		}
	}
	if err := s.store.EraseUser(ctx, userID); err != nil {
		return fmt.Errorf("auth: delete account: %w", err)
	}
	s.record(ctx, Client{}, Activity{UserID: userID, Action: ActionAccountErase, Success: true})
	return nil
}

// mfaInfo reads the user's TOTP enrollment and recovery codes for Export.
// A store without MFA support holds none.
func (s *Service) mfaInfo(ctx context.Context, userID ecoid.ID) (MFAInfo, error) {
	var ms MFAStore
	if m, err := s.mfaOn(); err == nil {
		ms = m.store
	} else if x, ok := s.store.(MFAStore); ok {
		ms = x
	} else {
		return MFAInfo{}, nil
	}
	st, err := ms.TOTP(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return MFAInfo{}, nil
	}
	if err != nil {
		return MFAInfo{}, err
	}
	info := MFAInfo{TOTPEnabled: st.Enabled(), TOTPPending: !st.Enabled()}
	created := st.CreatedAt
	info.EnrolledAt = &created
	if st.Enabled() {
		enabled := st.EnabledAt
		info.EnabledAt = &enabled
		if info.RecoveryCodesLeft, err = ms.RecoveryCodesLeft(ctx, userID); err != nil {
			return MFAInfo{}, err
		}
	}
	return info, nil
}
