package gateway

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// gatewayMetrics are the gateway's request metrics. Label values are
// bounded: model is a registry id or "unknown", provider a provider id or
// "none", code an HTTP status.
type gatewayMetrics struct {
	requests *prometheus.CounterVec
	upstream *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	overhead prometheus.Histogram
	tokens   *prometheus.CounterVec
	cost     *prometheus.CounterVec
	inFlight prometheus.Gauge
	failover *prometheus.CounterVec
	exported bool // registered on a registry: someone may read them
}

var (
	upstreamBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	ttftBuckets     = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	overheadBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1}
)

// newMetrics builds the collectors and registers them on reg, if any. A
// collector already registered there (a second gateway on one registry)
// is shared.
func newMetrics(reg prometheus.Registerer) *gatewayMetrics {
	m := &gatewayMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "awakend", Name: "requests_total",
			Help: "Gateway requests by route, requested model (a registry id, or unknown), serving provider (or none) and HTTP status.",
		}, []string{"route", "model", "provider", "code"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "awakend", Name: "upstream_duration_seconds",
			Help:    "Time of each upstream call, from the request to the end of the answer (of the stream, for streams).",
			Buckets: upstreamBuckets,
		}, []string{"provider"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "awakend", Name: "time_to_first_token_seconds",
			Help:    "Streaming requests: time from the request's arrival to the first data event forwarded to the client.",
			Buckets: ttftBuckets,
		}, []string{"provider"}),
		overhead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "awakend", Name: "gateway_overhead_seconds",
			Help:    "Time a chat completion spent in the gateway: its total time minus the time of its upstream calls.",
			Buckets: overheadBuckets,
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "awakend", Name: "tokens_total",
			Help: "Tokens the upstreams reported, by client (- for none), serving model and direction (input or output).",
		}, []string{"client", "model", "direction"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "awakend", Name: "cost_usd_total",
			Help: "Cost in USD of the tokens the upstreams reported, at the serving model's declared prices, by client (- for none) and model.",
		}, []string{"client", "model"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "awakend", Name: "requests_in_flight",
			Help: "Gateway requests being served, streams included.",
		}),
		failover: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "awakend", Name: "pool_failovers_total",
			Help: "Attempts a model pool made on another member after one failed, by pool.",
		}, []string{"pool"}),
	}
	if reg != nil {
		m.exported = true
		m.requests = register(reg, m.requests)
		m.upstream = register(reg, m.upstream)
		m.ttft = register(reg, m.ttft)
		m.overhead = register(reg, m.overhead)
		m.tokens = register(reg, m.tokens)
		m.cost = register(reg, m.cost)
		m.inFlight = register(reg, m.inFlight)
		m.failover = register(reg, m.failover)
	}
	return m
}

// breakerCollector exposes awakend_breaker_open{provider,model}: 1 for a
// target whose breaker refuses calls now, 0 otherwise, read at scrape
// time from the breakers that outlive reloads.
type breakerCollector struct{ g *Gateway }

var breakerDesc = prometheus.NewDesc("awakend_breaker_open",
	"1 while a target's circuit breaker is open (calls refused until it half-opens), else 0; by provider and model.",
	[]string{"provider", "model"}, nil)

func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerDesc }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.g.clock()
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	for k, b := range c.g.breakers {
		v := 0.0
		if b.state(now) == "open" {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, k.provider, k.model)
	}
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// request counts a finished request.
func (m *gatewayMetrics) request(rs *reqState) {
	if rs.status == 200 && rs.okCounter != nil {
		rs.okCounter.Inc()
		return
	}
	m.requests.WithLabelValues(rs.route, rs.modelLabel(), rs.providerLabel(), statusText(rs.status)).Inc()
}

// okCounter returns the counter of a 200 answer on route of r served by
// target t, cached for chat completions.
func (m *gatewayMetrics) okCounter(route string, r *route, t *target) prometheus.Counter {
	if route != routeChat {
		return m.requests.WithLabelValues(route, r.name, t.providerID, "200")
	}
	slot := &r.ok[t.index]
	if c := slot.Load(); c != nil {
		return c.Counter
	}
	c := &counter{m.requests.WithLabelValues(routeChat, r.name, t.providerID, "200")}
	slot.Store(c)
	return c.Counter
}

func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 404:
		return "404"
	case 429:
		return "429"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// forget drops the usage series that match labels: those of a client or
// model no longer declared.
func (m *gatewayMetrics) forget(labels prometheus.Labels) {
	m.tokens.DeletePartialMatch(labels)
	m.cost.DeletePartialMatch(labels)
}
