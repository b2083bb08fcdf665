package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

var _ billing.Store = (*BillingStore)(nil)

// BillingStore is the PostgreSQL billing.Store over eco_subscriptions, eco_stripe_events
// and eco_overage_charges. Safe for concurrent use.
type BillingStore struct {
	db *sqlx.DB
}

// NewBillingStore returns a BillingStore over db (migrated with Migrate).
func NewBillingStore(db *sql.DB) *BillingStore { return &BillingStore{db: wrap(db)} }

const billingSubColumns = `id, user_id, email, plan, status, stripe_customer_id, stripe_subscription_id,
	cancel_at_period_end, current_period_start, current_period_end, custom_quota_calls,
	custom_hard_cap, custom_price_cents, custom_overage_millicents, state_at, created_at, updated_at`

type billingSubRow struct {
	ID                      ecoid.ID       `db:"id"`
	UserID                  ecoid.ID       `db:"user_id"`
	Email                   string         `db:"email"`
	Plan                    string         `db:"plan"`
	Status                  string         `db:"status"`
	StripeCustomerID        sql.NullString `db:"stripe_customer_id"`
	StripeSubscriptionID    sql.NullString `db:"stripe_subscription_id"`
	CancelAtPeriodEnd       bool           `db:"cancel_at_period_end"`
	CurrentPeriodStart      sql.NullTime   `db:"current_period_start"`
	CurrentPeriodEnd        sql.NullTime   `db:"current_period_end"`
	CustomQuotaCalls        int64          `db:"custom_quota_calls"`
	CustomHardCap           bool           `db:"custom_hard_cap"`
	CustomPriceCents        int64          `db:"custom_price_cents"`
	CustomOverageMilliCents int64          `db:"custom_overage_millicents"`
	StateAt                 sql.NullTime   `db:"state_at"`
	CreatedAt               time.Time      `db:"created_at"`
	UpdatedAt               time.Time      `db:"updated_at"`
}

func (r billingSubRow) subscription() billing.Subscription {
	return billing.Subscription{
		ID: r.ID, UserID: r.UserID, Email: r.Email, Plan: billing.PlanID(r.Plan), Status: billing.Status(r.Status),
		StripeCustomerID: r.StripeCustomerID.String, StripeSubscriptionID: r.StripeSubscriptionID.String,
		CancelAtPeriodEnd:  r.CancelAtPeriodEnd,
		CurrentPeriodStart: billingTimeOf(r.CurrentPeriodStart), CurrentPeriodEnd: billingTimeOf(r.CurrentPeriodEnd),
		Custom: billing.Terms{QuotaCalls: r.CustomQuotaCalls, HardCap: r.CustomHardCap,
			PriceCents: r.CustomPriceCents, OverageMilliCentsPerCall: r.CustomOverageMilliCents},
		StateAt: billingTimeOf(r.StateAt), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func billingTimeOf(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

func billingNullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t.UTC(), Valid: !t.IsZero()}
}

func billingNullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// billingSubArgs are the column values of sub in billingSubColumns order.
func billingSubArgs(sub billing.Subscription) []any {
	return []any{sub.ID, sub.UserID, sub.Email, string(sub.Plan), string(sub.Status),
		billingNullString(sub.StripeCustomerID), billingNullString(sub.StripeSubscriptionID), sub.CancelAtPeriodEnd,
		billingNullTime(sub.CurrentPeriodStart), billingNullTime(sub.CurrentPeriodEnd), sub.Custom.QuotaCalls,
		sub.Custom.HardCap, sub.Custom.PriceCents, sub.Custom.OverageMilliCentsPerCall,
		billingNullTime(sub.StateAt), sub.CreatedAt.UTC(), sub.UpdatedAt.UTC()}
}

// billingErr turns "not found" and unique violations into billing's sentinels.
func billingErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return billing.ErrNotFound
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && (pqErr.Code == "23505" || pqErr.Code == "23514") {
		return fmt.Errorf("%w: %s", billing.ErrConflict, pqErr.Message)
	}
	return err
}

