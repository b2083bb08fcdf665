// Package auth provides user accounts for a Go service: password hashing and policy,
// email normalisation, HS256 JWT access and refresh tokens, sessions with refresh-token
// rotation and reuse detection, cookies, the RequireUser middleware, project access
// grants and an activity log.
//
// A Service does the work over a Store (storage/memory or storage/postgres):
//
//	issuer, err := auth.NewIssuer(auth.IssuerConfig{Secret: secret}) // ≥ 32 bytes
//	svc, err := auth.NewService(auth.Config{Store: memory.NewAuthStore(), Issuer: issuer})
//	res, err := svc.Register(ctx, client, "ann@example.com", "correct Horse 9!", "Ann")
//	pair, err := svc.Refresh(ctx, client, res.RefreshToken)
//
// Access tokens live 15 minutes and are checked without the store; refresh tokens live 7
// days, are single use, and presenting one a second time revokes the session. Verify
// tolerates DefaultLeeway (30 s) of clock skew.
//
// Login reserves every attempt in a ThrottleStore before checking the password, so
// parallel guesses cannot overtake the throttle: a hard limit per (email, client
// network), default 5 per 15 minutes, keeps one source from guessing or from locking the
// owner out elsewhere; a softer limit per email, default 50 per hour, caps guessing
// spread over many addresses (OWASP's Authentication and Credential Stuffing cheat
// sheets). Instances share the counters through storage/postgres or storage/redis.
// Passwords are compared in NFKC and emails in NFC (NIST SP 800-63B §5.1.1.2).
//
// With Config.MFA set, users can turn on TOTP two-factor authentication (RFC 6238, see
// auth/totp) with recovery codes: EnrollTOTP, ConfirmTOTP, then Login answers a
// *MFARequiredError that VerifyMFA or VerifyMFARecovery completes.
package auth
