// Command e2e measures the API-key route of examples/server end to end, the way users
// measure it: wrk drives GET /api/v1/ping over many connections against a bare net/http
// handler that answers the same JSON, the same handler with the server's five rate-limit
// headers added ("headers": what those headers alone cost), the server on in-memory
// stores, and the server with PostgreSQL as its only store, on the same machine, with one
// hot key of a Pro user and with 1,000 keys (10 each of 100 Pro users). Every target is started and prepared once
// and keeps running; then each round measures them one right after the other, starting
// one target further along each time. It prints a Markdown table: each target's rate and
// the CPU time its process spent per answered request (medians of the rounds), and each
// ratio as the median of the ratios within a round, whose runs follow each other within
// seconds: on a shared host the machine's speed drifts between rounds far more than
// within one.
//
//	go run ./e2e -postgres "$NEXUS_TEST_POSTGRES" -stripe http://127.0.0.1:12111 -rounds 3
//
// Users are made Pro through stripe-mock and a signed checkout.session.completed webhook,
// exactly as in production. With -postgres each PostgreSQL target gets a schema of its
// own, dropped at the end. Keys have a rate limit of 1,000,000 a minute, whose burst is a
// whole minute's worth, and a target's runs are far apart, so it is never rate limited. Answers that are not
// 2xx still count as answers in wrk's rate; their share is printed beside it.
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq"
)

const webhookSecret = "whsec_e2e_bench"

// countStatuses makes the wrk script count answers by status and error code.
var countStatuses bool

func main() {
	bare := flag.Bool("bare", false, "serve the bare handler on -addr (used by the benchmark itself)")
	withHeaders := flag.Bool("headers", false, "with -bare: add the five rate-limit headers of the server's answer")
	addr := flag.String("addr", "127.0.0.1:0", "listen address of -bare")
	pg := flag.String("postgres", os.Getenv("NEXUS_TEST_POSTGRES"), "PostgreSQL DSN (key=value); empty: skip Postgres mode")
	stripeURL := flag.String("stripe", envOr("NEXUS_TEST_STRIPE", "http://127.0.0.1:12111"), "stripe-mock base URL")
	conns := flag.Int("c", 200, "connections")
	threads := flag.Int("t", 2, "wrk threads")
	dur := flag.Duration("d", 8*time.Second, "duration of each measured run (after a 1 s warm-up)")
	modes := flag.String("modes", "bare,headers,memory,postgres", "what to measure (headers: the bare handler with the server's rate-limit headers)")
	rounds := flag.Int("rounds", 1, "rounds over every target; the table shows each target's median")
	flag.BoolVar(&countStatuses, "statuses", false, "have wrk count the answers by status and error code (slower: a Lua call per answer)")
	flag.Parse()
	if *bare {
		serveBare(*addr, *withHeaders)
		return
	}
	if err := run(*pg, *stripeURL, *conns, *threads, *dur, strings.Split(*modes, ","), max(1, *rounds)); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// serveBare is the baseline: the same JSON as /api/v1/ping, nothing else. With headers it
// also sends the five rate-limit headers the server's answer carries (DESIGN.md asks for
// them on every answer), with values of the same length, set as cheaply as net/http
// allows: the floor of any server that sends them, which tells how much of the gap to the
// bare handler is those headers rather than the work behind them.
func serveBare(addr string, headers bool) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, `{"msg":"listening","addr":%q}`+"\n", ln.Addr().String())
	body := []byte(`{"ok":true,"key_id":"eco_api_0000000000000000000000"}` + "\n")
	rate := [][]string{{`"default";r=999999;t=1`}, {`"default";q=1000000;w=60`}, {"1000000"}, {"999999"}, {"1796334461"}}
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		if headers { // canonical names, shared values: no canonicalization, no allocation
			h["Ratelimit"], h["Ratelimit-Policy"] = rate[0], rate[1]
			h["X-Ratelimit-Limit"], h["X-Ratelimit-Remaining"], h["X-Ratelimit-Reset"] = rate[2], rate[3], rate[4]
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}))
}