// billingQueries implements billing.SubscriptionTx over a pool or a transaction.
type billingQueries struct{ q sqlx.ExtContext }

func (s billingQueries) get(ctx context.Context, where string, arg any) (billing.Subscription, error) {
	var r billingSubRow
	if err := sqlx.GetContext(ctx, s.q, &r, `SELECT `+billingSubColumns+` FROM eco_subscriptions WHERE `+where, arg); err != nil {
		return billing.Subscription{}, billingErr(err)
	}
	return r.subscription(), nil
}

func (s billingQueries) Subscription(ctx context.Context, user ecoid.ID) (billing.Subscription, error) {
	if !user.Valid() {
		return billing.Subscription{}, billing.ErrNotFound
	}
	return s.get(ctx, `user_id = $1`, user)
}

func (s billingQueries) SubscriptionByCustomer(ctx context.Context, customerID string) (billing.Subscription, error) {
	if customerID == "" {
		return billing.Subscription{}, billing.ErrNotFound
	}
	return s.get(ctx, `stripe_customer_id = $1`, customerID)
}

func (s billingQueries) EnsureSubscription(ctx context.Context, sub billing.Subscription) (billing.Subscription, error) {
	if !sub.ID.Valid() || !sub.UserID.Valid() {
		return billing.Subscription{}, billing.ErrConflict
	}
	// The row and its first terms record in one statement: both or neither.
	rec := billing.TermsRecordOf(sub)
	args := append(billingSubArgs(sub), billingTermsArgs(rec)[2:]...)
	_, err := s.q.ExecContext(ctx, `WITH ins AS (INSERT INTO eco_subscriptions (`+billingSubColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)
		ON CONFLICT (user_id) DO NOTHING RETURNING id, user_id)
		INSERT INTO eco_subscription_terms (subscription_id, user_id, `+billingTermsColumns+`)
		SELECT id, user_id, $18::timestamptz, $19::text, $20::bigint, $21::boolean, $22::bigint, $23::bigint, $24::text, $25::text FROM ins`, args...)
	if err != nil {
		return billing.Subscription{}, billingErr(err)
	}
	return s.Subscription(ctx, sub.UserID)
}

// update is UpdateSubscription inside a transaction the caller holds.
func (s billingQueries) update(ctx context.Context, user ecoid.ID, fn func(*billing.Subscription) error) (billing.Subscription, error) {
	if !user.Valid() {
		return billing.Subscription{}, billing.ErrNotFound
	}
	old, err := s.get(ctx, `user_id = $1 FOR UPDATE`, user)
	if err != nil {
		return billing.Subscription{}, err
	}
	sub := old
	if err := fn(&sub); err != nil {
		return billing.Subscription{}, err
	}
	sub.ID, sub.UserID = old.ID, old.UserID
	args := billingSubArgs(sub)
	_, err = s.q.ExecContext(ctx, `UPDATE eco_subscriptions SET email=$3, plan=$4, status=$5,
		stripe_customer_id=$6, stripe_subscription_id=$7, cancel_at_period_end=$8,
		current_period_start=$9, current_period_end=$10, custom_quota_calls=$11,
		custom_hard_cap=$12, custom_price_cents=$13, custom_overage_millicents=$14,
		state_at=$15, created_at=$16, updated_at=$17 WHERE id=$1 AND user_id=$2`, args...)
	if err != nil {
		return billing.Subscription{}, billingErr(err)
	}
	stored, err := s.Subscription(ctx, user)
	if err != nil {
		return billing.Subscription{}, err
	}
	if err := s.recordTerms(ctx, old, stored); err != nil {
		return billing.Subscription{}, err
	}
	return stored, nil
}

// billingTermsColumns are the columns of eco_subscription_terms after its keys.
const billingTermsColumns = `effective_at, plan, quota_calls, hard_cap, price_cents, overage_millicents,
	stripe_customer_id, stripe_subscription_id`

// billingTermsArgs are subscription_id, user_id and billingTermsColumns of r.
func billingTermsArgs(r billing.TermsRecord) []any {
	return []any{r.SubscriptionID, r.UserID, r.At.UTC(), string(r.Plan), r.Terms.QuotaCalls, r.Terms.HardCap,
		r.Terms.PriceCents, r.Terms.OverageMilliCentsPerCall,
		billingNullString(r.StripeCustomerID), billingNullString(r.StripeSubscriptionID)}
}

// recordTerms appends the terms record of a write that changed it, in the caller's
// transaction and under the row lock its update took (so records of one subscription are
// written in commit order). A row that has no record yet (written before the history
// existed) first gets its previous state, effective at its creation.
func (s billingQueries) recordTerms(ctx context.Context, old, sub billing.Subscription) error {
	prev, rec := billing.TermsRecordOf(old), billing.TermsRecordOf(sub)
	if prev.SameAs(rec) {
		return nil
	}
	var last sql.NullTime
	if err := sqlx.GetContext(ctx, s.q, &last, `SELECT max(effective_at) FROM eco_subscription_terms
		WHERE subscription_id = $1`, sub.ID); err != nil {
		return err
	}
	insert := `INSERT INTO eco_subscription_terms (subscription_id, user_id, ` + billingTermsColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	if !last.Valid {
		prev.At = old.CreatedAt
		if _, err := s.q.ExecContext(ctx, insert, billingTermsArgs(prev)...); err != nil {
			return err
		}
		last = sql.NullTime{Time: prev.At, Valid: true}
	}
	if rec.At.Before(last.Time) {
		rec.At = last.Time
	}
	_, err := s.q.ExecContext(ctx, insert, billingTermsArgs(rec)...)
	return err
}

func (s billingQueries) UpdateSubscription(ctx context.Context, user ecoid.ID, fn func(*billing.Subscription) error) (billing.Subscription, error) {
	return s.update(ctx, user, fn)
}

// Subscription implements billing.SubscriptionTx.
func (s *BillingStore) Subscription(ctx context.Context, user ecoid.ID) (billing.Subscription, error) {
	return billingQueries{s.db}.Subscription(ctx, user)
}

// SubscriptionByCustomer implements billing.SubscriptionTx.
func (s *BillingStore) SubscriptionByCustomer(ctx context.Context, customerID string) (billing.Subscription, error) {
	return billingQueries{s.db}.SubscriptionByCustomer(ctx, customerID)
}

// EnsureSubscription implements billing.SubscriptionTx.
func (s *BillingStore) EnsureSubscription(ctx context.Context, sub billing.Subscription) (billing.Subscription, error) {
	return billingQueries{s.db}.EnsureSubscription(ctx, sub)
}

// UpdateSubscription implements billing.SubscriptionTx: SELECT … FOR UPDATE, fn, UPDATE in
// one transaction.
func (s *BillingStore) UpdateSubscription(ctx context.Context, user ecoid.ID, fn func(*billing.Subscription) error) (billing.Subscription, error) {
	var out billing.Subscription
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		out, err = billingQueries{tx}.update(ctx, user, fn)
		return err
	})
	return out, err
}

func (s *BillingStore) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ProcessEvent implements billing.Store: the event row and fn's writes commit in one
// transaction. A concurrent call for the same ID waits on the event row's unique index
// and then sees it (or, if the first rolled back, takes over).
func (s *BillingStore) ProcessEvent(ctx context.Context, e billing.Event, fn func(context.Context, billing.SubscriptionTx) error) (bool, error) {
	done := false
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO eco_stripe_events (id, type, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO NOTHING`, e.ID, e.Type, e.Created.UTC())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := fn(ctx, billingQueries{tx}); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return done, nil
}

