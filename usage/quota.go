package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// LimitFunc returns user's monthly call limit and whether it is a hard cap (calls over it
// are refused) or soft (calls over it are served and count as overage). A negative limit
// means unlimited. The billing package supplies one from the user's plan.
type LimitFunc func(ctx context.Context, user ecoid.ID) (limit int64, hardCap bool, err error)

// QuotaConfig tunes a Quota. The zero value of every field means its default.
type QuotaConfig struct {
	// Now gives the time that picks the period. Default: time.Now.
	Now func() time.Time
	// OnExceeded answers a request over a hard cap. Default: 429 with the JSON error code
	// "quota_exceeded" and Retry-After set to the seconds left in the period.
	OnExceeded func(w http.ResponseWriter, r *http.Request, res Reservation)
	// OnError answers a request whose quota could not be checked (the limit or the
	// counter failed). Default: 503 with the JSON error code "quota_unavailable".
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives counter failures. Default: discard.
	Logger *slog.Logger
}

// Quota enforces a monthly call limit per user with a Counter: a calendar month in UTC is
// one period. It is safe for concurrent use.
type Quota struct {
	counter Counter
	limit   LimitFunc
	cfg     QuotaConfig
}

// NewQuota returns a Quota that counts calls in counter and asks limit for each user's
// limit.
func NewQuota(counter Counter, limit LimitFunc, cfg QuotaConfig) *Quota {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnError == nil {
		cfg.OnError = func(w http.ResponseWriter, _ *http.Request, _ error) {
			httpjson.WriteError(w, http.StatusServiceUnavailable, "quota_unavailable", "the quota cannot be checked now; try again")
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if _, ok := counter.(*ReleaseRetrier); !ok { // a failed release is retried, never leaked
		counter = RetryReleases(counter, ReleaseRetryConfig{Logger: cfg.Logger})
	}
	q := &Quota{counter: counter, limit: limit, cfg: cfg}
	if q.cfg.OnExceeded == nil {
		q.cfg.OnExceeded = q.exceeded
	}
	return q
}

// Reservation is the outcome of one Reserve.
type Reservation struct {
	User    ecoid.ID
	Period  time.Time // PeriodStart of the period counted
	Allowed bool      // whether the call was counted and may be served
	Count   int64     // the period's count after this call (the unchanged count when refused)
	Limit   int64     // the user's limit; negative: unlimited
	HardCap bool
}

// Remaining returns the calls left before the limit, never below zero; -1 when
// unlimited.
func (r Reservation) Remaining() int64 {
	if r.Limit < 0 {
		return -1
	}
	return max(0, r.Limit-r.Count)
}

// Reserve counts one call for user in the current period, atomically: under a hard cap
// only while the count is below the limit (so exactly limit calls a period are allowed,
// however many arrive at once), otherwise always. Release gives the call back.
func (q *Quota) Reserve(ctx context.Context, user ecoid.ID) (Reservation, error) {
	limit, hard, err := q.limit(ctx, user)
	if err != nil {
		return Reservation{}, fmt.Errorf("usage: quota limit of %s: %w", user, err)
	}
	period := PeriodStart(q.cfg.Now())
	capped := hard && limit >= 0
	count, added, err := q.counter.AddCall(ctx, user, period, limit, capped)
	if err != nil {
		return Reservation{}, fmt.Errorf("usage: quota counter: %w", err)
	}
	return Reservation{User: user, Period: period, Allowed: added, Count: count, Limit: limit, HardCap: hard}, nil
}

// Release gives back a call that Reserve allowed, for a request refused later (by a rate
// limit, say), so that a refused request costs no quota. A refused reservation is a
// no-op. When the counter fails, the release is retried in the background until it
// answers (see ReleaseRetrier), so it is never leaked.
func (q *Quota) Release(ctx context.Context, res Reservation) error {
	if !res.Allowed {
		return nil
	}
	if err := q.counter.RemoveCall(ctx, res.User, res.Period); err != nil {
		return fmt.Errorf("usage: quota release: %w", err)
	}
	return nil
}

// Current describes a user's current period.
type Current struct {
	PeriodStart time.Time // first instant of the month, UTC
	PeriodEnd   time.Time // first instant of the next month (exclusive)
	Calls       int64     // calls counted (served) this period
	Quota       int64     // the limit; negative: unlimited
	HardCap     bool
	Remaining   int64 // calls left, never below zero; -1 when unlimited
}

// Current returns user's count and limit for the current period.
func (q *Quota) Current(ctx context.Context, user ecoid.ID) (Current, error) {
	limit, hard, err := q.limit(ctx, user)
	if err != nil {
		return Current{}, fmt.Errorf("usage: quota limit of %s: %w", user, err)
	}
	now := q.cfg.Now()
	period := PeriodStart(now)
	calls, err := q.counter.PeriodCalls(ctx, user, period)
	if err != nil {
		return Current{}, fmt.Errorf("usage: quota counter: %w", err)
	}
	res := Reservation{Count: calls, Limit: limit}
	return Current{PeriodStart: period, PeriodEnd: PeriodEnd(now), Calls: calls, Quota: limit,
		HardCap: hard, Remaining: res.Remaining()}, nil
}

// Middleware returns net/http middleware that reserves one call for the user that user
// finds in the request, answers OnExceeded over a hard cap and OnError when the quota
// cannot be checked, and otherwise serves the request with the reservation in its
// context (see ReleaseReservation). A request for which user reports false passes
// through uncounted.
func (q *Quota) Middleware(user func(r *http.Request) (ecoid.ID, bool)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok := user(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			res, err := q.Reserve(r.Context(), u)
			if err != nil {
				q.cfg.Logger.Error("usage: quota check failed", "user", u, "err", err)
				q.cfg.OnError(w, r, err)
				return
			}
			if !res.Allowed {
				q.cfg.OnExceeded(w, r, res)
				return
			}
			next.ServeHTTP(w, r.WithContext(&heldReservation{Context: r.Context(), q: q, res: res}))
		})
	}
}

