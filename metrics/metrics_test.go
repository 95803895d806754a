package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/awakend/awakend/metrics"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// scrape fetches the handler's text exposition and parses it.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape status = %d: %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// sample finds the sample of family name whose labels include labels.
// ok is false when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (m *dto.Metric, ok bool) {
	f := fams[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value is the value of a gauge or counter sample; it fails the test when
// the sample is missing.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := sample(fams, name, labels)
	if !ok {
		t.Fatalf("no sample %s%v", name, labels)
	}
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	t.Fatalf("%s%v is neither a gauge nor a counter", name, labels)
	return 0
}

type provider struct{}

func (provider) Name() string { return "mock" }

func testSet(t *testing.T, agents ...string) *registry.Set {
	t.Helper()
	d := registry.NewDraft(nil)
	d.Providers["p"] = registry.Provider{
		Spec:     registry.ProviderSpec{ID: "p", Adapter: "mock", TimeoutSecs: 300},
		Executor: provider{},
	}
	d.Models["m"] = registry.ModelSpec{ID: "m", ProviderID: "p", UpstreamModel: "up"}
	d.Models["n"] = registry.ModelSpec{ID: "n", ProviderID: "p", UpstreamModel: "up"}
	d.Pools["pool"] = registry.PoolSpec{
		ID:      "pool",
		Members: []registry.PoolMember{{ModelID: "m", Role: registry.RoleMember}},
		Routing: registry.DefaultPoolRouting(),
		Switch:  registry.DefaultSwitchPolicy(),
	}
	for _, a := range agents {
		d.Agents[a] = registry.AgentSpec{ID: a, ModelID: "m", MaxRounds: 16}
	}
	s, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRegistryGaugesReadTheServingSnapshot(t *testing.T) {
	h := registry.NewHandle(testSet(t, "a"))
	m := metrics.New(h, nil)

	fams := scrape(t, m.Handler())
	want := map[string]float64{"providers": 1, "models": 2, "model_pools": 1, "agents": 1}
	for kind, n := range want {
		if got := value(t, fams, "awakend_registry_resources", map[string]string{"kind": kind}); got != n {
			t.Errorf("resources{kind=%q} = %v, want %v", kind, got, n)
		}
	}
	if got := value(t, fams, "awakend_registry_version", nil); got != 1 {
		t.Errorf("version = %v, want 1", got)
	}

	h.Replace(testSet(t, "a", "b", "c"))
	fams = scrape(t, m.Handler())
	if got := value(t, fams, "awakend_registry_version", nil); got != 2 {
		t.Errorf("version after replace = %v, want 2", got)
	}
	if got := value(t, fams, "awakend_registry_resources", map[string]string{"kind": "agents"}); got != 3 {
		t.Errorf("agents after replace = %v, want 3", got)
	}
}

func TestReloadMetrics(t *testing.T) {
	h := registry.NewHandle(testSet(t, "a"))
	m := metrics.New(h, nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	appliedAt := t0.Add(20 * time.Millisecond)

	steps := []struct {
		name       string
		res        reload.Result
		successful float64
		successTS  time.Time // zero: 0
		counts     map[[2]string]float64
		histCount  uint64
	}{
		{
			name:       "startup applied",
			res:        reload.Result{Trigger: reload.TriggerStartup, Outcome: reload.OutcomeApplied, Version: 2, Started: t0, Duration: 20 * time.Millisecond},
			successful: 1, successTS: appliedAt,
			counts:    map[[2]string]float64{{"startup", "applied"}: 1, {"watch", "rejected"}: 0},
			histCount: 1,
		},
		{
			name:       "watch rejected",
			res:        reload.Result{Trigger: reload.TriggerWatch, Outcome: reload.OutcomeRejected, Version: 2, Err: errors.New("bad"), Started: t0.Add(time.Minute), Duration: 3 * time.Millisecond},
			successful: 0, successTS: appliedAt,
			counts:    map[[2]string]float64{{"startup", "applied"}: 1, {"watch", "rejected"}: 1},
			histCount: 2,
		},
		{
			name:       "rescan unchanged",
			res:        reload.Result{Trigger: reload.TriggerRescan, Outcome: reload.OutcomeUnchanged, Version: 2, Started: t0.Add(2 * time.Minute), Duration: time.Millisecond},
			successful: 1, successTS: t0.Add(2*time.Minute + time.Millisecond),
			counts:    map[[2]string]float64{{"rescan", "unchanged"}: 1, {"watch", "rejected"}: 1},
			histCount: 3,
		},
		{
			name:       "error without outcome counts as rejected",
			res:        reload.Result{Trigger: reload.TriggerAPI, Err: errors.New("bad"), Duration: time.Millisecond},
			successful: 0, successTS: t0.Add(2*time.Minute + time.Millisecond),
			counts:    map[[2]string]float64{{"api", "rejected"}: 1, {"api", ""}: 0},
			histCount: 4,
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			m.ObserveReload(st.res)
			fams := scrape(t, m.Handler())
			if got := value(t, fams, "awakend_config_last_reload_successful", nil); got != st.successful {
				t.Errorf("last_reload_successful = %v, want %v", got, st.successful)
			}
			wantTS := float64(st.successTS.UnixNano()) / 1e9
			if got := value(t, fams, "awakend_config_last_reload_success_timestamp_seconds", nil); got != wantTS {
				t.Errorf("success timestamp = %v, want %v", got, wantTS)
			}
			for k, n := range st.counts {
				labels := map[string]string{"trigger": k[0], "result": k[1]}
				if k[1] == "" {
					if _, ok := sample(fams, "awakend_config_reloads_total", labels); ok {
						t.Errorf("reloads_total has a series with an empty result")
					}
					continue
				}
				if got := value(t, fams, "awakend_config_reloads_total", labels); got != n {
					t.Errorf("reloads_total%v = %v, want %v", labels, got, n)
				}
			}
			hist, ok := sample(fams, "awakend_config_reload_duration_seconds", nil)
			if !ok || hist.GetHistogram() == nil {
				t.Fatal("no reload duration histogram")
			}
			if got := hist.GetHistogram().GetSampleCount(); got != st.histCount {
				t.Errorf("histogram count = %d, want %d", got, st.histCount)
			}
		})
	}
}

func TestConfigInfoNamesTheServingConfig(t *testing.T) {
	m := metrics.New(registry.NewHandle(nil), nil)
	m.ObserveReload(reload.Result{Trigger: reload.TriggerStartup, Outcome: reload.OutcomeApplied, Fingerprint: "f1"})
	m.ObserveReload(reload.Result{Trigger: reload.TriggerEtcd, Outcome: reload.OutcomeApplied, Fingerprint: "f2", Pack: "p2"})
	m.ObserveReload(reload.Result{Trigger: reload.TriggerEtcd, Outcome: reload.OutcomeRejected, Fingerprint: "f3", Pack: "p3"})
	fams := scrape(t, m.Handler())
	series := fams["awakend_config_info"].GetMetric()
	if len(series) != 1 {
		t.Fatalf("awakend_config_info has %d series, want the serving one only", len(series))
	}
	if got := value(t, fams, "awakend_config_info", map[string]string{"fingerprint": "f2", "source": "etcd", "pack": "p2"}); got != 1 {
		t.Errorf("awakend_config_info for the applied pack = %v, want 1", got)
	}
}

func TestBuildInfo(t *testing.T) {
	m := metrics.New(registry.NewHandle(nil), nil)
	m.SetBuildInfo("v1.2.3")
	if got := value(t, scrape(t, m.Handler()), "awakend_build_info", map[string]string{"version": "v1.2.3", "goversion": runtime.Version()}); got != 1 {
		t.Errorf("awakend_build_info = %v, want 1", got)
	}
}

func TestReloadCountersStartAtZero(t *testing.T) {
	m := metrics.New(registry.NewHandle(nil), nil)
	fams := scrape(t, m.Handler())
	if n := len(fams["awakend_config_reloads_total"].GetMetric()); n != 18 {
		t.Errorf("reloads_total has %d series, want 18 (6 triggers x 3 results)", n)
	}
	if got := value(t, fams, "awakend_config_last_reload_successful", nil); got != 0 {
		t.Errorf("last_reload_successful before any reload = %v, want 0", got)
	}
	f := fams["awakend_config_reload_duration_seconds"]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Fatal("no reload duration histogram")
	}
	b := f.GetMetric()[0].GetHistogram().GetBucket()
	// The text format lists the +Inf bucket last.
	if len(b) < 2 || b[0].GetUpperBound() != 0.001 || b[len(b)-2].GetUpperBound() != 10 {
		t.Errorf("buckets %v, want 1ms to 10s", b)
	}
}

