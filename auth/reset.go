package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/nexus-ecosystem/nexus/mail"
)

// ForgotPassword starts a password reset for email: when an account has this address, it
// is mailed a one-time link (valid AccountConfig.ResetPasswordTTL, default 1 h, once;
// a newer link replaces an older one). The answer is the same whether or not the
// address has an account, and so is the work done before it: the address is checked
// and the call handed to a background job, which looks the account up, stores the token
// and sends the mail. When every background slot is busy (AccountConfig.MailJobs), the
// job is dropped and logged rather than waited for. Without a Mailer it does nothing
// and returns nil. Calls are throttled per client network and per address
// (AccountConfig.ForgotPerClient, ForgotPerEmail), counted alike whether or not the
// address has an account. Errors: one wrapping ErrInvalidEmail, a *ThrottledError, or
// one wrapping ErrThrottleUnavailable.
func (s *Service) ForgotPassword(ctx context.Context, c Client, email string) error {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	a := Activity{Email: norm, Action: ActionPasswordResetRequest}
	if _, err := s.reserveAttempt(ctx, c, a, s.acct.forgotClient, "forgot-client", ClientNetwork(c.IP)); err != nil {
		return err
	}
	if _, err := s.reserveAttempt(ctx, c, a, s.acct.forgotEmail, "forgot-email", norm); err != nil {
		return err
	}
	if !s.MailEnabled() {
		return nil
	}
	// A dropped job (every slot busy) is logged; the answer stays the same.
	_ = s.background(ctx, false, func(ctx context.Context) { s.mailReset(ctx, c, norm) })
	return nil
}

// mailReset is ForgotPassword's background half.
func (s *Service) mailReset(ctx context.Context, c Client, email string) {
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil {
		a := Activity{Email: email, Action: ActionPasswordResetRequest, Detail: "unknown email"}
		if !errors.Is(err, ErrNotFound) {
			s.log.Warn("auth: password reset: user lookup failed", "err", err)
			a.Detail = "store error"
		}
		s.record(ctx, c, a)
		return
	}
	tok, err := s.issueOneTime(ctx, u, PurposeResetPassword, s.acct.resetTTL)
	if err != nil {
		s.log.Warn("auth: password reset: storing the token failed", "user", u.ID, "err", err)
		s.record(ctx, c, Activity{UserID: u.ID, Email: email, Action: ActionPasswordResetRequest, Detail: "store error"})
		return
	}
	s.send(ctx, c, u.ID, ActionPasswordResetRequest, mail.Message{
		To:      u.Email,
		Subject: "Reset your password",
		Text: "Someone asked to reset the password of the account " + u.Email + ". To choose a new password, open this link within " +
			humanDuration(s.acct.resetTTL) + ":\n\n" + s.acct.link(s.acct.resetPath, tok) +
			"\n\nThe link works once, and signs out every session of the account. If you did not ask for it, you can ignore this message: your password stays as it is.\n",
	})
}

// ResetPassword redeems a password-reset token: the new password (under the policy)
// replaces the old one, every session of the user is revoked, any other reset link stops
// working, and the email counts as verified (the link reached its mailbox). A weak
// password is refused before the token is used, so the link still works for a second
// try. Failed redemptions are throttled per client network (AccountConfig.
// RedeemPerClient). Errors: a *PolicyError (errors.Is ErrWeakPassword),
// ErrInvalidOneTimeToken, a *ThrottledError, or a store error.
func (s *Service) ResetPassword(ctx context.Context, c Client, token, password string) (User, error) {
	at, err := s.reserveAttempt(ctx, c, Activity{Action: ActionPasswordReset}, s.acct.redeemClient, "redeem-client", ClientNetwork(c.IP))
	if err != nil {
		return User{}, err
	}
	if _, err := parseOneTimeToken(token); err != nil {
		return User{}, err
	}
	if err := s.policy.Validate(password); err != nil {
		s.giveBack(ctx, at) // a weak password is not a guess
		return User{}, err
	}
	nh, err := s.hasher.Hash(password)
	if err != nil {
		return User{}, err
	}
	t, u, err := s.redeem(ctx, token, PurposeResetPassword)
	if err != nil {
		return User{}, err
	}
	s.giveBack(ctx, at)
	now := s.clock()
	if err := s.store.SetPasswordHash(ctx, u.ID, nh, now); err != nil {
		return User{}, fmt.Errorf("auth: reset password: %w", err)
	}
	if _, err := s.store.RevokeUserSessions(ctx, u.ID, "", now); err != nil {
		return User{}, fmt.Errorf("auth: reset password: revoke sessions: %w", err)
	}
	if err := s.store.DeleteOneTimeTokens(ctx, u.ID, PurposeResetPassword); err != nil {
		return User{}, fmt.Errorf("auth: reset password: %w", err)
	}
	switch err := s.store.SetEmailVerified(ctx, u.ID, t.Email, now); {
	case err == nil:
		u.EmailVerified = true
	case !errors.Is(err, ErrConflict):
		return User{}, fmt.Errorf("auth: reset password: %w", err)
	}
	s.record(ctx, c, Activity{UserID: u.ID, Email: u.Email, Action: ActionPasswordReset, Success: true})
	return u, nil
}
