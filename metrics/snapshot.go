package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

var (
	versionDesc = prometheus.NewDesc(namespace+"_registry_version",
		"Version of the registry snapshot being served (1 at start-up, one more per applied change).", nil, nil)
	resourcesDesc = prometheus.NewDesc(namespace+"_registry_resources",
		"Resources in the registry snapshot being served, by kind (providers, models, model_pools, agents).",
		[]string{"kind"}, nil)
	watcherUpDesc = prometheus.NewDesc(namespace+"_watcher_up",
		"Whether every directory of the config tree and every input file outside it (a TLS pair, the settings file) is watched for changes (1), or some changes are noticed only by the periodic rescan (0). Absent when nothing is watched.",
		nil, nil)
)

// snapshotCollector reads the serving snapshot and the watcher's health at
// scrape time. Each scrape reads one snapshot, so the version and the counts
// agree.
type snapshotCollector struct {
	handle  *registry.Handle
	watcher func() reload.WatcherStatus
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- versionDesc
	ch <- resourcesDesc
	ch <- watcherUpDesc
}

// Collect implements prometheus.Collector.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	if c.handle != nil {
		if snap := c.handle.Current(); snap != nil {
			ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, float64(snap.Version))
			for _, k := range []struct {
				kind string
				n    int
			}{
				{registry.NSProviders, len(snap.Set.ProviderIDs())},
				{registry.NSModels, len(snap.Set.ModelIDs())},
				{registry.NSModelPools, len(snap.Set.PoolIDs())},
				{registry.NSAgents, len(snap.Set.AgentIDs())},
				{registry.NSClients, len(snap.Set.ClientIDs())},
			} {
				ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, float64(k.n), k.kind)
			}
		}
	}
	if c.watcher != nil {
		if ws := c.watcher(); ws.Mode != reload.ModeOff || ws.Files > 0 {
			up := 0.0
			if ws.AllUp() {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(watcherUpDesc, prometheus.GaugeValue, up)
		}
	}
}
