package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/mail"
	"github.com/nexus-ecosystem/nexus/usage"
)

// parseMailConfig reads NEXUS_MAIL_DIR (unless -mail-dir set it), NEXUS_SMTP_URL and
// NEXUS_MAIL_FROM. Setting both a directory and an SMTP URL, a bad URL or a bad sender is
// an error (the URL's password is never repeated).
func parseMailConfig(cfg *config, getenv func(string) string) error {
	if cfg.MailDir == "" {
		cfg.MailDir = getenv("NEXUS_MAIL_DIR")
	}
	cfg.SMTPURL = getenv("NEXUS_SMTP_URL")
	cfg.MailFrom = getenv("NEXUS_MAIL_FROM")
	if cfg.MailDir != "" && cfg.SMTPURL != "" {
		return errors.New("set only one of NEXUS_MAIL_DIR (-mail-dir) and NEXUS_SMTP_URL")
	}
	if cfg.SMTPURL != "" {
		if _, err := mail.ParseSMTPURL(cfg.SMTPURL); err != nil {
			return fmt.Errorf("NEXUS_SMTP_URL: %w", err)
		}
	}
	if cfg.MailFrom != "" {
		if _, err := mail.NewSMTP("smtp://localhost", mail.WithFrom(cfg.MailFrom)); err != nil {
			return fmt.Errorf("NEXUS_MAIL_FROM: %q is not one address", cfg.MailFrom)
		}
	}
	return nil
}

// accountConfig is auth's AccountConfig for this server: the mailer the configuration
// names (none by default: verification answers 503 mail_disabled), links to
// NEXUS_PUBLIC_URL, and the erasure hook that reaches the other services.
func (s *services) accountConfig() (auth.AccountConfig, error) {
	ac := auth.AccountConfig{PublicURL: s.cfg.PublicURL, OnErase: s.eraseAccountData}
	var opts []mail.Option
	if s.cfg.MailFrom != "" {
		opts = append(opts, mail.WithFrom(s.cfg.MailFrom))
	}
	switch {
	case s.cfg.SMTPURL != "":
		m, err := mail.NewSMTP(s.cfg.SMTPURL, opts...)
		if err != nil {
			return ac, fmt.Errorf("NEXUS_SMTP_URL: %w", err)
		}
		ac.Mailer, s.mailerName = m, m.Config().String()
	case s.cfg.MailDir != "":
		m, err := mail.NewDir(s.cfg.MailDir, opts...)
		if err != nil {
			return ac, fmt.Errorf("-mail-dir: %w", err)
		}
		ac.Mailer, s.mailerName = m, "dir"
	}
	return ac, nil
}

// revokeActiveKeys revokes every active key of owner.
func revokeActiveKeys(ctx context.Context, keys *apikey.Service, owner ecoid.ID) error {
	list, err := keys.List(ctx, owner)
	if err != nil {
		return err
	}
	for _, k := range list {
		if k.Status != apikey.Active {
			continue
		}
		if err := keys.Revoke(ctx, owner, k.ID); err != nil && !errors.Is(err, apikey.ErrRevoked) {
			return fmt.Errorf("revoke key %s: %w", k.ID, err)
		}
	}
	return nil
}