func (q *Quota) exceeded(w http.ResponseWriter, _ *http.Request, res Reservation) {
	h := w.Header()
	h.Set("X-Quota-Limit", strconv.FormatInt(res.Limit, 10))
	h.Set("X-Quota-Remaining", "0")
	retry := int64(PeriodEnd(res.Period).Sub(q.cfg.Now()).Seconds())
	h.Set("Retry-After", strconv.FormatInt(max(1, retry), 10))
	httpjson.WriteError(w, http.StatusTooManyRequests, "quota_exceeded",
		"the monthly quota of "+strconv.FormatInt(res.Limit, 10)+" calls is used up")
}

type contextKey struct{ name string }

var reservationKey = &contextKey{"usage.reservation"}

// heldReservation is the request's context with its reservation in it: one allocation
// instead of context.WithValue's and a holder's. Value delegates every other key, so the
// context package still finds the parent's cancellation.
type heldReservation struct {
	context.Context
	q        *Quota
	res      Reservation
	released atomic.Bool
}

func (h *heldReservation) Value(key any) any {
	if key == reservationKey {
		return h
	}
	return h.Context.Value(key)
}

// ErrNoReservation is returned by ReleaseReservation for a context without one.
var ErrNoReservation = errors.New("usage: no quota reservation in the context")

// ReservationFrom returns the reservation Quota.Middleware made for the request whose
// context is ctx.
func ReservationFrom(ctx context.Context) (Reservation, bool) {
	h, ok := ctx.Value(reservationKey).(*heldReservation)
	if !ok {
		return Reservation{}, false
	}
	return h.res, true
}

// ReleaseReservation gives back the call Quota.Middleware reserved for the request whose
// context is ctx, once however often it is called: a later middleware that refuses the
// request (a rate limit's OnLimited hook, say) calls it so the request costs no quota.
// It still releases when ctx is cancelled. It returns ErrNoReservation when ctx holds
// none.
func ReleaseReservation(ctx context.Context) error {
	h, ok := ctx.Value(reservationKey).(*heldReservation)
	if !ok {
		return ErrNoReservation
	}
	if !h.released.CompareAndSwap(false, true) {
		return nil
	}
	return h.q.Release(context.WithoutCancel(ctx), h.res)
}