var billingOrderColumns = map[string]string{
	"created_at": "created_at", "email": `email COLLATE "C"`, "plan": `plan COLLATE "C"`,
}

// ListSubscriptions implements billing.Store. Text sorts use byte order (COLLATE "C").
func (s *BillingStore) ListSubscriptions(ctx context.Context, q billing.ListQuery) ([]billing.Subscription, int64, error) {
	key, desc := strings.CutPrefix(q.Sort, "-")
	col, ok := billingOrderColumns[key]
	if !ok {
		col = "created_at"
	}
	dir := "ASC"
	if desc {
		dir = "DESC"
	}
	where, args := "", []any{}
	if q.Plan != "" {
		where, args = "WHERE plan = $1", append(args, string(q.Plan))
	}
	var total int64
	if err := sqlx.GetContext(ctx, s.db, &total, `SELECT count(*) FROM eco_subscriptions `+where, args...); err != nil {
		return nil, 0, err
	}
	if q.Page < 1 || q.Limit < 1 || int64(q.Page-1) >= (total+int64(q.Limit)-1)/int64(q.Limit) {
		return []billing.Subscription{}, total, nil // past the end; also keeps OFFSET from overflowing
	}
	n := len(args)
	args = append(args, q.Limit, int64(q.Page-1)*int64(q.Limit))
	var rows []billingSubRow
	err := sqlx.SelectContext(ctx, s.db, &rows, fmt.Sprintf(`SELECT %s FROM eco_subscriptions %s
		ORDER BY %s %s, id COLLATE "C" %s LIMIT $%d OFFSET $%d`, billingSubColumns, where, col, dir, dir, n+1, n+2), args...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]billing.Subscription, len(rows))
	for i, r := range rows {
		out[i] = r.subscription()
	}
	return out, total, nil
}