// eraseAccountData is auth's OnErase hook: before auth erases the account, its API keys
// are revoked, a paid subscription is canceled at Stripe (at the end of the period already
// paid for) and the email is removed from the billing row. Usage rows stay under the
// account's random ID, which nothing links to a person once auth has erased the identity:
// billing needs the period counts to charge the last period's overage. Any error stops the
// erasure before auth deletes anything, so the user can retry.
func (s *services) eraseAccountData(ctx context.Context, u auth.User) error {
	if err := revokeActiveKeys(ctx, s.keys, u.ID); err != nil {
		return err
	}
	sub, err := s.billing.Current(ctx, u.ID)
	if errors.Is(err, billing.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if sub.StripeSubscriptionID != "" && !sub.CancelAtPeriodEnd && sub.Status != billing.StatusCanceled && s.billing.StripeEnabled() {
		if _, err := s.billing.Cancel(ctx, u.ID); err != nil && !errors.Is(err, billing.ErrNoStripeSubscription) {
			return fmt.Errorf("cancel subscription: %w", err)
		}
	}
	_, err = s.billingStore.UpdateSubscription(ctx, u.ID, func(sub *billing.Subscription) error {
		sub.Email = ""
		return nil
	})
	if err != nil && !errors.Is(err, billing.ErrNotFound) {
		return fmt.Errorf("scrub billing email: %w", err)
	}
	return nil
}

// accountHandlers serve the account routes of /api/auth: profile, email verification,
// password reset and change, sessions, the activity log, export and erasure.
type accountHandlers struct {
	svc         *auth.Service
	sessions    authHandlers // writes token pairs (cookies, no-store) and maps auth errors
	keys        *apikey.Service
	usage       usage.Counter
	billing     *billing.Service
	requireUser func(http.Handler) http.Handler
	log         *slog.Logger
}

func (h accountHandlers) register(rt *router) {
	user := func(f http.HandlerFunc) http.Handler { return h.requireUser(f) }
	rt.Handle("GET /api/auth/me", user(h.me))
	rt.Handle("PATCH /api/auth/me", user(h.updateMe))
	rt.Handle("DELETE /api/auth/me", user(h.deleteMe))
	rt.Handle("GET /api/auth/me/export", user(h.export))
	rt.Handle("POST /api/auth/verify-email/send", user(h.sendVerification))
	rt.HandleFunc("POST /api/auth/verify-email", h.verifyEmail)
	rt.HandleFunc("POST /api/auth/password/forgot", h.forgot)
	rt.HandleFunc("POST /api/auth/password/reset", h.reset)
	rt.Handle("POST /api/auth/password/change", user(h.change))
	rt.Handle("GET /api/auth/sessions", user(h.listSessions))
	rt.Handle("POST /api/auth/sessions/revoke", user(h.revokeSession))
	rt.Handle("GET /api/auth/activity", user(h.activity))
}

// meJSON is GET /api/auth/me's shape (DESIGN.md 6.1).
type meJSON struct {
	ID            ecoid.ID  `json:"id"`
	Email         string    `json:"email"`
	FullName      string    `json:"full_name"`
	EmailVerified bool      `json:"email_verified"`
	MFAEnabled    bool      `json:"mfa_enabled"`
	CreatedAt     time.Time `json:"created_at"`
}

func (h accountHandlers) meJSON(ctx context.Context, u auth.User) (meJSON, error) {
	on, err := h.svc.MFAEnabled(ctx, u.ID)
	return meJSON{ID: u.ID, Email: u.Email, FullName: u.FullName, EmailVerified: u.EmailVerified, MFAEnabled: on, CreatedAt: u.CreatedAt}, err
}

func (h accountHandlers) writeMe(w http.ResponseWriter, r *http.Request, u auth.User, wrap bool) {
	me, err := h.meJSON(r.Context(), u)
	if err != nil {
		internalError(h.log, w, r, "request failed", err)
		return
	}
	if wrap {
		httpjson.Write(w, http.StatusOK, map[string]meJSON{"user": me})
		return
	}
	httpjson.Write(w, http.StatusOK, me)
}

// decodeOptional decodes a JSON body into dst when there is one; false after answering an
// error.
func decodeOptional(w http.ResponseWriter, r *http.Request, dst any) bool {
	if !hasBody(r) {
		return true
	}
	if err := httpjson.Decode(w, r, dst); err != nil {
		httpjson.WriteDecodeError(w, err)
		return false
	}
	return true
}

// decode decodes a required JSON body; false after answering an error.
func decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	if err := httpjson.Decode(w, r, dst); err != nil {
		httpjson.WriteDecodeError(w, err)
		return false
	}
	return true
}

// me: GET /api/auth/me.
func (h accountHandlers) me(w http.ResponseWriter, r *http.Request) {
	u, err := h.svc.UserByID(r.Context(), currentUser(r))
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	h.writeMe(w, r, u, false)
}

