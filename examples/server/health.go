package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/nexus-ecosystem/nexus/httpjson"
	"github.com/nexus-ecosystem/nexus/mail"
)

// readyTimeout bounds each dependency check of /readyz: a probe answers within about this
// long even when a dependency hangs.
const readyTimeout = 2 * time.Second

// check is one dependency /readyz asks: name is what a failure names ("store", "limiter",
// "mailer"), ping reports whether it answers within ctx's deadline.
type check struct {
	name string
	ping func(ctx context.Context) error
}

// healthHandlers serve the probes of an orchestrator or load balancer: /healthz says the
// process is alive (it asks nothing), /readyz says whether the dependencies answer.
type healthHandlers struct {
	store  string  // "memory" or "postgres"
	checks []check // asked by /readyz, concurrently
	// timeout bounds each check; zero means readyTimeout.
	timeout time.Duration
	log     *slog.Logger
}

func (h healthHandlers) register(rt *router) {
	rt.HandleFunc("GET /healthz", h.healthz)
	rt.HandleFunc("GET /readyz", h.readyz)
	rt.HandleFunc("GET /openapi.yaml", serveOpenAPI)
}

// healthz answers 200 {"status":"ok","store":…}: the process serves requests. It asks no
// dependency, so a slow database never gets a live server restarted.
func (h healthHandlers) healthz(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok", "store": h.store})
}

// readyAnswer is the body of /readyz: each check's state ("ok" or "fail"), and on 503
// the names of those that failed.
type readyAnswer struct {
	Status string            `json:"status"` // "ok" or "unavailable"
	Checks map[string]string `json:"checks"`
	Failed []string          `json:"failed,omitempty"`
	Error  *readyError       `json:"error,omitempty"`
}

type readyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// readyz asks every dependency at once, each within readyTimeout, and answers 200 when
// all answer, else 503 not_ready naming the ones that failed (their errors are logged, not
// shown: they may name hosts).
func (h healthHandlers) readyz(w http.ResponseWriter, r *http.Request) {
	timeout := h.timeout
	if timeout <= 0 {
		timeout = readyTimeout
	}
	errs := make([]error, len(h.checks))
	var wg sync.WaitGroup
	for i, c := range h.checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			errs[i] = c.ping(ctx)
		})
	}
	wg.Wait()
	ans := readyAnswer{Status: "ok", Checks: make(map[string]string, len(h.checks))}
	for i, c := range h.checks {
		if errs[i] == nil {
			ans.Checks[c.name] = "ok"
			continue
		}
		ans.Checks[c.name] = "fail"
		ans.Failed = append(ans.Failed, c.name)
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "readiness check failed",
			slog.String("check", c.name), slog.String("err", errs[i].Error()))
	}
	if len(ans.Failed) > 0 {
		ans.Status = "unavailable"
		ans.Error = &readyError{Code: "not_ready", Message: fmt.Sprintf("not ready: %v", ans.Failed)}
		httpjson.Write(w, http.StatusServiceUnavailable, ans)
		return
	}
	httpjson.Write(w, http.StatusOK, ans)
}

// readyChecks are the dependencies this configuration has: the store (PostgreSQL), the
// limiter (Redis, or PostgreSQL) and the mailer (the SMTP server accepts a connection, or
// the mail directory exists). In memory, the store and the limiter are always ready; with
// no mailer there is nothing to check.
func (s *services) readyChecks() []check {
	pingDB := func(ctx context.Context) error {
		if s.db == nil {
			return nil
		}
		return s.db.PingContext(ctx)
	}
	limiter := func(context.Context) error { return nil }
	switch {
	case s.redis != nil:
		limiter = func(ctx context.Context) error { return s.redis.Ping(ctx).Err() }
	case s.db != nil:
		limiter = pingDB // the Postgres limiter's rows live in the store
	}
	checks := []check{{"store", pingDB}, {"limiter", limiter}}
	switch {
	case s.cfg.SMTPURL != "":
		checks = append(checks, check{"mailer", smtpReachable(s.cfg.SMTPURL)})
	case s.cfg.MailDir != "":
		checks = append(checks, check{"mailer", dirWritable(s.cfg.MailDir)})
	}
	return checks
}

// smtpReachable reports whether the SMTP server of rawURL accepts a TCP connection.
func smtpReachable(rawURL string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		c, err := mail.ParseSMTPURL(rawURL)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.Host, c.Port))
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// dirWritable reports whether dir is a directory a message can be written into.
func dirWritable(dir string) func(ctx context.Context) error {
	return func(context.Context) error {
		f, err := os.CreateTemp(dir, ".readyz-*")
		if err != nil {
			return err
		}
		name := f.Name()
		return errors.Join(f.Close(), os.Remove(name))
	}
}
