package apikey_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

type errBody struct {
	Error struct{ Code, Message string } `json:"error"`
}

func serve(t *testing.T, h http.Handler, auth string) (*httptest.ResponseRecorder, errBody) {
	t.Helper()
	req := httptest.NewRequest("GET", "/api/v1/ping", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body errBody
	if rec.Code >= 400 && rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("error answer is not JSON: %q", rec.Body.String())
		}
	}
	return rec, body
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	k, ok := apikey.KeyFrom(r.Context())
	if !ok {
		http.Error(w, "no key in context", 500)
		return
	}
	w.Write([]byte(k.ID))
})

func chain(h http.Handler, mws ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

func TestAuthenticate(t *testing.T) {
	s, store, clock := newService(t, apikey.Config{})
	k, plain := create(t, s, apikey.CreateParams{ExpiresAt: t0.Add(time.Hour)})
	_, revoked := create(t, s, apikey.CreateParams{})
	kr, _ := apikey.Parse(revoked)
	if err := s.Revoke(context.Background(), alice, kr); err != nil {
		t.Fatal(err)
	}
	h := apikey.Authenticate(s, apikey.AuthOptions{})(okHandler)

	for _, auth := range []string{"ApiKey " + plain, "Bearer " + plain, "apikey  " + plain, " BEARER " + plain + " "} {
		if rec, _ := serve(t, h, auth); rec.Code != 200 || rec.Body.String() != string(k.ID) {
			t.Fatalf("%q: %d %s", auth, rec.Code, rec.Body)
		}
	}
	for auth, code := range map[string]string{
		"":                                "missing_api_key",
		"Basic " + plain:                  "missing_api_key",
		"ApiKey":                          "missing_api_key",
		"ApiKey " + plain + " x":          "missing_api_key",
		"ApiKey nonsense":                 "invalid_api_key",
		"ApiKey " + otherSecret(t, plain): "invalid_api_key",
		"ApiKey " + revoked:               "revoked_api_key",
	} {
		rec, body := serve(t, h, auth)
		if rec.Code != 401 || body.Error.Code != code || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%q: %d %+v", auth, rec.Code, body)
		}
		if strings.Contains(rec.Body.String(), plain[40:]) {
			t.Errorf("%q: the answer shows the secret", auth)
		}
	}
	clock.Advance(time.Hour)
	if rec, body := serve(t, h, "ApiKey "+plain); rec.Code != 401 || body.Error.Code != "expired_api_key" {
		t.Fatalf("expired: %d %+v", rec.Code, body)
	}

	// A store failure is 503, logged without the key.
	var logs bytes.Buffer
	h = apikey.Authenticate(s, apikey.AuthOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})(okHandler)
	_, fresh := create(t, s, apikey.CreateParams{})
	store.fail.Store(true)
	if rec, body := serve(t, h, "ApiKey "+fresh); rec.Code != 503 || body.Error.Code != "key_store_unavailable" {
		t.Fatalf("store down: %d %+v", rec.Code, body)
	}
	if !strings.Contains(logs.String(), "verify failed") || strings.Contains(logs.String(), fresh[31:]) {
		t.Fatalf("log: %s", logs.String())
	}

	// OnError replaces the answer.
	h = apikey.Authenticate(s, apikey.AuthOptions{OnError: func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(418)
	}})(okHandler)
	if rec, _ := serve(t, h, ""); rec.Code != 418 {
		t.Fatalf("OnError: %d", rec.Code)
	}
}

func TestRequireScopes(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	_, plain := create(t, s, apikey.CreateParams{Scopes: []string{"read"}})
	auth := apikey.Authenticate(s, apikey.AuthOptions{})
	if rec, _ := serve(t, chain(okHandler, auth, apikey.RequireScopes("read")), "ApiKey "+plain); rec.Code != 200 {
		t.Fatalf("read: %d", rec.Code)
	}
	rec, body := serve(t, chain(okHandler, auth, apikey.RequireScopes("read", "write")), "ApiKey "+plain)
	if rec.Code != 403 || body.Error.Code != "insufficient_scope" || !strings.Contains(body.Error.Message, "write") {
		t.Fatalf("write: %d %+v", rec.Code, body)
	}
	if rec, body := serve(t, apikey.RequireScopes("read")(okHandler), "ApiKey "+plain); rec.Code != 401 || body.Error.Code != "missing_api_key" {
		t.Fatalf("without Authenticate: %d %+v", rec.Code, body)
	}
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	s, _, clock := newService(t, apikey.Config{})
	_, plain := create(t, s, apikey.CreateParams{RateLimitPerMinute: 3})
	lim := memory.NewLimiter(memory.WithClock(clock.Now))
	h := chain(okHandler, apikey.Authenticate(s, apikey.AuthOptions{}), apikey.RateLimit(lim, apikey.RateLimitOptions{}))
	for i := 0; i < 3; i++ {
		rec, _ := serve(t, h, "ApiKey "+plain)
		hd := rec.Header()
		reset := t0.Add(time.Duration(i+1) * 20 * time.Second).Unix()
		if rec.Code != 200 || hd.Get("X-RateLimit-Limit") != "3" || hd.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) ||
			hd.Get("X-RateLimit-Reset") != strconv.FormatInt(reset, 10) || hd.Get("Retry-After") != "" {
			t.Fatalf("request %d: %d %v", i+1, rec.Code, hd)
		}
		if got, want := hd.Get("RateLimit-Policy"), `"default";q=3;w=60`; got != want {
			t.Fatalf("RateLimit-Policy %q, want %q", got, want)
		}
		if got, want := hd.Get("RateLimit"), `"default";r=`+strconv.Itoa(2-i)+`;t=`+strconv.Itoa((i+1)*20); got != want {
			t.Fatalf("RateLimit %q, want %q", got, want)
		}
	}
	rec, body := serve(t, h, "ApiKey "+plain)
	if rec.Code != 429 || body.Error.Code != "rate_limited" || rec.Header().Get("Retry-After") != "20" ||
		rec.Header().Get("X-RateLimit-Remaining") != "0" || rec.Header().Get("X-RateLimit-Limit") != "3" {
		t.Fatalf("fourth: %d %+v %v", rec.Code, body, rec.Header())
	}
	clock.Advance(19*time.Second + 500*time.Millisecond)
	if rec, _ := serve(t, h, "ApiKey "+plain); rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After rounds up to whole seconds: %v", rec.Header())
	}
	clock.Advance(500 * time.Millisecond)
	if rec, _ := serve(t, h, "ApiKey "+plain); rec.Code != 200 {
		t.Fatalf("after the wait: %d", rec.Code)
	}
}

func TestRateLimitOptions(t *testing.T) {
	s, _, clock := newService(t, apikey.Config{})
	_, plain := create(t, s, apikey.CreateParams{RateLimitPerMinute: 1})
	lim := memory.NewLimiter(memory.WithClock(clock.Now))
	auth := apikey.Authenticate(s, apikey.AuthOptions{})

	// OnLimited sees the decision, with the headers already set.
	var limited apikey.Decision
	refunds := 0
	h := chain(okHandler, auth, apikey.RateLimit(lim, apikey.RateLimitOptions{
		Policy: "burst",
		Limit:  func(k apikey.Key) int { return 2 * k.RateLimitPerMinute },
		OnLimited: func(w http.ResponseWriter, r *http.Request, d apikey.Decision) {
			limited = d
			refunds++
			apikey.WriteLimited(w, r, d)
		},
	}))
	serve(t, h, "ApiKey "+plain)
	serve(t, h, "ApiKey "+plain)
	rec, _ := serve(t, h, "ApiKey "+plain)
	if rec.Code != 429 || refunds != 1 || limited.Allowed || limited.Limit != 2 || rec.Header().Get("Retry-After") != "30" {
		t.Fatalf("OnLimited: %d refunds=%d %+v %v", rec.Code, refunds, limited, rec.Header())
	}
	if got := rec.Header().Get("RateLimit-Policy"); got != `"burst";q=2;w=60` {
		t.Fatalf("policy header %q", got)
	}
	// Another policy keeps its own count.
	h2 := chain(okHandler, auth, apikey.RateLimit(lim, apikey.RateLimitOptions{}))
	if rec, _ := serve(t, h2, "ApiKey "+plain); rec.Code != 200 {
		t.Fatalf("default policy: %d", rec.Code)
	}
	// A key without a positive limit gets the default.
	h3 := chain(okHandler, auth, apikey.RateLimit(lim, apikey.RateLimitOptions{Policy: "zero", Limit: func(apikey.Key) int { return 0 }}))
	if rec, _ := serve(t, h3, "ApiKey "+plain); rec.Header().Get("X-RateLimit-Limit") != "60" {
		t.Fatalf("default limit: %v", rec.Header())
	}
	// Without Authenticate there is no key: 401.
	if rec, body := serve(t, apikey.RateLimit(lim, apikey.RateLimitOptions{})(okHandler), ""); rec.Code != 401 || body.Error.Code != "missing_api_key" {
		t.Fatalf("without a key: %d %+v", rec.Code, body)
	}
}

type brokenLimiter struct{}

func (brokenLimiter) Allow(context.Context, string, apikey.Limit) (apikey.Decision, error) {
	return apikey.Decision{}, errors.New("limiter is down")
}

func TestRateLimitFailsClosedOrOpen(t *testing.T) {
	s, _, _ := newService(t, apikey.Config{})
	_, plain := create(t, s, apikey.CreateParams{})
	auth := apikey.Authenticate(s, apikey.AuthOptions{})
	var logs bytes.Buffer
	closed := chain(okHandler, auth, apikey.RateLimit(brokenLimiter{}, apikey.RateLimitOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	rec, body := serve(t, closed, "ApiKey "+plain)
	if rec.Code != 503 || body.Error.Code != "rate_limiter_unavailable" || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("fail closed: %d %+v", rec.Code, body)
	}
	if !strings.Contains(logs.String(), "limiter is down") {
		t.Fatalf("not logged: %s", logs.String())
	}
	open := chain(okHandler, auth, apikey.RateLimit(brokenLimiter{}, apikey.RateLimitOptions{FailOpen: true}))
	if rec, _ := serve(t, open, "ApiKey "+plain); rec.Code != 200 || rec.Header().Get("X-RateLimit-Limit") != "" {
		t.Fatalf("fail open: %d %v", rec.Code, rec.Header())
	}
	custom := chain(okHandler, auth, apikey.RateLimit(brokenLimiter{}, apikey.RateLimitOptions{
		OnError: func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(502) },
	}))
	if rec, _ := serve(t, custom, "ApiKey "+plain); rec.Code != 502 {
		t.Fatalf("OnError: %d", rec.Code)
	}
}