// updateMe: PATCH /api/auth/me {full_name}.
func (h accountHandlers) updateMe(w http.ResponseWriter, r *http.Request) {
	var in struct {
		FullName *string `json:"full_name"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.FullName == nil {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_request", "full_name is required")
		return
	}
	u, err := h.svc.UpdateProfile(r.Context(), auth.ClientFromRequest(r), currentUser(r), *in.FullName)
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	h.writeMe(w, r, u, false)
}

// sendVerification: POST /api/auth/verify-email/send → 202.
func (h accountHandlers) sendVerification(w http.ResponseWriter, r *http.Request) {
	var none struct{}
	if !decodeOptional(w, r, &none) {
		return
	}
	if err := h.svc.SendVerification(r.Context(), auth.ClientFromRequest(r), currentUser(r)); err != nil {
		h.accountError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusAccepted, map[string]string{"status": "sent"})
}

// verifyEmail: POST /api/auth/verify-email {token} → {user:{…,email_verified:true}}.
func (h accountHandlers) verifyEmail(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token string `json:"token"`
	}
	if !decode(w, r, &in) {
		return
	}
	u, err := h.svc.VerifyEmail(r.Context(), auth.ClientFromRequest(r), in.Token)
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	h.writeMe(w, r, u, true)
}

// forgot: POST /api/auth/password/forgot {email} → 202 whether or not the email has an
// account (and whether or not mail is configured).
func (h accountHandlers) forgot(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email string `json:"email"`
	}
	if !decode(w, r, &in) {
		return
	}
	if err := h.svc.ForgotPassword(r.Context(), auth.ClientFromRequest(r), in.Email); err != nil {
		h.accountError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusAccepted, map[string]string{"status": "if the address has an account, a reset link is on its way"})
}

// reset: POST /api/auth/password/reset {token,password} → 200 {user}; every session of
// the user is revoked (and this client's cookies cleared).
func (h accountHandlers) reset(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if !decode(w, r, &in) {
		return
	}
	u, err := h.svc.ResetPassword(r.Context(), auth.ClientFromRequest(r), in.Token, in.Password)
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	auth.ClearTokenCookies(w, h.sessions.cookies)
	h.writeMe(w, r, u, true)
}

// change: POST /api/auth/password/change {current_password,new_password} → 200 a new
// token pair (and cookies); every other session is revoked.
func (h accountHandlers) change(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if !decode(w, r, &in) {
		return
	}
	claims, _ := auth.UserFrom(r.Context())
	t, err := h.svc.ChangePasswordRenew(r.Context(), auth.ClientFromRequest(r), claims, in.Current, in.New)
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	auth.SetTokenCookies(w, t, h.sessions.cookies)
	httpjson.WriteSecret(w, http.StatusOK, map[string]string{"access_token": t.AccessToken, "refresh_token": t.RefreshToken})
}

// listSessions: GET /api/auth/sessions → {sessions:[{id,created_at,last_used_at,ip,user_agent,current}]}.
func (h accountHandlers) listSessions(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.UserFrom(r.Context())
	ss, err := h.svc.Sessions(r.Context(), claims.UserID, claims.SessionID)
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string][]auth.SessionInfo{"sessions": ss})
}

// revokeSession: POST /api/auth/sessions/revoke {id} → 204; 404 for another user's.
func (h accountHandlers) revokeSession(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID string `json:"id"`
	}
	if !decode(w, r, &in) {
		return
	}
	id, err := ecoid.Parse(in.ID)
	if err != nil || id.Type() != ecoid.Session {
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_id", "id must be a session ID (eco_ses_…)")
		return
	}
	if err := h.svc.RevokeUserSession(r.Context(), auth.ClientFromRequest(r), currentUser(r), id); err != nil {
		h.accountError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// maxActivityPage bounds GET /api/auth/activity's limit.
const maxActivityPage = 100

type eventJSON struct {
	At        time.Time   `json:"at"`
	Action    auth.Action `json:"action"`
	Success   bool        `json:"success"`
	IP        string      `json:"ip"`
	UserAgent string      `json:"user_agent"`
}

// activity: GET /api/auth/activity?limit=50 → {events:[{at,action,success,ip,user_agent}]}.
func (h accountHandlers) activity(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxActivityPage {
			httpjson.WriteError(w, http.StatusBadRequest, "invalid_limit", fmt.Sprintf("limit must be an integer in 1..%d", maxActivityPage))
			return
		}
		limit = n
	}
	acts, err := h.svc.AccountActivities(r.Context(), currentUser(r), limit)
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	out := make([]eventJSON, len(acts))
	for i, a := range acts {
		out[i] = eventJSON{At: a.At, Action: a.Action, Success: a.Success, IP: a.IP, UserAgent: a.UserAgent}
	}
	httpjson.Write(w, http.StatusOK, map[string][]eventJSON{"events": out})
}

// exportJSON is GET /api/auth/me/export: everything this server holds about the user
// (GDPR articles 15 and 20), composed from each service's public API. No secret, hash or
// token is in it.
type exportJSON struct {
	ExportedAt   time.Time           `json:"exported_at"`
	Account      meJSON              `json:"account"`
	Auth         auth.Export         `json:"auth"`
	APIKeys      []apikey.Key        `json:"api_keys"`
	UsageByMonth []monthUsageJSON    `json:"usage_by_month"`
	Subscription *exportSubscription `json:"subscription"`
}

type monthUsageJSON struct {
	Month string `json:"month"` // YYYY-MM
	Calls int64  `json:"calls"`
}

// exportSubscription is the billing row without internals of other users.
type exportSubscription struct {
	ID                   ecoid.ID       `json:"id"`
	Plan                 billing.PlanID `json:"plan"`
	Status               billing.Status `json:"status"`
	StripeCustomerID     string         `json:"stripe_customer_id,omitempty"`
	StripeSubscriptionID string         `json:"stripe_subscription_id,omitempty"`
	CancelAtPeriodEnd    bool           `json:"cancel_at_period_end"`
	CurrentPeriodStart   time.Time      `json:"current_period_start,omitzero"`
	CurrentPeriodEnd     time.Time      `json:"current_period_end,omitzero"`
	CreatedAt            time.Time      `json:"created_at"`
}

// maxExportMonths bounds the usage months an export lists (the newest).
const maxExportMonths = 120

// export: GET /api/auth/me/export.
func (h accountHandlers) export(w http.ResponseWriter, r *http.Request) {
	ctx, id := r.Context(), currentUser(r)
	ax, err := h.svc.Export(ctx, id)
	if err != nil {
		h.accountError(w, r, err)
		return
	}
	if claims, ok := auth.UserFrom(ctx); ok {
		ax.MarkCurrent(claims.SessionID) // as GET /api/auth/sessions does
	}
	me, err := h.meJSON(ctx, ax.User)
	if err != nil {
		internalError(h.log, w, r, "export failed", err)
		return
	}
	keys, err := h.keys.List(ctx, id)
	if err != nil {
		internalError(h.log, w, r, "export failed", err)
		return
	}
	out := exportJSON{ExportedAt: time.Now().UTC(), Account: me, Auth: ax, APIKeys: keys, UsageByMonth: []monthUsageJSON{}}
	now := time.Now().UTC()
	first := billing.PeriodStart(ax.User.CreatedAt)
	for p, n := billing.PeriodStart(now), 0; !p.Before(first) && n < maxExportMonths; p, n = billing.PeriodStart(p.AddDate(0, 0, -1)), n+1 {
		calls, err := h.usage.PeriodCalls(ctx, id, p)
		if err != nil {
			internalError(h.log, w, r, "export failed", err)
			return
		}
		out.UsageByMonth = append(out.UsageByMonth, monthUsageJSON{Month: p.Format("2006-01"), Calls: calls})
	}
	switch sub, err := h.billing.Current(ctx, id); {
	case err == nil:
		out.Subscription = &exportSubscription{
			ID: sub.ID, Plan: sub.Plan, Status: sub.Status, StripeCustomerID: sub.StripeCustomerID,
			StripeSubscriptionID: sub.StripeSubscriptionID, CancelAtPeriodEnd: sub.CancelAtPeriodEnd,
			CurrentPeriodStart: sub.CurrentPeriodStart, CurrentPeriodEnd: sub.CurrentPeriodEnd, CreatedAt: sub.CreatedAt,
		}
	case !errors.Is(err, billing.ErrNotFound):
		internalError(h.log, w, r, "export failed", err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="nexus-export.json"`)
	httpjson.Write(w, http.StatusOK, out)
}