type result struct {
	mode, keys string
	rps        float64
	non2xx     int64
	total      int64
	cpuPerReq  float64 // the target process's CPU time (user and system) per answered request, µs
}

func run(pg, stripeURL string, conns, threads int, dur time.Duration, modes []string, rounds int) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found (apt-get install wrk)")
	}
	dir, err := os.MkdirTemp("", "nexus-e2e")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	server := filepath.Join(dir, "server")
	// Built in the SDK's own module (bench/'s parent), with the SDK's go.sum: this module
	// does not import the server, so it does not carry the server's dependencies.
	build := exec.Command("go", "build", "-o", server, "./examples/server")
	build.Dir = ".."
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the server: %w", err)
	}
	price, err := stripePrice(stripeURL)
	if err != nil {
		return err
	}
	targets, err := startTargets(modes, server, dir, pg, stripeURL, price, conns, threads)
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("nothing to measure: -modes names only postgres, and -postgres is empty")
	}
	var order []string
	runs := map[string][]result{}
	for _, t := range targets {
		order = append(order, t.id())
	}
	for round := range rounds {
		// Each round runs every target once, one right after the other, starting one
		// target further along each time, so that no target always follows the same one
		// (the database's background work after a PostgreSQL run, say).
		for i := range targets {
			t := targets[(round+i)%len(targets)]
			r, err := t.measure(conns, threads, dur)
			if err != nil {
				return fmt.Errorf("%s: %w", t.id(), err)
			}
			runs[t.id()] = append(runs[t.id()], *r)
			fmt.Fprintf(os.Stderr, "round %d: %s: %.0f req/s, %.1f µs CPU per request (%d of %d not 2xx)\n",
				round+1, t.id(), r.rps, r.cpuPerReq, r.non2xx, r.total)
		}
	}
	report(order, runs, conns, dur)
	return nil
}

// A target is one process under test, started and prepared once, then measured in every
// round: keeping them all running lets a round's runs follow each other within seconds.
type target struct {
	mode   string
	nkeys  int
	cmd    *exec.Cmd
	base   string // its URL
	script string // the wrk script that sends its keys
	stop   func()
	drop   func() // drops its PostgreSQL schema; nil in memory
}

// id names a target: its mode and number of keys ("memory 1000 keys").
func (t *target) id() string { return t.mode + " " + keysLabel(t.nkeys) }

// keysLabel is "1 key" or "1000 keys".
func keysLabel(n int) string {
	if n == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", n)
}

// close stops the process and drops its schema.
func (t *target) close() {
	if t.stop != nil {
		t.stop()
	}
	if t.drop != nil {
		t.drop()
	}
}

// startTargets starts and prepares every target of modes, with one key and with 1,000
// (the bare handler once), and warms each up. The targets started so far are returned
// with an error too, for the caller to close.
func startTargets(modes []string, server, dir, pg, stripeURL, price string, conns, threads int) ([]*target, error) {
	var targets []*target
	for _, mode := range modes {
		for _, nkeys := range []int{1, 1000} {
			if (mode == "bare" || mode == "headers") && nkeys != 1 || mode == "postgres" && pg == "" {
				continue // keys mean nothing to the bare handler
			}
			t, err := startTarget(mode, nkeys, server, filepath.Join(dir, fmt.Sprintf("keys-%d.lua", len(targets))), pg, stripeURL, price)
			if t != nil {
				targets = append(targets, t)
			}
			if err != nil {
				return targets, fmt.Errorf("%s with %d keys: %w", mode, nkeys, err)
			}
			// Caches, leases and connections, before any run is measured.
			if _, err := wrk(t.base, t.script, conns, threads, 2*time.Second); err != nil {
				return targets, err
			}
		}
	}
	return targets, nil
}

