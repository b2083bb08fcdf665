package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// parseMFAConfig reads NEXUS_MFA_KEY: the standard or URL-safe base64 of 32 random bytes
// (`openssl rand -base64 32`), the AES-256-GCM key that encrypts TOTP secrets at rest. A
// malformed value stops the server; the error never repeats it.
func parseMFAConfig(cfg *config, getenv func(string) string) error {
	v := getenv("NEXUS_MFA_KEY")
	if v == "" {
		return nil
	}
	k, err := auth.ParseMFAKey(v)
	if err != nil {
		return fmt.Errorf("NEXUS_MFA_KEY must be the base64 of %d random bytes (openssl rand -base64 32)", auth.MFAKeySize)
	}
	cfg.MFAKey = k
	return nil
}

// mfaConfig is the auth.MFAConfig of NEXUS_MFA_KEY. Unset, the development default is a
// random key per process with in-memory stores (enrollments die with the process
// anyway), and two-factor authentication off with Postgres (its routes answer 503
// mfa_disabled), because a random key would lock enrolled users out at the next restart.
func (s *services) mfaConfig() auth.MFAConfig {
	switch {
	case s.cfg.MFAKey != nil:
		return auth.MFAConfig{Key: s.cfg.MFAKey}
	case s.db == nil:
		k := make([]byte, auth.MFAKeySize)
		_, _ = rand.Read(k)
		s.log.Warn("NEXUS_MFA_KEY is unset: using a random key, so TOTP enrollments do not survive a restart")
		return auth.MFAConfig{Key: k}
	default:
		s.log.Warn("NEXUS_MFA_KEY is unset: two-factor authentication is off (its routes answer 503)")
		return auth.MFAConfig{}
	}
}

// mfaHandlers serve /api/auth/mfa/*: TOTP enrollment and the second step of login.
type mfaHandlers struct {
	svc         *auth.Service
	sessions    authHandlers                    // writes the login answer (tokens and cookies)
	requireUser func(http.Handler) http.Handler // 401 without a valid access token
	log         *slog.Logger
}

func (h mfaHandlers) register(rt *router) {
	rt.Handle("POST /api/auth/mfa/totp/enroll", h.requireUser(http.HandlerFunc(h.enroll)))
	rt.Handle("POST /api/auth/mfa/totp/confirm", h.requireUser(http.HandlerFunc(h.confirm)))
	rt.Handle("POST /api/auth/mfa/totp/disable", h.requireUser(http.HandlerFunc(h.disable)))
	rt.HandleFunc("POST /api/auth/mfa/verify", h.verify)
}

// enroll: POST /api/auth/mfa/totp/enroll {password} → {secret, otpauth_url}, shown this
// once. The password is asked again: a stolen access token alone must not bind a factor.
func (h mfaHandlers) enroll(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Password string `json:"password"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	en, err := h.svc.EnrollTOTP(r.Context(), auth.ClientFromRequest(r), currentUser(r), in.Password)
	if err != nil {
		h.mfaError(w, r, err, http.StatusBadRequest)
		return
	}
	httpjson.WriteSecret(w, http.StatusOK, en)
}

// confirm: POST /api/auth/mfa/totp/confirm {code} → {recovery_codes}; TOTP is now on.
func (h mfaHandlers) confirm(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Code string `json:"code"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	codes, err := h.svc.ConfirmTOTP(r.Context(), auth.ClientFromRequest(r), currentUser(r), in.Code)
	if err != nil {
		h.mfaError(w, r, err, http.StatusBadRequest)
		return
	}
	httpjson.WriteSecret(w, http.StatusOK, map[string][]string{"recovery_codes": codes})
}