// Subscriptions implements billing.Store.
func (s *BillingStore) Subscriptions(ctx context.Context, plans ...billing.PlanID) ([]billing.Subscription, error) {
	names := make([]string, len(plans))
	for i, p := range plans {
		names[i] = string(p)
	}
	var rows []billingSubRow
	if err := sqlx.SelectContext(ctx, s.db, &rows, `SELECT `+billingSubColumns+` FROM eco_subscriptions
		WHERE plan = ANY($1) ORDER BY id COLLATE "C"`, pq.Array(names)); err != nil {
		return nil, err
	}
	out := make([]billing.Subscription, len(rows))
	for i, r := range rows {
		out[i] = r.subscription()
	}
	return out, nil
}

// PlanBreakdown implements billing.Store.
func (s *BillingStore) PlanBreakdown(ctx context.Context) ([]billing.PlanGroup, error) {
	var rows []struct {
		Plan   string `db:"plan"`
		Status string `db:"status"`
		Users  int64  `db:"users"`
		Price  int64  `db:"price"`
	}
	if err := sqlx.SelectContext(ctx, s.db, &rows, `SELECT plan, status, count(*) AS users,
		COALESCE(sum(custom_price_cents), 0)::bigint AS price
		FROM eco_subscriptions GROUP BY plan, status ORDER BY plan COLLATE "C", status COLLATE "C"`); err != nil {
		return nil, err
	}
	out := make([]billing.PlanGroup, len(rows))
	for i, r := range rows {
		out[i] = billing.PlanGroup{Plan: billing.PlanID(r.Plan), Status: billing.Status(r.Status), Users: r.Users, CustomPriceCents: r.Price}
	}
	return out, nil
}

const billingChargeColumns = `subscription_id, user_id, period, calls, calls_over, amount_cents, invoice_item_id, claimed_at, charged_at`

type billingChargeRow struct {
	SubscriptionID ecoid.ID       `db:"subscription_id"`
	UserID         ecoid.ID       `db:"user_id"`
	Period         time.Time      `db:"period"`
	Calls          int64          `db:"calls"`
	CallsOver      int64          `db:"calls_over"`
	AmountCents    int64          `db:"amount_cents"`
	InvoiceItemID  sql.NullString `db:"invoice_item_id"`
	ClaimedAt      time.Time      `db:"claimed_at"`
	ChargedAt      sql.NullTime   `db:"charged_at"`
	Claimed        bool           `db:"claimed"`
}