// startTarget starts one target and prepares its keys.
func startTarget(mode string, nkeys int, server, script, pg, stripeURL, price string) (*target, error) {
	t := &target{mode: mode, nkeys: nkeys, script: script}
	env := append(os.Environ(), "NEXUS_BCRYPT_COST=4", "NEXUS_JWT_SECRET=e2e-secret-e2e-secret-e2e-secret!!",
		"STRIPE_SECRET_KEY=sk_test_e2e", "STRIPE_API_BASE="+stripeURL, "STRIPE_WEBHOOK_SECRET="+webhookSecret,
		"STRIPE_PRICE_PRO="+price, "DATABASE_URL=")
	switch mode {
	case "bare", "headers":
		self, _ := os.Executable()
		t.cmd = exec.Command(self, "-bare", "-headers="+strconv.FormatBool(mode == "headers"))
	case "memory":
		t.cmd = exec.Command(server, "-addr", "127.0.0.1:0")
	case "postgres":
		dsn, drop, err := freshSchema(pg)
		if err != nil {
			return nil, err
		}
		t.drop = drop
		t.cmd = exec.Command(server, "-addr", "127.0.0.1:0", "-postgres", dsn)
		env = append(env, "NEXUS_EVENTS_CHANNEL=nexus_e2e_"+randHex(6))
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	t.cmd.Env = env
	base, stop, err := start(t.cmd)
	if err != nil {
		return t, err
	}
	t.base, t.stop = base, stop
	keys := []string{"none"}
	if mode != "bare" && mode != "headers" {
		if keys, err = prepare(base, nkeys); err != nil {
			return t, err
		}
	}
	return t, writeScript(script, keys)
}

// measure runs wrk against t: a warm-up of a second (the other targets ran meanwhile, and
// took the CPU caches), then the measured run, with the CPU time t's process spent in it.
func (t *target) measure(conns, threads int, dur time.Duration) (*result, error) {
	if _, err := wrk(t.base, t.script, conns, threads, time.Second); err != nil {
		return nil, err
	}
	cpu0, err := processCPU(t.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	r, err := wrk(t.base, t.script, conns, threads, dur)
	if err != nil {
		return nil, err
	}
	cpu1, err := processCPU(t.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	if r.total > 0 {
		r.cpuPerReq = (cpu1 - cpu0).Seconds() * 1e6 / float64(r.total)
	}
	r.mode, r.keys = t.mode, keysLabel(t.nkeys)
	return r, nil
}

// start runs cmd and waits for its "listening" log line.
func start(cmd *exec.Cmd) (string, func(), error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for !sent && sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addrCh <- line.Addr
				sent = true
			}
		}
		// The rest (one request-log line per request) is drained unread: parsing it here
		// would take CPU from the server under test on the same machine.
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addrCh:
		return "http://" + a, stop, nil
	case <-time.After(60 * time.Second):
		stop()
		return "", nil, errors.New("the target did not start within 60 s")
	}
}

// prepare registers 1 or 100 users, makes them Pro, and creates nkeys keys among them.
func prepare(base string, nkeys int) ([]string, error) {
	users := 1
	if nkeys > 1 {
		users = 100
	}
	var keys []string
	for u := range users {
		email := fmt.Sprintf("e2e-%d-%s@example.com", u, randHex(4))
		var reg struct {
			User        struct{ ID string } `json:"user"`
			AccessToken string              `json:"access_token"`
		}
		if err := post(base+"/api/auth/register", "", `{"email":"`+email+`","password":"Correct-Horse-9","full_name":"E2E"}`, 201, &reg); err != nil {
			return nil, err
		}
		if err := makePro(base, reg.User.ID); err != nil {
			return nil, err
		}
		for range nkeys / users {
			var k struct{ Key string }
			if err := post(base+"/api/keys/generate", reg.AccessToken, `{"name":"e2e","scopes":["read"],"rate_limit_per_minute":1000000}`, 201, &k); err != nil {
				return nil, err
			}
			keys = append(keys, k.Key)
		}
		var sub struct{ Plan string }
		if err := get(base+"/api/subscriptions/current", reg.AccessToken, &sub); err != nil || sub.Plan != "pro" {
			return nil, fmt.Errorf("user is not on Pro after the webhook: %q %v", sub.Plan, err)
		}
	}
	return keys, nil
}

