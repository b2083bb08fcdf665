// Command server is the complete Nexus HTTP API: accounts, API keys, usage analytics and
// billing, wired from the SDK's packages (README.md lists every route). It runs on in-memory
// stores by default; -postgres (or DATABASE_URL) switches to PostgreSQL and migrates it on
// start, -redis selects the Redis rate limiter.
//
//	go run ./examples/server                       # 127.0.0.1:8080, in memory
//	go run ./examples/server -postgres "$DATABASE_URL" -redis 127.0.0.1:6379
//
// SIGINT or SIGTERM stops accepting requests, lets the ones in flight finish and flushes
// what is buffered before the process exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logs := newLogBuffer(os.Stderr) // lines are written out together: see logBuffer
	err := run(ctx, os.Args[1:], os.Getenv, logs, nil)
	_ = logs.Close()
	if errors.Is(err, errHelp) {
		return // -h printed the usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds how long a graceful shutdown waits for requests in flight.
const shutdownTimeout = 15 * time.Second

// run starts the server and blocks until ctx ends, then shuts down gracefully. When ready
// is not nil, it receives the listening address once the server accepts connections.
// With -h it prints the usage to logOut and returns errHelp.
func run(ctx context.Context, args []string, getenv func(string) string, logOut io.Writer, ready chan<- string) error {
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, errHelp) {
		printUsage(logOut)
		return err
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))

	s, err := newServices(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.close()

	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln := newDeadlineListener(tcp, deadlineTick) // the timeouts below, without a timer update per request
	s.requestLog = newRequestLog(logOut)         // beside log's lines, in the same JSON shape
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// "OPTIONS *" reaches the router (a JSON 404) instead of net/http's empty 200.
		DisableGeneralOptionsHandler: true,
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	if cfg.MetricsAddr != "" {
		msrv, maddr, err := serveMetrics(cfg.MetricsAddr, s.metrics.handler(), serveErr)
		if err != nil {
			_ = srv.Close()
			return err
		}
		defer msrv.Close()
		log.Info("metrics listening", "metrics_addr", maddr)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "listening", append([]slog.Attr{slog.String("addr", ln.Addr().String())}, s.summary()...)...)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return s.shutdown(shutdownCtx)
}

// serveMetrics serves GET /metrics alone on addr (-metrics-addr), so the API's listener
// need not expose it; Serve's error goes to errs.
func serveMetrics(addr string, h http.Handler, errs chan<- error) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen -metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
	}()
	return srv, ln.Addr().String(), nil
}