// disable: POST /api/auth/mfa/totp/disable {password, code}; code may be a recovery code.
func (h mfaHandlers) disable(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Password string `json:"password"`
		Code     string `json:"code"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	if err := h.svc.DisableTOTP(r.Context(), auth.ClientFromRequest(r), currentUser(r), in.Password, in.Code); err != nil {
		h.mfaError(w, r, err, http.StatusUnauthorized)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]bool{"mfa_enabled": false})
}

// verify: POST /api/auth/mfa/verify {mfa_token, code} or {mfa_token, recovery_code}
// finishes a login that answered mfa_required, with the login's answer and cookies.
func (h mfaHandlers) verify(w http.ResponseWriter, r *http.Request) {
	var in struct {
		MFAToken     string `json:"mfa_token"`
		Code         string `json:"code"`
		RecoveryCode string `json:"recovery_code"`
	}
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.WriteDecodeError(w, err)
		return
	}
	if (in.Code == "") == (in.RecoveryCode == "") {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_request", "send mfa_token with exactly one of code and recovery_code")
		return
	}
	c := auth.ClientFromRequest(r)
	var res auth.Result
	var err error
	if in.Code != "" {
		res, err = h.svc.VerifyMFA(r.Context(), c, in.MFAToken, in.Code)
	} else {
		res, err = h.svc.VerifyMFARecovery(r.Context(), c, in.MFAToken, in.RecoveryCode)
	}
	if err != nil {
		h.mfaError(w, r, err, http.StatusUnauthorized)
		return
	}
	h.sessions.writeSession(w, http.StatusOK, res)
}

// mfaError maps the auth errors of the MFA routes; a wrong code is codeStatus (400 on
// confirm, 401 on verify and disable).
func (h mfaHandlers) mfaError(w http.ResponseWriter, r *http.Request, err error, codeStatus int) {
	var te *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrMFADisabled):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "mfa_disabled", "two-factor authentication is not configured on this server (NEXUS_MFA_KEY)")
	case errors.Is(err, auth.ErrMFAEnabled):
		httpjson.WriteError(w, http.StatusConflict, "mfa_already_enabled", "two-factor authentication is already on; disable it first")
	case errors.Is(err, auth.ErrMFANotEnabled):
		httpjson.WriteError(w, http.StatusConflict, "mfa_not_enabled", "two-factor authentication is not on")
	case errors.Is(err, auth.ErrInvalidCode):
		httpjson.WriteError(w, codeStatus, "invalid_code", "invalid or already used code")
	case errors.Is(err, auth.ErrInvalidMFAToken):
		httpjson.WriteError(w, http.StatusUnauthorized, "invalid_mfa_token", "invalid or expired mfa_token; log in again")
	case errors.Is(err, auth.ErrInvalidCredentials):
		httpjson.WriteError(w, http.StatusUnauthorized, "invalid_credentials", "wrong password")
	case errors.Is(err, auth.ErrNotFound):
		httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "the account no longer exists")
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfterSeconds(te.RetryAfter)))
		httpjson.WriteError(w, http.StatusTooManyRequests, "too_many_attempts", "too many wrong attempts; try again later")
	case errors.Is(err, auth.ErrThrottleUnavailable):
		h.log.Error("mfa: throttle store unavailable", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "throttle_unavailable", "try again shortly")
	default:
		internalError(h.log, w, r, "request failed", err)
	}
}

// mfaRequiredJSON is the login answer for a user with TOTP on: no tokens, no cookies.
type mfaRequiredJSON struct {
	MFARequired bool      `json:"mfa_required"`
	MFAToken    string    `json:"mfa_token"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// writeLoginMFA answers a login whose error asks for a second factor, and reports
// whether it did: 200 {mfa_required, mfa_token} for a *MFARequiredError, 503
// mfa_disabled when the user has TOTP on but the server has no NEXUS_MFA_KEY.
func writeLoginMFA(w http.ResponseWriter, err error) bool {
	var mr *auth.MFARequiredError
	switch {
	case errors.As(err, &mr):
		httpjson.WriteSecret(w, http.StatusOK, mfaRequiredJSON{MFARequired: true, MFAToken: mr.Token, ExpiresAt: mr.ExpiresAt.UTC()})
	case errors.Is(err, auth.ErrMFADisabled):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "mfa_disabled", "this account needs a second factor, but two-factor authentication is not configured on this server")
	default:
		return false
	}
	return true
}
