package config

import (
	"testing"
	"testing/fstest"

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

func TestBenchDirIsValid(t *testing.T) {
	c, err := Load(benchDir(), benchOptions)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers) != scaleset.Providers || len(c.Models) != scaleset.Models || len(c.Pools) != scaleset.Pools || len(c.Agents) != scaleset.Agents {
		t.Fatalf("got %d providers, %d models, %d pools, %d agents", len(c.Providers), len(c.Models), len(c.Pools), len(c.Agents))
	}
	if _, err := c.Build(nil, benchFactory); err != nil {
		t.Fatal(err)
	}
}
