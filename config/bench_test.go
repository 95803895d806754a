package config

import (
	"testing"
	"testing/fstest"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/internal/scaleset"
	"github.com/awakend/awakend/registry"
)

// benchDir is the scale set (internal/scaleset: 100 providers, 1,000
// models, 50 pools and 10,000 agents in 500 files) in memory, under
// conf.d/.
func benchDir() fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range scaleset.Files() {
		fsys["conf.d/"+name] = &fstest.MapFile{Data: data}
	}
	return fsys
}

var benchOptions = Options{LookupEnv: func(name string) (string, bool) {
	if name == scaleset.KeyVar {
		return "sk-bench-0123456789", true
	}
	return "", false
}}

type benchExecutor struct{}

func (benchExecutor) Name() string { return "bench" }

func benchFactory(registry.ProviderSpec) (registry.Executor, error) { return benchExecutor{}, nil }

// BenchmarkLoad measures a cold Load and Build of the whole directory.
func BenchmarkLoad(b *testing.B) {
	fsys := benchDir()
	b.ReportAllocs()
	for b.Loop() {
		c, err := Load(fsys, benchOptions)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Build(nil, benchFactory); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkYAMLParse is the floor BenchmarkLoad is measured against: a bare
// yaml.Unmarshal of the same files into yaml.Node.
func BenchmarkYAMLParse(b *testing.B) {
	fsys := benchDir()
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range fsys {
			var n yaml.Node
			if err := yaml.Unmarshal(f.Data, &n); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLoadWithClients measures a cold Load and Build of the scale set
// with 10,000 clients against a bare single-threaded parse of the same
// files into yaml.Node, alternating the two in one run: load-ms, parse-ms
// and their ratio, load/parse.
func BenchmarkLoadWithClients(b *testing.B) {
	fsys := fstest.MapFS{}
	for name, data := range scaleset.WithClients() {
		fsys["conf.d/"+name] = &fstest.MapFile{Data: data}
	}
	opts := Options{LookupEnv: scaleset.LookupEnv}
	var load, parse time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, f := range fsys {
			var n yaml.Node
			if err := yaml.Unmarshal(f.Data, &n); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		c, err := Load(fsys, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Build(nil, benchFactory); err != nil {
			b.Fatal(err)
		}
		load, parse = load+time.Since(t1), parse+t1.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(load.Seconds()*1000/n, "load-ms")
	b.ReportMetric(parse.Seconds()*1000/n, "parse-ms")
	b.ReportMetric(load.Seconds()/parse.Seconds(), "load/parse")
}

func TestBenchDirIsValid(t *testing.T) {
	c, err := Load(benchDir(), benchOptions)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers()) != scaleset.Providers || len(c.Models()) != scaleset.Models || len(c.Pools()) != scaleset.Pools || len(c.Agents()) != scaleset.Agents {
		t.Fatalf("got %d providers, %d models, %d pools, %d agents", len(c.Providers()), len(c.Models()), len(c.Pools()), len(c.Agents()))
	}
	if _, err := c.Build(nil, benchFactory); err != nil {
		t.Fatal(err)
	}
}
