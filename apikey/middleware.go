package apikey

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-ecosystem/nexus/httpjson"
)

// Verifier checks a plain key; *Service is one.
type Verifier interface {
	Verify(ctx context.Context, plain string) (Key, error)
}

type contextKey struct{ name string }

var keyContextKey = &contextKey{"apikey"}

// NewContext returns a copy of ctx that carries k; Authenticate does this.
func NewContext(ctx context.Context, k Key) context.Context {
	return &keyContext{Context: ctx, key: k}
}

// keyContext is context.WithValue for the key, in one allocation where WithValue and a
// pointer to the key take two: Authenticate runs on every request.
type keyContext struct {
	context.Context
	key Key
}

// Value returns the key for keyContextKey and asks the parent for anything else.
func (c *keyContext) Value(k any) any {
	if k == keyContextKey {
		return &c.key
	}
	return c.Context.Value(k)
}

// String names the context, as the context package's own types do.
func (c *keyContext) String() string { return "apikey.NewContext(" + string(c.key.ID) + ")" }

// KeyFrom returns the key Authenticate put in ctx, and whether there is one.
func KeyFrom(ctx context.Context) (Key, bool) {
	k, ok := ctx.Value(keyContextKey).(*Key)
	if !ok {
		return Key{}, false
	}
	return *k, true
}

// ParseAuthorization extracts the key from an Authorization header value of the form
// "ApiKey <key>" or "Bearer <key>" (scheme case-insensitive, one or more spaces after
// it, surrounding spaces and tabs ignored). It returns false when the value has another
// scheme, no credentials, or credentials with whitespace or control characters inside.
// It does not check the key itself: Parse does.
func ParseAuthorization(h string) (string, bool) {
	var rest string
	if len(h) > len(apiKeyScheme) && h[:len(apiKeyScheme)] == apiKeyScheme {
		rest = trimBlanksRight(h[len(apiKeyScheme):]) // the usual form: no fold, no search
	} else {
		h = trimBlanks(h)
		scheme, r, ok := strings.Cut(h, " ")
		if !ok || !(strings.EqualFold(scheme, "ApiKey") || strings.EqualFold(scheme, "Bearer")) {
			return "", false
		}
		rest = r
	}
	for len(rest) > 0 && rest[0] == ' ' { // strings.TrimLeft: a call and a cutset per request
		rest = rest[1:]
	}
	if rest == "" || hasBlankOrControl(rest) {
		return "", false
	}
	return rest, true
}

// apiKeyScheme is the scheme of the usual Authorization header, with its space.
const apiKeyScheme = "ApiKey "

// hasBlankOrControl reports whether s holds a byte up to ' ' (whitespace and C0
// controls) or DEL, eight bytes at a time: the credentials of every API request pass
// through it. A word's bytes below 0x21 are found as (x - 0x21…) &^ x & 0x80…, DEL as a
// zero byte of x ^ 0x7f…; both tests are exact for the word as a whole.
func hasBlankOrControl(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(s) >= 8 {
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		d := x ^ (ones * 0x7f)
		if ((x-ones*0x21)&^x|(d-ones)&^d)&highs != 0 {
			return true
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// authorization is h.Get("Authorization") without canonicalizing the name on every call
// (400 instructions of each API request): the name is canonical, and so are the names of
// a parsed request's header, which Get looks up the same way.
func authorization(h http.Header) string {
	if v := h["Authorization"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// trimBlanks removes leading and trailing spaces and tabs: strings.Trim with a cutset
// builds its set of bytes on every call, and this runs on every API request.
func trimBlanks(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return trimBlanksRight(s)
}

// trimBlanksRight removes trailing spaces and tabs.
func trimBlanksRight(s string) string {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// AuthOptions configure Authenticate. The zero value gives the defaults.
type AuthOptions struct {
	// OnError answers a request whose key is missing or fails verification. err wraps
	// ErrMissing, ErrMalformed, ErrInvalidKey, ErrRevoked, ErrExpired, or is a store
	// error. The default, WriteAuthError, answers 401 (503 for a store error).
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives store errors (default: discard).
	Logger *slog.Logger
}

// ErrMissing is the error Authenticate gives OnError when the request has no usable
// Authorization header.
var ErrMissing = errors.New("apikey: missing API key")

// Authenticate returns middleware that requires a valid API key in the Authorization
// header ("ApiKey <key>" or "Bearer <key>"), verifies it with v, and passes the request
// on with the key in its context (KeyFrom). Otherwise it calls opts.OnError.
func Authenticate(v Verifier, opts AuthOptions) func(http.Handler) http.Handler {
	onError := opts.OnError
	if onError == nil {
		onError = WriteAuthError
	}
	log := opts.Logger
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			plain, ok := ParseAuthorization(authorization(r.Header))
			if !ok {
				onError(w, r, ErrMissing)
				return
			}
			k, err := v.Verify(r.Context(), plain)
			if err != nil {
				if log != nil && isSystemError(err) {
					log.LogAttrs(r.Context(), slog.LevelError, "apikey: verify failed", slog.String("err", err.Error()))
				}
				onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), k)))
		})
	}
}