func TestDegraded(t *testing.T) {
	m := metrics.New(registry.NewHandle(nil), nil)
	for _, step := range []struct {
		on   *bool
		want float64
	}{{nil, 0}, {ptr(true), 1}, {ptr(false), 0}} {
		if step.on != nil {
			m.SetDegraded(*step.on)
		}
		if got := value(t, scrape(t, m.Handler()), "awakend_config_degraded", nil); got != step.want {
			t.Errorf("awakend_config_degraded = %v, want %v", got, step.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestWatcherUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status *reload.WatcherStatus // nil: no watcher func
		want   float64               // -1: absent
	}{
		{"no watcher func", nil, -1},
		{"no directory watched", &reload.WatcherStatus{Mode: reload.ModeOff}, -1},
		{"fsnotify up", &reload.WatcherStatus{Up: true, Mode: reload.ModeFsnotify, Dirs: 3}, 1},
		{"polling", &reload.WatcherStatus{Mode: reload.ModePolling, LastError: "too many open files"}, 0},
		{"tree up, files up", &reload.WatcherStatus{Up: true, Mode: reload.ModeFsnotify, Files: 2, FilesUp: true}, 1},
		{"tree up, files down", &reload.WatcherStatus{Up: true, Mode: reload.ModeFsnotify, Files: 2, FilesError: "watch /etc/tls: permission denied"}, 0},
		{"no tree (a fleet), files up", &reload.WatcherStatus{Mode: reload.ModeOff, Files: 1, FilesUp: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w func() reload.WatcherStatus
			if tc.status != nil {
				w = func() reload.WatcherStatus { return *tc.status }
			}
			fams := scrape(t, metrics.New(registry.NewHandle(nil), w).Handler())
			_, present := sample(fams, "awakend_watcher_up", nil)
			if tc.want < 0 {
				if present {
					t.Fatal("awakend_watcher_up present, want absent")
				}
				return
			}
			if got := value(t, fams, "awakend_watcher_up", nil); got != tc.want {
				t.Errorf("watcher_up = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRuntimeCollectorsAndNilHandle(t *testing.T) {
	fams := scrape(t, metrics.New(nil, nil).Handler())
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for _, name := range []string{"awakend_registry_version", "awakend_registry_resources"} {
		if fams[name] != nil {
			t.Errorf("%s present without a handle", name)
		}
	}
}

func TestMetricsStayOffTheDefaultRegistry(t *testing.T) {
	metrics.New(registry.NewHandle(nil), nil)
	metrics.New(registry.NewHandle(nil), nil) // a second one must not panic on duplicate registration
}