func TestParseAuthorization(t *testing.T) {
	for in, want := range map[string]string{
		"ApiKey abc":      "abc",
		"Bearer abc":      "abc",
		"apikey   abc":    "abc",
		"\tBEARER abc \t": "abc",
	} {
		if got, ok := apikey.ParseAuthorization(in); !ok || got != want {
			t.Errorf("%q: %q %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "ApiKey", "ApiKey ", "Basic abc", "ApiKeyabc", "ApiKey a b", "ApiKey a\tb", "Bearer a\x00", "Bearer a\x7f", "Token abc"} {
		if got, ok := apikey.ParseAuthorization(in); ok {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("ApiKey eco_api_0Ub2cYzA9fKq3XwT7mNpLs.abc")
	f.Fuzz(func(t *testing.T, h string) {
		key, ok := apikey.ParseAuthorization(h)
		if !ok {
			if key != "" {
				t.Fatalf("%q: rejected but returned %q", h, key)
			}
			return
		}
		if key == "" || !strings.Contains(h, key) {
			t.Fatalf("%q: accepted %q", h, key)
		}
		for i := 0; i < len(key); i++ {
			if key[i] <= ' ' || key[i] == 0x7f {
				t.Fatalf("%q: credentials %q hold whitespace or a control byte", h, key)
			}
		}
		// Round trip: the canonical header gives the same credentials.
		if again, ok := apikey.ParseAuthorization("ApiKey " + key); !ok || again != key {
			t.Fatalf("%q: round trip %q %v", h, again, ok)
		}
	})
}

// referenceParseAuthorization is ParseAuthorization as first written, byte by byte: the
// fast paths must answer exactly as it does.
func referenceParseAuthorization(h string) (string, bool) {
	h = strings.Trim(h, " \t")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !(strings.EqualFold(scheme, "ApiKey") || strings.EqualFold(scheme, "Bearer")) {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" {
		return "", false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c == 0x7f {
			return "", false
		}
	}
	return rest, true
}

// FuzzParseAuthorizationMatchesReference holds the word-at-a-time scan and the "ApiKey "
// fast path to the plain definition, on any input, and the scan itself to a byte loop
// (a blank or control byte in every position of a word, and bytes just around the
// limits: 0x20, 0x21, 0x7e, 0x7f, 0x80, 0xff).
func FuzzParseAuthorizationMatchesReference(f *testing.F) {
	for _, s := range []string{"ApiKey eco_api_0Ub2cYzA9fKq3XwT7mNpLs.abc", "ApiKey \tabc", "ApiKey   abc \t",
		"ApiKey abcdefg\x7fhij", "Bearer abcdefgh\x00", "apikey abc", "ApiKey ", "ApiKey\tabc", "ApiKey abc\x80\xffdefgh!~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got, ok := apikey.ParseAuthorization(h)
		want, wantOK := referenceParseAuthorization(h)
		if got != want || ok != wantOK {
			t.Fatalf("%q: got %q %v, want %q %v", h, got, ok, want, wantOK)
		}
		for _, s := range []string{h, "ApiKey " + h} {
			byteWise := false
			for i := 0; i < len(s); i++ {
				if s[i] <= ' ' || s[i] == 0x7f {
					byteWise = true
				}
			}
			if apikey.HasBlankOrControl(s) != byteWise {
				t.Fatalf("hasBlankOrControl(%q) = %v", s, !byteWise)
			}
		}
	})
}

func TestHasBlankOrControlEveryPosition(t *testing.T) {
	for _, c := range []byte{0, '\t', ' ', 0x21, 0x7e, 0x7f, 0x80, 0xff} {
		for n := 1; n <= 17; n++ {
			for at := 0; at < n; at++ {
				b := []byte(strings.Repeat("a", n))
				b[at] = c
				want := c <= ' ' || c == 0x7f
				if got := apikey.HasBlankOrControl(string(b)); got != want {
					t.Fatalf("byte %#x at %d of %d: %v, want %v", c, at, n, got, want)
				}
			}
		}
	}
}

func TestKeyFromEmptyContext(t *testing.T) {
	if _, ok := apikey.KeyFrom(context.Background()); ok {
		t.Fatal("a key in an empty context")
	}
	k := apikey.Key{Name: "x"}
	if got, ok := apikey.KeyFrom(apikey.NewContext(context.Background(), k)); !ok || got.Name != "x" {
		t.Fatal("NewContext/KeyFrom")
	}
}
