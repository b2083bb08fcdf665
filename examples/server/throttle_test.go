package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/internal/testenv"
)

// TestLoginParallelGuessesGet429 is issue 10.1 through HTTP: of 40 guesses for one email
// sent at once, at most 5 are checked (401), the rest answer 429.
func TestLoginParallelGuessesGet429(t *testing.T) {
	s := startServer(t, authEnv())
	s.register("ann@example.com")
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := s.do("POST", "/api/auth/login", `{"email":"ann@example.com","password":"Wrong-Horse-9"}`, jsonHeader(), nil)
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[401] > 5 || codes[401]+codes[429] != 40 {
		t.Fatalf("40 simultaneous guesses: %v, want at most 5 × 401 and the rest 429", codes)
	}
}

// TestInstancesThrottleLoginsTogether is issue 12.2 through HTTP: two servers on one
// Postgres schema (the counters in Postgres, or in Redis with -redis), login failures
// alternated between them, are throttled together.
func TestInstancesThrottleLoginsTogether(t *testing.T) {
	for _, c := range []struct{ name, throttle string }{{"postgres", "postgres"}, {"redis", "redis"}} {
		t.Run(c.name, func(t *testing.T) {
			dsn := pgDSN(t)
			args := []string{"-postgres", dsn}
			if c.throttle == "redis" {
				args = append(args, "-redis", testenv.Redis(t))
			}
			a, b := startServer(t, authEnv(), args...), startServer(t, authEnv(), args...)
			if !strings.Contains(a.logs.String(), `"login_throttle":"`+c.throttle+`"`) {
				t.Fatalf("start-up log does not name the %s throttle: %s", c.throttle, a.logs.String())
			}
			email := strings.ToLower(string(ecoid.New(ecoid.User))) + "@example.com"
			a.register(email)
			wrong := `{"email":"` + email + `","password":"Wrong-Horse-9"}`
			for i := range 5 {
				if resp := []*testServer{a, b}[i%2].do("POST", "/api/auth/login", wrong, jsonHeader(), nil); resp.StatusCode != 401 {
					t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
				}
			}
			right := `{"email":"` + email + `","password":"Correct-Horse-9"}`
			for name, s := range map[string]*testServer{"a": a, "b": b} {
				var e errorAnswer
				if resp := s.do("POST", "/api/auth/login", right, jsonHeader(), &e); resp.StatusCode != 429 || e.Error.Code != "too_many_attempts" {
					t.Fatalf("instance %s after 5 failures alternated between instances: %d %+v, want 429", name, resp.StatusCode, e)
				}
			}
		})
	}
}

// TestOwnerLogsInWhileAnAttackerIsBlocked is issue 10.2 through HTTP, behind a trusted
// proxy (NEXUS_TRUSTED_PROXIES): the attacker's address is blocked after 5 guesses, the
// owner at another address logs in. Without the variable, a forged X-Forwarded-For
// changes nothing: every guess counts against the one real peer.
func TestOwnerLogsInWhileAnAttackerIsBlocked(t *testing.T) {
	from := func(ip string) http.Header {
		h := jsonHeader()
		h.Set("X-Forwarded-For", ip)
		return h
	}
	wrong := `{"email":"ann@example.com","password":"Wrong-Horse-9"}`
	right := `{"email":"ann@example.com","password":"Correct-Horse-9"}`

	s := startServer(t, authEnv("NEXUS_TRUSTED_PROXIES", "127.0.0.1/32, ::1"))
	s.register("ann@example.com")
	codes := map[int]int{}
	for range 20 {
		codes[s.do("POST", "/api/auth/login", wrong, from("203.0.113.66"), nil).StatusCode]++
	}
	if codes[401] != 5 || codes[429] != 15 {
		t.Fatalf("attacker's 20 guesses: %v, want 5 × 401 and 15 × 429", codes)
	}
	if resp := s.do("POST", "/api/auth/login", right, from("198.51.100.7"), nil); resp.StatusCode != 200 {
		t.Fatalf("owner at another address: %d, want 200", resp.StatusCode)
	}

	direct := startServer(t, authEnv())
	direct.register("ann@example.com")
	for i := range 5 {
		direct.do("POST", "/api/auth/login", wrong, from(fmt.Sprintf("203.0.113.%d", i)), nil)
	}
	if resp := direct.do("POST", "/api/auth/login", right, from("198.51.100.7"), nil); resp.StatusCode != 429 {
		t.Fatalf("forged X-Forwarded-For without trusted proxies: %d, want 429", resp.StatusCode)
	}
}