// makePro sends the signed webhook that Stripe sends after a paid Pro checkout.
func makePro(base, user string) error {
	now := time.Now()
	obj := fmt.Sprintf(`{"id":"cs_%s","object":"checkout.session","payment_status":"paid","client_reference_id":%q,"customer":"cus_%s","subscription":"sub_%s","metadata":{"eco_id":%q,"plan":"pro"}}`,
		randHex(8), user, randHex(8), randHex(8), user)
	payload := fmt.Sprintf(`{"id":"evt_%s","object":"event","api_version":"2023-10-16","type":"checkout.session.completed","created":%d,"data":{"object":%s}}`,
		randHex(8), now.Unix(), obj)
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	fmt.Fprintf(mac, "%d.%s", now.Unix(), payload)
	req, _ := http.NewRequest("POST", base+"/api/webhooks/stripe", strings.NewReader(payload))
	req.Header.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(mac.Sum(nil))))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("webhook: %d %s", resp.StatusCode, b)
	}
	return nil
}

func post(url, token, body string, want int, out any) error {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(req, want, out)
}

func get(url, token string, out any) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return do(req, 200, out)
}

func do(req *http.Request, want int, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// stripePrice is the price of the subscriptions stripe-mock answers with: the Pro price.
func stripePrice(base string) (string, error) {
	req, _ := http.NewRequest("GET", base+"/v1/subscriptions/sub_probe", nil)
	req.SetBasicAuth("sk_test_e2e", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("stripe-mock at %s: %w", base, err)
	}
	defer resp.Body.Close()
	var sub struct {
		Items struct {
			Data []struct{ Price struct{ ID string } } `json:"data"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sub); err != nil || len(sub.Items.Data) == 0 {
		return "", fmt.Errorf("stripe-mock's subscription has no price: %v", err)
	}
	return sub.Items.Data[0].Price.ID, nil
}

// freshSchema creates a schema of its own and returns a DSN that uses it.
func freshSchema(dsn string) (string, func(), error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return "", nil, err
	}
	schema := "nexus_e2e_" + randHex(6)
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		_ = db.Close()
		return "", nil, err
	}
	drop := func() {
		_, _ = db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		_ = db.Close()
	}
	return dsn + " search_path=" + schema, drop, nil
}

// writeScript writes a wrk script that sends the keys in turn, each connection starting
// at its own place. Each key's request is formatted once, when a thread starts: building
// it on every request (a concatenation and wrk.format) cost wrk 2 µs more a request with
// 1,000 keys than with one, where Lua finds the same string interned, and that CPU was
// taken from the server under test.
func writeScript(path string, keys []string) error {
	var b strings.Builder
	b.WriteString("local keys = {\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %q,\n", k)
	}
	b.WriteString(`}
local i = 0
local reqs = {}
function setup(thread) thread:set("offset", math.random(#keys)) end
function init(args)
  i = offset or 0
  for n, k in ipairs(keys) do
    reqs[n] = wrk.format("GET", "/api/v1/ping", { ["Authorization"] = "ApiKey " .. k })
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
`)
	if countStatuses {
		b.WriteString(`
local threads = {}
function setup(thread) thread:set("offset", math.random(#keys)); table.insert(threads, thread) end
counts = {}
function response(status, headers, body)
  local k = tostring(status)
  if status ~= 200 then k = k .. " " .. (string.match(body, '"code":"([^"]*)"') or "") end
  counts[k] = (counts[k] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write("status " .. k .. ": " .. v .. "\n") end
end
`)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

var (
	rpsRe    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	totalRe  = regexp.MustCompile(`(\d+) requests in`)
	non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrk(base, script string, conns, threads int, dur time.Duration) (*result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(dur.Seconds())), "-s", script, base+"/api/v1/ping").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("wrk: %w: %s", err, out)
	}
	m := rpsRe.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("wrk printed no rate: %s", out)
	}
	if countStatuses {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "status ") {
				fmt.Fprintln(os.Stderr, "  "+line)
			}
		}
	}
	r := &result{}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := totalRe.FindSubmatch(out); m != nil {
		r.total, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := non2xxRe.FindSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	return r, nil
}

// report prints the table. Each target's rate and CPU are the medians of its rounds;
// each ratio is the median of the ratios within a round (both runs of a ratio share
// that round's state of the machine, which drifts between rounds on a shared host).
func report(order []string, runs map[string][]result, conns int, dur time.Duration) {
	rounds := len(runs[order[0]])
	fmt.Printf("wrk, %d connections, %v per run after a 1 s warm-up, GET /api/v1/ping; %d rounds, medians\n\n", conns, dur, rounds)
	fmt.Println("| target | keys | req/s | server CPU per request | not 2xx | vs bare | vs memory |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, id := range order {
		rs := runs[id]
		r := rs[0]
		rps := median(rs, func(r result) float64 { return r.rps })
		cpu := median(rs, func(r result) float64 { return r.cpuPerReq })
		var non2xx, total int64
		for _, x := range rs {
			non2xx, total = non2xx+x.non2xx, total+x.total
		}
		vsBare, vsMem := "", ""
		if r.mode != "bare" {
			vsBare = ratio(rs, runs["bare 1 key"])
		}
		if r.mode == "postgres" {
			vsMem = ratio(rs, runs["memory "+r.keys])
		}
		share := "0"
		if total > 0 && non2xx > 0 {
			share = fmt.Sprintf("%.2g%%", 100*float64(non2xx)/float64(total))
		}
		keys := r.keys
		if r.mode == "bare" || r.mode == "headers" {
			keys = "—"
		}
		fmt.Printf("| %s | %s | %.0f | %.1f µs | %s | %s | %s |\n", r.mode, keys, rps, cpu, share, vsBare, vsMem)
	}
}

// median returns the median of f over rs.
func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return mid(v)
}

// mid returns the median of v, which it sorts: the middle value, or the mean of the two
// middle values when there is an even number of them.
func mid(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[n/2]
}

// ratio is the median over rounds of a's rate over b's in the same round, with the
// rounds' own ratios: "0.86x (0.84, 0.86, 0.90)".
func ratio(a, b []result) string {
	if len(b) != len(a) {
		return ""
	}
	v := make([]float64, len(a))
	for i := range a {
		v[i] = a[i].rps / b[i].rps
	}
	each := make([]string, len(v))
	for i, x := range v {
		each[i] = fmt.Sprintf("%.2f", x)
	}
	if len(v) == 1 {
		return fmt.Sprintf("%.2fx", v[0])
	}
	return fmt.Sprintf("%.2fx (%s)", mid(v), strings.Join(each, ", "))
}

// processCPU is the CPU time (user and system) the process has used, from /proc.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("CPU time of the target: %w", err)
	}
	// The fields after the command name, which is in parentheses and may hold spaces:
	// utime and stime are the 14th and 15th fields of the line, in clock ticks (100/s
	// on Linux, which is what _SC_CLK_TCK is everywhere Go runs on it).
	rest := string(b)
	rest = rest[strings.LastIndexByte(rest, ')')+1:]
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("CPU time of the target: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("CPU time of the target: %w", err)
	}
	return time.Duration(utime+stime) * (time.Second / 100), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
