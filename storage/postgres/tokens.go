package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
)

var _ apikey.TokenStore = (*Limiter)(nil)

// takeTokensSQL runs apikey.GCRA.Take in one statement on the row Allow uses: the first
// CTE locks it and reads its newest state; the UPDATE stores the new one. $3 is the
// caller's time (NULL: the server's), $4 the interval, $5 the burst, $6 the hold (already
// capped at burst − interval) and $7 the tokens wanted, all in microseconds but $7.
const takeTokensSQL = `WITH p AS (
	SELECT COALESCE($3::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS now
), old AS (
	SELECT tat_us, seen_us FROM eco_rate_limits WHERE policy = $1 AND subject = $2 FOR UPDATE
), s AS (
	SELECT GREATEST(old.seen_us, p.now) AS now, old.tat_us AS tat FROM old, p
), f AS (
	SELECT now, tat, GREATEST(tat, now) + GREATEST(0, $6::bigint - (GREATEST(tat, now) - now)) AS first FROM s
), k AS (
	SELECT now, tat, first, CASE WHEN $5::bigint - (first - now) < $4::bigint THEN 0
		ELSE LEAST($7::bigint, ($5::bigint - (first - now)) / $4::bigint) END AS n FROM f
)
UPDATE eco_rate_limits r SET seen_us = k.now, allowed = k.n > 0,
	tat_us = CASE WHEN k.n > 0 THEN k.first + k.n * $4::bigint ELSE k.tat END
FROM k WHERE r.policy = $1 AND r.subject = $2
RETURNING k.n, r.tat_us, k.now, k.first`

// TakeTokens implements apikey.TokenStore in one statement (two more, once per subject,
// to create its row), sharing the state of Allow.
func (l *Limiter) TakeTokens(ctx context.Context, key string, limit apikey.Limit, n int, hold time.Duration) (apikey.TokenGrant, error) {
	g, err := limit.GCRA()
	if err != nil {
		return apikey.TokenGrant{}, err
	}
	var now sql.NullInt64
	if l.now != nil {
		now = sql.NullInt64{Int64: l.now().UnixMicro(), Valid: true}
	}
	h := max(0, min(hold.Microseconds(), g.Burst-g.Interval))
	for attempt := 0; ; attempt++ {
		var gr apikey.TokenGrant
		var granted int64
		err := l.db.QueryRowContext(ctx, takeTokensSQL, limit.Policy(), key, now, g.Interval, g.Burst, h, max(n, 0)).
			Scan(&granted, &gr.TAT, &gr.Now, &gr.ValidUntil)
		if err == nil {
			gr.Granted = int(granted)
			if gr.Granted == 0 {
				gr.ValidUntil = 0
			}
			return gr, nil
		}
		if !errors.Is(err, sql.ErrNoRows) || attempt > 2 { // Sweep may delete a fresh row
			return apikey.TokenGrant{}, fmt.Errorf("postgres: take tokens: %w", err)
		}
		if _, err := l.db.ExecContext(ctx, `INSERT INTO eco_rate_limits (policy, subject, tat_us, seen_us, allowed)
			VALUES ($1, $2, 0, 0, false) ON CONFLICT DO NOTHING`, limit.Policy(), key); err != nil {
			return apikey.TokenGrant{}, fmt.Errorf("postgres: take tokens: %w", err)
		}
	}
}
