package scaleset

import (
	"testing"
	"testing/fstest"

	"github.com/awakend/awakend/config"
)

func TestTheScaleSetLoads(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, data := range Files() {
		fsys[name] = &fstest.MapFile{Data: data}
	}
	cfg, err := config.Load(fsys, config.Options{LookupEnv: func(k string) (string, bool) { return "sk-scale-0123456789", k == KeyVar }})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Files) != FileCount || len(cfg.Providers) != Providers || len(cfg.Models) != Models || len(cfg.Pools) != Pools || len(cfg.Agents) != Agents {
		t.Fatalf("%d files: %d providers, %d models, %d pools, %d agents", len(cfg.Files), len(cfg.Providers), len(cfg.Models), len(cfg.Pools), len(cfg.Agents))
	}
}