func isSystemError(err error) bool {
	for _, known := range []error{ErrMissing, ErrMalformed, ErrInvalidKey, ErrRevoked, ErrExpired} {
		if errors.Is(err, known) {
			return false
		}
	}
	return true
}

// WriteAuthError is the default answer of Authenticate: 401 with the code
// missing_api_key, invalid_api_key, revoked_api_key or expired_api_key and a
// WWW-Authenticate challenge, or 503 key_store_unavailable when the store failed. The message
// never contains the key.
func WriteAuthError(w http.ResponseWriter, _ *http.Request, err error) {
	code, msg := "", ""
	switch {
	case errors.Is(err, ErrMissing):
		code, msg = "missing_api_key", "an API key is required: Authorization: ApiKey <key>"
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrInvalidKey):
		code, msg = "invalid_api_key", "the API key is not valid"
	case errors.Is(err, ErrRevoked):
		code, msg = "revoked_api_key", "the API key has been revoked"
	case errors.Is(err, ErrExpired):
		code, msg = "expired_api_key", "the API key has expired"
	default:
		httpjson.WriteError(w, http.StatusServiceUnavailable, "key_store_unavailable", "the key store does not answer; try again")
		return
	}
	w.Header().Set("WWW-Authenticate", `ApiKey realm="api"`)
	httpjson.WriteError(w, http.StatusUnauthorized, code, msg)
}

// keyOr401 returns the key Authenticate put in the request's context, or answers 401
// missing_api_key (Authenticate is missing from the chain) and returns nil.
func keyOr401(w http.ResponseWriter, r *http.Request) *Key {
	k, ok := r.Context().Value(keyContextKey).(*Key)
	if !ok {
		WriteAuthError(w, r, ErrMissing)
		return nil
	}
	return k
}

