package main

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/billing"
	"github.com/nexus-ecosystem/nexus/guard"
	"github.com/nexus-ecosystem/nexus/usage"
)

// metrics is the Prometheus edge of the server. The SDK's packages import no metrics
// library: they expose what they count (usage.Tracker.Stats, sql.DB.Stats,
// billing.Config.OnWebhook) or interfaces a decorator can wrap (apikey.Verifier,
// guard.Admission), and this file turns that into Prometheus metrics on its own registry
// (so two servers in one test process do not collide). Safe for concurrent use.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	verifications *prometheus.CounterVec
	admissions    *prometheus.CounterVec
	rateLimit     *prometheus.CounterVec
	quota         *prometheus.CounterVec
	webhooks      *prometheus.CounterVec

	// byRoute holds the children of requests and duration for each route and status
	// seen (never nil), replaced whole (under byRouteMu) when a pair is new: the label
	// set is bounded (route patterns and status codes), and a read is one lookup in a
	// plain map.
	byRoute   atomic.Pointer[map[routeCode]routeMetrics]
	byRouteMu sync.Mutex
}

// newMetrics registers every metric of the server; db may be nil (in-memory stores).
func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_http_requests_total",
			Help: "HTTP requests answered, by route pattern (never the raw path) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_apikey_verifications_total",
			Help: "API-key verifications by result: valid, invalid, malformed, revoked, expired, error.",
		}, []string{"result"}),
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_guard_admissions_total",
			Help: "Admission decisions of the API-key chain: allowed, rate_limited, quota_exceeded, error.",
		}, []string{"result"}),
		rateLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_ratelimit_decisions_total",
			Help: "Rate-limit decisions (when the rate limit was consulted): allowed or refused.",
		}, []string{"result"}),
		quota: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_quota_decisions_total",
			Help: "Monthly quota decisions: allowed, over (served over a soft cap, billed) or refused.",
		}, []string{"result"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_stripe_webhook_events_total",
			Help: "Stripe webhook deliveries by event type and result (billing.WebhookOutcome).",
		}, []string{"type", "result"}),
	}
	m.byRoute.Store(&map[routeCode]routeMetrics{})
	m.reg.MustRegister(m.requests, m.duration, m.verifications, m.admissions, m.rateLimit, m.quota, m.webhooks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watch adds the collectors read at scrape time: the tracker's counters and, with
// PostgreSQL, the pool's (go_sql_* with db_name="nexus").
func (m *metrics) watch(t *usage.Tracker, db *sql.DB) {
	if t != nil {
		m.reg.MustRegister(trackerCollector{t})
	}
	if db != nil {
		m.reg.MustRegister(collectors.NewDBStatsCollector(db, "nexus"))
	}
}

// handler serves the registry in Prometheus's text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// routeCode is the label pair of nexus_http_requests_total.
type routeCode struct {
	route  string
	status int
}

// routeMetrics are the children of requests and duration that a routeCode counts in.
type routeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts one answered request and its latency by its route pattern ("GET
// /api/v1/ping", which the ServeMux sets on the request); observeRequests calls it. A
// request no route matched is "unmatched", so scanners cannot grow the label set. The
// children of the vectors are found in byRoute: WithLabelValues hashes and compares
// every label on each call, a sync.Map hashes its interface keys, and this runs on
// every request.
func (m *metrics) observe(route string, status int, took time.Duration) {
	if route == "" || route == "/" {
		route = "unmatched"
	}
	rc := routeCode{route, status}
	rm, ok := (*m.byRoute.Load())[rc]
	if !ok {
		rm = m.addRoute(rc)
	}
	rm.requests.Inc()
	rm.duration.Observe(took.Seconds())
}

// addRoute resolves the children of rc and publishes them in a new byRoute.
func (m *metrics) addRoute(rc routeCode) routeMetrics {
	m.byRouteMu.Lock()
	defer m.byRouteMu.Unlock()
	old := *m.byRoute.Load()
	if rm, ok := old[rc]; ok {
		return rm
	}
	next := make(map[routeCode]routeMetrics, 1+len(old))
	maps.Copy(next, old)
	rm := routeMetrics{
		requests: m.requests.WithLabelValues(rc.route, strconv.Itoa(rc.status)),
		duration: m.duration.WithLabelValues(rc.route),
	}
	next[rc] = rm
	m.byRoute.Store(&next)
	return rm
}

// onWebhook is billing's OnWebhook hook.
func (m *metrics) onWebhook(_ context.Context, res billing.WebhookResult, err error) {
	typ := res.Type
	if typ == "" {
		typ = "unknown"
	}
	m.webhooks.WithLabelValues(typ, billing.WebhookOutcome(res, err)).Inc()
}

// verifier counts the key verifications of v.
func (m *metrics) verifier(v apikey.Verifier) apikey.Verifier {
	cv := countingVerifier{next: v}
	for i, r := range verifyResults {
		cv.byResult[i] = m.verifications.WithLabelValues(r)
	}
	return &cv // a pointer: an interface call of a value method copies the value
}

// verifyResults are the values of nexus_apikey_verifications_total's result label, in
// the order verifyResult indexes them.
var verifyResults = [...]string{"valid", "malformed", "revoked", "expired", "invalid", "error"}

// countingVerifier counts through children resolved once, not WithLabelValues per call.
type countingVerifier struct {
	next     apikey.Verifier
	byResult [len(verifyResults)]prometheus.Counter
}

var _ apikey.Verifier = (*countingVerifier)(nil)

func (v *countingVerifier) Verify(ctx context.Context, plain string) (apikey.Key, error) {
	k, err := v.next.Verify(ctx, plain)
	v.byResult[verifyResult(err)].Inc()
	return k, err
}

// verifyResult is the index in verifyResults of err's result.
func verifyResult(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, apikey.ErrMalformed):
		return 1
	case errors.Is(err, apikey.ErrRevoked):
		return 2
	case errors.Is(err, apikey.ErrExpired):
		return 3
	case errors.Is(err, apikey.ErrInvalidKey), errors.Is(err, apikey.ErrNotFound):
		return 4
	}
	return 5
}