// deleteMe: DELETE /api/auth/me {password} → 204, the account erased (see
// auth.Service.DeleteAccount and eraseAccountData).
func (h accountHandlers) deleteMe(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Password string `json:"password"`
	}
	if !decode(w, r, &in) {
		return
	}
	if err := h.svc.DeleteAccount(r.Context(), auth.ClientFromRequest(r), currentUser(r), in.Password); err != nil {
		if errors.Is(err, billing.ErrStripe) {
			httpjson.WriteError(w, http.StatusBadGateway, "stripe_unavailable", "the subscription could not be canceled; nothing was erased, retry later")
			return
		}
		h.accountError(w, r, err)
		return
	}
	// A key made while the account was being erased (its access token still worked) is
	// revoked now; keyHandlers.generate catches one made after this.
	if err := revokeActiveKeys(context.WithoutCancel(r.Context()), h.keys, currentUser(r)); err != nil {
		h.log.Error("revoke keys after erasure", "err", err)
	}
	auth.ClearTokenCookies(w, h.sessions.cookies)
	w.WriteHeader(http.StatusNoContent)
}

// accountError maps the account features' errors to the contract; the rest go to
// authHandlers.authError (weak_password, invalid_credentials, 429 …).
func (h accountHandlers) accountError(w http.ResponseWriter, r *http.Request, err error) {
	var te *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrInvalidOneTimeToken):
		httpjson.WriteError(w, http.StatusBadRequest, "invalid_token", "the link is invalid, used or expired")
	case errors.Is(err, auth.ErrAlreadyVerified):
		httpjson.WriteError(w, http.StatusConflict, "already_verified", "the email is already verified")
	case errors.Is(err, auth.ErrMailDisabled):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "mail_disabled", "this server sends no mail (set NEXUS_MAIL_DIR or NEXUS_SMTP_URL)")
	case errors.Is(err, auth.ErrThrottleUnavailable):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "throttle_unavailable", "retry later")
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfterSeconds(te.RetryAfter)))
		httpjson.WriteError(w, http.StatusTooManyRequests, "too_many_attempts", "too many attempts; retry later")
	case errors.Is(err, auth.ErrNotFound):
		if strings.HasSuffix(r.URL.Path, "/sessions/revoke") {
			httpjson.WriteError(w, http.StatusNotFound, "not_found", "no such session")
			return
		}
		httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "the account no longer exists")
	default:
		h.sessions.authError(w, r, err)
	}
}