// RequireScopes returns middleware that passes on only requests whose key (put in the
// context by Authenticate) carries every one of scopes. It answers 403
// insufficient_scope otherwise, and 401 missing_api_key when there is no key in the
// context (Authenticate is missing from the chain).
func RequireScopes(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := keyOr401(w, r)
			if k == nil {
				return
			}
			for _, sc := range scopes {
				if !k.HasScope(sc) {
					httpjson.WriteError(w, http.StatusForbidden, "insufficient_scope", "the API key lacks the scope "+strconv.Quote(sc))
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RateLimitOptions configure RateLimit. The zero value gives the defaults.
type RateLimitOptions struct {
	// Policy names the limit in the limiter and in the RateLimit-Policy header
	// (default "default"). Routes with their own policy keep their own counts.
	Policy string
	// Limit returns the limit per minute for a key (default: the key's
	// RateLimitPerMinute, or DefaultRateLimitPerMinute when it is not positive).
	Limit func(Key) int
	// FailOpen lets requests through, without rate-limit headers, when the limiter
	// fails (default false: fail closed, OnError answers).
	FailOpen bool
	// OnLimited answers a refused request. The X-RateLimit-*, RateLimit-Policy,
	// RateLimit and Retry-After headers are set before it is called. The default,
	// WriteLimited, answers 429 rate_limited. A caller that must undo work done before
	// the limiter (such as refunding a monthly-quota reservation made by earlier
	// middleware) does it here and then calls WriteLimited to keep the standard answer.
	OnLimited func(w http.ResponseWriter, r *http.Request, d Decision)
	// OnError answers a request when the limiter fails and FailOpen is false. The
	// default, WriteLimiterError, answers 503 rate_limiter_unavailable.
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives limiter errors (default: discard).
	Logger *slog.Logger
}

// RateLimit returns middleware that applies each key's own per-minute limit through l,
// with the key's ID as the subject. Every answer carries X-RateLimit-Limit,
// X-RateLimit-Remaining, X-RateLimit-Reset (Unix time in seconds when the full limit is
// back), and the IETF draft headers RateLimit-Policy (`"default";q=100;w=60`) and
// RateLimit (`"default";r=42;t=17`); a refused request also carries Retry-After (whole
// seconds, at least 1) and goes to opts.OnLimited. A request without a key in its
// context (Authenticate missing) is answered 401.
func RateLimit(l Limiter, opts RateLimitOptions) func(http.Handler) http.Handler {
	policy := opts.Policy
	if policy == "" {
		policy = DefaultPolicy
	}
	limitFor := opts.Limit
	if limitFor == nil {
		limitFor = func(k Key) int { return k.RateLimitPerMinute }
	}
	onLimited := opts.OnLimited
	if onLimited == nil {
		onLimited = WriteLimited
	}
	onError := opts.OnError
	if onError == nil {
		onError = WriteLimiterError
	}
	quotedPolicy := strconv.Quote(policy)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := keyOr401(w, r)
			if k == nil {
				return
			}
			n := limitFor(*k)
			if n <= 0 {
				n = DefaultRateLimitPerMinute
			}
			limit := Limit{Name: policy, Count: n, Period: time.Minute}
			d, err := l.Allow(r.Context(), string(k.ID), limit)
			if err != nil {
				if opts.Logger != nil {
					opts.Logger.LogAttrs(r.Context(), slog.LevelError, "apikey: rate limiter failed",
						slog.String("key_id", string(k.ID)), slog.String("err", err.Error()))
				}
				if opts.FailOpen {
					next.ServeHTTP(w, r)
					return
				}
				onError(w, r, err)
				return
			}
			setHeaders(w.Header(), quotedPolicy, limit, d)
			if !d.Allowed {
				onLimited(w, r, d)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// SetHeaders writes the rate-limit headers RateLimit sets for limit and d: X-RateLimit-*,
// RateLimit-Policy and RateLimit, and Retry-After when d refused. Middleware that makes
// its own rate-limit decisions (such as package guard) uses it to answer the same way.
func SetHeaders(h http.Header, limit Limit, d Decision) {
	quoted := quotedDefaultPolicy
	if p := limit.Policy(); p != DefaultPolicy {
		quoted = strconv.Quote(p)
	}
	setHeaders(h, quoted, limit, d)
}

// quotedDefaultPolicy is strconv.Quote(DefaultPolicy), computed once.
const quotedDefaultPolicy = `"` + DefaultPolicy + `"`

// setHeaders writes the rate-limit headers of d. All values are cut from one string
// and the header slices from one array: two allocations instead of a dozen.
func setHeaders(h http.Header, quotedPolicy string, limit Limit, d Decision) {
	var arr [256]byte
	b := arr[:0]
	var ends [6]int
	b = strconv.AppendInt(b, int64(d.Limit), 10)
	ends[0] = len(b)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	ends[1] = len(b)
	b = strconv.AppendInt(b, ceilUnix(d.ResetAt), 10)
	ends[2] = len(b)
	// The policy's quota is the limit, and the remainder appears twice: their digits are
	// copied rather than formatted again (integer formatting was a tenth of the chain).
	b = append(b, quotedPolicy...)
	b = append(b, ";q="...)
	if limit.Count == d.Limit {
		b = append(b, b[:ends[0]]...)
	} else {
		b = strconv.AppendInt(b, int64(limit.Count), 10)
	}
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, ceilSeconds(limit.Period), 10)
	ends[3] = len(b)
	b = append(b, quotedPolicy...)
	b = append(b, ";r="...)
	b = append(b, b[ends[0]:ends[1]]...)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(d.ResetAfter), 10)
	ends[4] = len(b)
	n := 5
	if !d.Allowed {
		b = strconv.AppendInt(b, max(1, ceilSeconds(d.RetryAfter)), 10)
		ends[5] = len(b)
		n = 6
	}
	all := string(b)
	vals := make([]string, n)
	prev := 0
	for i := 0; i < n; i++ {
		vals[i] = all[prev:ends[i]]
		prev = ends[i]
	}
	h["X-Ratelimit-Limit"] = vals[0:1:1]
	h["X-Ratelimit-Remaining"] = vals[1:2:2]
	h["X-Ratelimit-Reset"] = vals[2:3:3]
	h["Ratelimit-Policy"] = vals[3:4:4]
	h["Ratelimit"] = vals[4:5:5]
	if !d.Allowed {
		h["Retry-After"] = vals[5:6:6]
	}
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// WriteLimited is the default answer to a refused request: 429 rate_limited. The
// headers are already set by RateLimit.
func WriteLimited(w http.ResponseWriter, _ *http.Request, d Decision) {
	httpjson.WriteError(w, http.StatusTooManyRequests, "rate_limited",
		"rate limit of "+strconv.Itoa(d.Limit)+" requests per minute exceeded; retry after "+
			strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10)+" s")
}

// WriteLimiterError is the default answer when the limiter fails: 503
// rate_limiter_unavailable with Retry-After: 1.
func WriteLimiterError(w http.ResponseWriter, _ *http.Request, _ error) {
	w.Header().Set("Retry-After", "1")
	httpjson.WriteError(w, http.StatusServiceUnavailable, "rate_limiter_unavailable", "the rate limiter does not answer; try again")
}