// admission counts the decisions of a, keeping its Refund when it has one.
func (m *metrics) admission(a guard.Admission) guard.Admission {
	c := countingAdmission{next: a, counters: &admissionCounters{
		allowed:       m.admissions.WithLabelValues("allowed"),
		rateLimited:   m.admissions.WithLabelValues("rate_limited"),
		quotaExceeded: m.admissions.WithLabelValues("quota_exceeded"),
		failed:        m.admissions.WithLabelValues("error"),
		rateAllowed:   m.rateLimit.WithLabelValues("allowed"),
		rateRefused:   m.rateLimit.WithLabelValues("refused"),
		quotaAllowed:  m.quota.WithLabelValues("allowed"),
		quotaOver:     m.quota.WithLabelValues("over"),
		quotaRefused:  m.quota.WithLabelValues("refused"),
	}}
	if rf, ok := a.(guard.Refunder); ok {
		return &refundingAdmission{c, rf}
	}
	return &c
}

// admissionCounters are the children countingAdmission counts with, resolved once.
type admissionCounters struct {
	allowed, rateLimited, quotaExceeded, failed prometheus.Counter
	rateAllowed, rateRefused                    prometheus.Counter
	quotaAllowed, quotaOver, quotaRefused       prometheus.Counter
}

type countingAdmission struct {
	next     guard.Admission
	counters *admissionCounters
}

type refundingAdmission struct {
	countingAdmission
	guard.Refunder
}

var (
	_ guard.Admission = (*countingAdmission)(nil)
	_ guard.Refunder  = (*refundingAdmission)(nil)
)

func (a *countingAdmission) Admit(ctx context.Context, k apikey.Key) (guard.Decision, error) {
	d, err := a.next.Admit(ctx, k)
	c := a.counters
	switch {
	case err != nil:
		c.failed.Inc()
		return d, err
	case d.Allowed:
		c.allowed.Inc()
	case d.Refused == guard.QuotaExceeded:
		c.quotaExceeded.Inc()
	default:
		c.rateLimited.Inc()
	}
	if d.Rate.Limit > 0 { // the rate limit was consulted
		if d.Refused == guard.RateLimited {
			c.rateRefused.Inc()
		} else {
			c.rateAllowed.Inc()
		}
	}
	switch {
	case d.Refused == guard.QuotaExceeded:
		c.quotaRefused.Inc()
	case d.Quota.Limit >= 0 && d.Quota.Used > d.Quota.Limit:
		c.quotaOver.Inc()
	default:
		c.quotaAllowed.Inc()
	}
	return d, nil
}

// trackerCollector reads usage.Tracker.Stats at each scrape.
type trackerCollector struct{ t *usage.Tracker }

var (
	trackerAccepted = prometheus.NewDesc("nexus_usage_tracker_accepted_total", "Usage records the tracker took into its buffer.", nil, nil)
	trackerFlushed  = prometheus.NewDesc("nexus_usage_tracker_flushed_total", "Usage records the store acknowledged.", nil, nil)
	trackerRetried  = prometheus.NewDesc("nexus_usage_tracker_retried_total", "Batch writes repeated after a retriable store error.", nil, nil)
	trackerDropped  = prometheus.NewDesc("nexus_usage_tracker_dropped_total", "Usage records refused: the buffer was full or the tracker closed.", nil, nil)
	trackerRejected = prometheus.NewDesc("nexus_usage_tracker_rejected_total", "Usage records the store refused for their content.", nil, nil)
	trackerPending  = prometheus.NewDesc("nexus_usage_tracker_pending", "Accepted usage records not stored yet.", nil, nil)
)

func (trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{trackerAccepted, trackerFlushed, trackerRetried, trackerDropped, trackerRejected, trackerPending} {
		ch <- d
	}
}

func (c trackerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.t.Stats()
	ch <- prometheus.MustNewConstMetric(trackerAccepted, prometheus.CounterValue, float64(st.Accepted))
	ch <- prometheus.MustNewConstMetric(trackerFlushed, prometheus.CounterValue, float64(st.Flushed))
	ch <- prometheus.MustNewConstMetric(trackerRetried, prometheus.CounterValue, float64(st.Retried))
	ch <- prometheus.MustNewConstMetric(trackerDropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(trackerRejected, prometheus.CounterValue, float64(st.Rejected))
	ch <- prometheus.MustNewConstMetric(trackerPending, prometheus.GaugeValue, float64(st.Pending))
}
