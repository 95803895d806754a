package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/lastgood"
	"github.com/awakend/awakend/reload"
)

// With the daemon's Cache, a reload reads only the edited file; what goes
// live is still kept whole, the files it did not read again included.
func TestApplyKeepsWithCache(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "p.yaml", "providers:\n  - {id: p, adapter: mock}\n")
	write(t, dir, "m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	past := time.Now().Add(-time.Hour)
	for _, name := range []string{"p.yaml", "m.yaml"} {
		if err := os.Chtimes(filepath.Join(dir, name), past, past); err != nil {
			t.Fatal(err)
		}
	}
	a := NewApplier(dir, config.Options{Cache: config.NewCache()}, nil)
	var kept []lastgood.Saved
	a.Keep = func(s lastgood.Saved) { kept = append(kept, s) }
	ctx := context.Background()
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied {
		t.Fatal(res)
	}
	write(t, dir, "m.yaml", "models:\n  - {id: m2, provider_id: p, upstream_model: u}\n")
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch}); res.Outcome != reload.OutcomeApplied {
		t.Fatal(res)
	}
	if len(kept) != 2 {
		t.Fatalf("kept %d configurations after an applied edit, want 2", len(kept))
	}
	var got []string
	for _, f := range kept[1].Files {
		got = append(got, f.Path+"="+string(f.Data))
	}
	if want := []string{
		"m.yaml=models:\n  - {id: m2, provider_id: p, upstream_model: u}\n",
		"p.yaml=providers:\n  - {id: p, adapter: mock}\n",
	}; !slices.Equal(got, want) {
		t.Fatalf("kept %q, want %q", got, want)
	}
}