func (r billingChargeRow) charge() billing.OverageCharge {
	p := r.Period
	return billing.OverageCharge{
		SubscriptionID: r.SubscriptionID, UserID: r.UserID,
		Period: time.Date(p.Year(), p.Month(), p.Day(), 0, 0, 0, 0, time.UTC),
		Calls:  r.Calls, CallsOver: r.CallsOver, AmountCents: r.AmountCents,
		InvoiceItemID: r.InvoiceItemID.String, ClaimedAt: r.ClaimedAt.UTC(), ChargedAt: billingTimeOf(r.ChargedAt),
	}
}

// billingPeriodDate is the DATE literal of a billing period.
func billingPeriodDate(t time.Time) string { return billing.PeriodStart(t).Format(time.DateOnly) }

// ClaimOverage implements billing.Store in one statement: the insert, or the take-over
// of a stale pending row, and the answer come from one INSERT … ON CONFLICT … RETURNING.
func (s *BillingStore) ClaimOverage(ctx context.Context, c billing.OverageCharge, staleBefore time.Time) (billing.OverageCharge, bool, error) {
	var r billingChargeRow
	err := sqlx.GetContext(ctx, s.db, &r, `INSERT INTO eco_overage_charges
		(subscription_id, user_id, period, calls, calls_over, amount_cents, claimed_at)
		VALUES ($1, $2, $3::date, $4, $5, $6, $7)
		ON CONFLICT (subscription_id, period) DO UPDATE SET claimed_at = EXCLUDED.claimed_at
		WHERE eco_overage_charges.invoice_item_id IS NULL AND eco_overage_charges.claimed_at < $8
		RETURNING `+billingChargeColumns+`, true AS claimed`,
		c.SubscriptionID, c.UserID, billingPeriodDate(c.Period), c.Calls, c.CallsOver, c.AmountCents, c.ClaimedAt.UTC(), staleBefore.UTC())
	if errors.Is(err, sql.ErrNoRows) {
		existing, err := s.OverageCharge(ctx, c.SubscriptionID, c.Period)
		return existing, false, err
	}
	if err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "23503" { // no such subscription
			return billing.OverageCharge{}, false, fmt.Errorf("%w: %s", billing.ErrNotFound, pqErr.Message)
		}
		return billing.OverageCharge{}, false, billingErr(err)
	}
	return r.charge(), true, nil
}

