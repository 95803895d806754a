// Package metrics owns awakend's Prometheus metrics: their names, their
// private registry and the /metrics handler.
//
// It exports the registry and reload metrics. The reload
// metrics are observed from reload results (ObserveReload, wired to the
// loop's OnResult); the registry version, resource counts and watcher health
// are read from the serving snapshot and the loop at scrape time, so there is
// no state to keep in sync. Go runtime and process metrics come from the
// client library's collectors.
//
// The gateway's request metrics (awakend_requests_total,
// awakend_upstream_duration_seconds, awakend_time_to_first_token_seconds,
// awakend_gateway_overhead_seconds) belong here too: they will be added as a
// type of their own built by New and registered on the same registry. Until
// then Registerer lets other packages add collectors. Nothing is ever
// registered on the client library's global default registry.
package metrics

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

// namespace prefixes every awakend metric name.
const namespace = "awakend"

// reloadBuckets are the buckets of awakend_config_reload_duration_seconds,
// from 1ms to 10s: a one-file reload of a small directory takes
// milliseconds, a cold load of ten thousand resources about a second.
var reloadBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Metrics holds awakend's collectors on a private Prometheus registry.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	lastSuccessful  prometheus.Gauge
	lastSuccessTime prometheus.Gauge
	reloads         *prometheus.CounterVec
	reloadDuration  prometheus.Histogram
	configInfo      *prometheus.GaugeVec
	mu              sync.Mutex
	info            [2]string // configInfo's fingerprint and pack
	degraded        prometheus.Gauge
}

// New returns the metrics of a daemon serving h, with watcher reporting the
// directory watcher's health (typically func() reload.WatcherStatus { return
// loop.Status().Watcher }). Both are read at scrape time; a nil h omits the
// registry metrics and a nil watcher omits awakend_watcher_up.
func New(h *registry.Handle, watcher func() reload.WatcherStatus) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		lastSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "config", Name: "last_reload_successful",
			Help: "Whether the last configuration reload succeeded (applied or unchanged): 1, or 0 if it was rejected.",
		}),
		lastSuccessTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful reload (applied or unchanged): the config source was last known to say what is served.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "config", Name: "reloads_total",
			Help: "Configuration reloads by trigger (startup, signal, api, rescan, watch) and result (applied, unchanged, rejected).",
		}, []string{"trigger", "result"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "config", Name: "degraded",
			Help: "1 while the daemon serves its last-known-good configuration because its directory did not validate at start-up, else 0.",
		}),
		reloadDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "config", Name: "reload_duration_seconds",
			Help:    "Time taken by configuration reloads, whatever their result.",
			Buckets: reloadBuckets,
		}),
		configInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "config", Name: "info",
			Help: "The serving configuration: its inputs' fingerprint, its source (directory or etcd) and, from etcd, the fleet's pack. Always 1.",
		}, []string{"fingerprint", "source", "pack"}),
	}
	// Every trigger and result from zero, so that rate() and increase() see
	// the first reload of each kind.
	for _, t := range []reload.Trigger{reload.TriggerStartup, reload.TriggerSignal, reload.TriggerAPI, reload.TriggerRescan, reload.TriggerEtcd, reload.TriggerWatch} {
		for _, o := range []reload.Outcome{reload.OutcomeApplied, reload.OutcomeUnchanged, reload.OutcomeRejected} {
			m.reloads.WithLabelValues(string(t), string(o))
		}
	}
	m.reg.MustRegister(
		m.lastSuccessful, m.lastSuccessTime, m.reloads, m.reloadDuration, m.configInfo, m.degraded,
		&snapshotCollector{handle: h, watcher: watcher},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// ObserveReload records one finished reload. Call it from the reload loop's
// OnResult; calls need not be serialized.
//
// An applied or unchanged reload sets awakend_config_last_reload_successful
// to 1 and the success timestamp to its end, as Prometheus does for its own
// configuration; a rejected one sets the gauge to 0 and leaves the
// timestamp. "Unchanged" counts as a success because the reload function
// compares the inputs with those of the serving configuration: the source
// still says what is being served. The age of the serving configuration
// itself is in /api/v1/status (loaded_at).
func (m *Metrics) ObserveReload(res reload.Result) {
	outcome := res.Outcome
	if outcome == "" && res.Err != nil {
		outcome = reload.OutcomeRejected
	}
	m.reloads.WithLabelValues(string(res.Trigger), string(outcome)).Inc()
	m.reloadDuration.Observe(res.Duration.Seconds())
	switch outcome {
	case reload.OutcomeApplied, reload.OutcomeUnchanged:
		m.lastSuccessful.Set(1)
		at := res.Started.Add(res.Duration)
		if res.Started.IsZero() {
			at = time.Now()
		}
		m.lastSuccessTime.Set(float64(at.UnixNano()) / 1e9)
	case reload.OutcomeRejected:
		m.lastSuccessful.Set(0)
	}
	if outcome != reload.OutcomeRejected && res.Fingerprint != "" {
		m.setInfo(res.Fingerprint, res.Pack)
	}
}

// setInfo points awakend_config_info at the serving configuration.
func (m *Metrics) setInfo(fingerprint, pack string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.info == [2]string{fingerprint, pack} {
		return
	}
	m.info = [2]string{fingerprint, pack}
	source := "directory"
	if pack != "" {
		source = "etcd"
	}
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(fingerprint, source, pack).Set(1)
}

// SetBuildInfo publishes awakend_build_info{version,goversion} 1.
func (m *Metrics) SetBuildInfo(version string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "awakend's version and the Go version it was built with. Always 1.",
	}, []string{"version", "goversion"})
	g.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(g)
}

// SetDegraded sets awakend_config_degraded: whether the daemon serves its
// last-known-good configuration instead of its directory's.
func (m *Metrics) SetDegraded(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.degraded.Set(v)
}

// Handler serves the metrics in the Prometheus exposition formats.
// Scrape errors are counted in promhttp_metric_handler_errors_total.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registerer is the registry the metrics live on, for collectors of other
// packages. Collectors registered here are served by Handler.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }
