package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/mail"
)

// SendVerification mails the user a link that verifies their email (valid
// AccountConfig.VerifyEmailTTL, default 24 h, once). A newer link replaces an older one.
// The mail is delivered in the background; a delivery failure is logged and recorded in
// the activity log. Calls are throttled per user (AccountConfig.SendPerUser). Errors:
// ErrMailDisabled without a Mailer, ErrAlreadyVerified, ErrNotFound for an unknown user,
// a *ThrottledError, or a store error.
func (s *Service) SendVerification(ctx context.Context, c Client, userID ecoid.ID) error {
	if !s.MailEnabled() {
		return ErrMailDisabled
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return fmt.Errorf("auth: send verification: %w", err)
	}
	if u.EmailVerified {
		return ErrAlreadyVerified
	}
	if _, err := s.reserveAttempt(ctx, c, Activity{UserID: u.ID, Action: ActionEmailVerifySend}, s.acct.sendUser, "verify-send", string(u.ID)); err != nil {
		return err
	}
	tok, err := s.issueOneTime(ctx, u, PurposeVerifyEmail, s.acct.verifyTTL)
	if err != nil {
		return err
	}
	m := mail.Message{
		To:      u.Email,
		Subject: "Verify your email address",
		Text: "Please confirm that " + u.Email + " is your email address by opening this link within " +
			humanDuration(s.acct.verifyTTL) + ":\n\n" + s.acct.link(s.acct.verifyPath, tok) +
			"\n\nThe link works once. If you did not create an account, you can ignore this message.\n",
	}
	return s.background(ctx, true, func(ctx context.Context) { s.send(ctx, c, u.ID, ActionEmailVerifySend, m) })
}

// VerifyEmail redeems a verification token: the email it was sent to is marked verified
// and the user returned. Errors: ErrInvalidOneTimeToken (malformed, unknown, used,
// expired, of another purpose, or the account's email changed since), a *ThrottledError
// after AccountConfig.RedeemPerClient failures from one client network, or a store error.
func (s *Service) VerifyEmail(ctx context.Context, c Client, token string) (User, error) {
	at, err := s.reserveAttempt(ctx, c, Activity{Action: ActionEmailVerify}, s.acct.redeemClient, "redeem-client", ClientNetwork(c.IP))
	if err != nil {
		return User{}, err
	}
	t, u, err := s.redeem(ctx, token, PurposeVerifyEmail)
	if err != nil {
		return User{}, err
	}
	s.giveBack(ctx, at)
	if err := s.store.SetEmailVerified(ctx, u.ID, t.Email, s.clock()); err != nil {
		return User{}, s.redeemFailed(err)
	}
	u.EmailVerified = true
	s.record(ctx, c, Activity{UserID: u.ID, Email: u.Email, Action: ActionEmailVerify, Success: true})
	return u, nil
}

// issueOneTime makes and stores a token of purpose for u, valid for ttl.
func (s *Service) issueOneTime(ctx context.Context, u User, purpose TokenPurpose, ttl time.Duration) (string, error) {
	tok, hash, err := newOneTimeToken()
	if err != nil {
		return "", err
	}
	now := s.clock()
	err = s.store.SaveOneTimeToken(ctx, OneTimeToken{
		Hash: hash, UserID: u.ID, Purpose: purpose, Email: u.Email, CreatedAt: now, ExpiresAt: now.Add(ttl),
	})
	if err != nil {
		return "", fmt.Errorf("auth: save %s token: %w", purpose, err)
	}
	return tok, nil
}

// redeem consumes a token of purpose and returns it with its user, whose email must
// still be the one the token was sent to.
func (s *Service) redeem(ctx context.Context, token string, purpose TokenPurpose) (OneTimeToken, User, error) {
	hash, err := parseOneTimeToken(token)
	if err != nil {
		return OneTimeToken{}, User{}, err
	}
	t, err := s.store.ConsumeOneTimeToken(ctx, hash, purpose, s.clock())
	if err != nil {
		return OneTimeToken{}, User{}, s.redeemFailed(err)
	}
	u, err := s.store.UserByID(ctx, t.UserID)
	if err != nil {
		return OneTimeToken{}, User{}, s.redeemFailed(err)
	}
	if u.Email != t.Email {
		return OneTimeToken{}, User{}, ErrInvalidOneTimeToken
	}
	return t, u, nil
}

// redeemFailed maps the store's "no such token, user or email" to ErrInvalidOneTimeToken.
func (s *Service) redeemFailed(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return ErrInvalidOneTimeToken
	}
	return fmt.Errorf("auth: redeem token: %w", err)
}

// humanDuration says 24 hours, 1 hour or 30 minutes.
func humanDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}