// CompleteOverage implements billing.Store.
func (s *BillingStore) CompleteOverage(ctx context.Context, sub ecoid.ID, period time.Time, invoiceItemID string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE eco_overage_charges SET invoice_item_id = $3, charged_at = $4
		WHERE subscription_id = $1 AND period = $2::date AND invoice_item_id IS NULL`,
		sub, billingPeriodDate(period), invoiceItemID, at.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 1 {
		return true, nil
	}
	if _, err := s.OverageCharge(ctx, sub, period); err != nil {
		return false, err
	}
	return false, nil
}

// OverageCharge implements billing.Store.
func (s *BillingStore) OverageCharge(ctx context.Context, sub ecoid.ID, period time.Time) (billing.OverageCharge, error) {
	if !sub.Valid() {
		return billing.OverageCharge{}, billing.ErrNotFound
	}
	var r billingChargeRow
	if err := sqlx.GetContext(ctx, s.db, &r, `SELECT `+billingChargeColumns+`, false AS claimed FROM eco_overage_charges
		WHERE subscription_id = $1 AND period = $2::date`, sub, billingPeriodDate(period)); err != nil {
		return billing.OverageCharge{}, billingErr(err)
	}
	return r.charge(), nil
}

// OverageRevenue implements billing.Store.
func (s *BillingStore) OverageRevenue(ctx context.Context, from, to time.Time) (int64, error) {
	var sum int64
	err := sqlx.GetContext(ctx, s.db, &sum, `SELECT COALESCE(sum(amount_cents), 0)::bigint FROM eco_overage_charges
		WHERE invoice_item_id IS NOT NULL AND period >= $1::date AND period < $2::date`,
		billingDateBound(from), billingDateBound(to))
	return sum, err
}

// billingDateBound formats t as a DATE bound for OverageRevenue; the zero time is the earliest.
func billingDateBound(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01"
	}
	t = t.UTC()
	if t.Year() > 9999 {
		return "9999-12-31"
	}
	// A bound inside a day must still exclude/include whole periods: periods are first
	// days, so the date of t compares the same way as t for them except when t is inside
	// a first day; round up then, since period < t means period's instant < t.
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if d.Before(t) {
		d = d.AddDate(0, 0, 1)
	}
	return d.Format(time.DateOnly)
}

type billingTermsRow struct {
	SubscriptionID       ecoid.ID       `db:"subscription_id"`
	UserID               ecoid.ID       `db:"user_id"`
	EffectiveAt          time.Time      `db:"effective_at"`
	Plan                 string         `db:"plan"`
	QuotaCalls           int64          `db:"quota_calls"`
	HardCap              bool           `db:"hard_cap"`
	PriceCents           int64          `db:"price_cents"`
	OverageMilliCents    int64          `db:"overage_millicents"`
	StripeCustomerID     sql.NullString `db:"stripe_customer_id"`
	StripeSubscriptionID sql.NullString `db:"stripe_subscription_id"`
}

// TermsInForce implements billing.Store. Records in force during [from, to) are those
// before to that no later record at or before from supersedes; rows without any record
// are read from eco_subscriptions as their current state since created_at.
func (s *BillingStore) TermsInForce(ctx context.Context, from, to time.Time) ([]billing.TermsRecord, error) {
	var rows []billingTermsRow
	err := sqlx.SelectContext(ctx, s.db, &rows, `WITH inforce AS (
			SELECT t.* FROM eco_subscription_terms t
			WHERE t.effective_at < $2 AND NOT EXISTS (
				SELECT 1 FROM eco_subscription_terms n
				WHERE n.subscription_id = t.subscription_id AND n.effective_at <= $1
				  AND (n.effective_at > t.effective_at OR (n.effective_at = t.effective_at AND n.seq > t.seq)))
		)
		SELECT subscription_id, user_id, `+billingTermsColumns+` FROM inforce
		WHERE subscription_id IN (SELECT subscription_id FROM inforce WHERE NOT hard_cap AND overage_millicents > 0)
		ORDER BY subscription_id COLLATE "C", effective_at, seq`, from.UTC(), to.UTC())
	if err != nil {
		return nil, err
	}
	out := make([]billing.TermsRecord, 0, len(rows))
	for _, r := range rows {
		out = append(out, billing.TermsRecord{
			SubscriptionID: r.SubscriptionID, UserID: r.UserID, At: r.EffectiveAt.UTC(), Plan: billing.PlanID(r.Plan),
			Terms: billing.Terms{QuotaCalls: r.QuotaCalls, HardCap: r.HardCap, PriceCents: r.PriceCents,
				OverageMilliCentsPerCall: r.OverageMilliCents},
			StripeCustomerID: r.StripeCustomerID.String, StripeSubscriptionID: r.StripeSubscriptionID.String,
		})
	}
	// Rows from before the history: their current state, if it bills overage.
	var legacy []billingSubRow
	if err := sqlx.SelectContext(ctx, s.db, &legacy, `SELECT `+billingSubColumns+` FROM eco_subscriptions s
		WHERE plan <> 'free' AND created_at < $1
		  AND NOT EXISTS (SELECT 1 FROM eco_subscription_terms t WHERE t.subscription_id = s.id)`, to.UTC()); err != nil {
		return nil, err
	}
	if len(legacy) == 0 {
		return out, nil
	}
	for _, r := range legacy {
		sub := r.subscription()
		rec := billing.TermsRecordOf(sub)
		rec.At = sub.CreatedAt
		if rec.BillsOverage() {
			out = append(out, rec)
		}
	}
	slices.SortStableFunc(out, func(a, b billing.TermsRecord) int {
		return strings.Compare(string(a.SubscriptionID), string(b.SubscriptionID))
	})
	return out, nil
}
