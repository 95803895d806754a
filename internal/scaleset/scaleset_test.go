package scaleset

import (
	"crypto/sha256"
	"strconv"
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
	if len(cfg.Files) != FileCount || len(cfg.Providers()) != Providers || len(cfg.Models()) != Models || len(cfg.Pools()) != Pools || len(cfg.Agents()) != Agents {
		t.Fatalf("%d files: %d providers, %d models, %d pools, %d agents", len(cfg.Files), len(cfg.Providers()), len(cfg.Models()), len(cfg.Pools()), len(cfg.Agents()))
	}
}

func TestTheScaleSetWithClientsLoads(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, data := range WithClients() {
		fsys[name] = &fstest.MapFile{Data: data}
	}
	cfg, err := config.Load(fsys, config.Options{LookupEnv: LookupEnv})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Files) != FileCount || len(cfg.Agents()) != Agents || len(cfg.Clients()) != Clients {
		t.Fatalf("%d files: %d agents, %d clients", len(cfg.Files), len(cfg.Agents()), len(cfg.Clients()))
	}
	set, err := cfg.Build(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, ClientVarEvery, Clients - 1} {
		c, ok := set.ClientByKey(sha256.Sum256([]byte(ClientKey(n))))
		if !ok || c.ID != "client-"+strconv.Itoa(n) {
			t.Fatalf("key of client %d finds %q, %v", n, c.ID, ok)
		}
	}
}
