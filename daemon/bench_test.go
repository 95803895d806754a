package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/reload"
)

// writeLargeDir writes 100 providers, 1,000 models, 50 pools and 10,000
// agents over 500 files and returns the directory.
func writeLargeDir(b *testing.B) string {
	dir := b.TempDir()
	var p strings.Builder
	p.WriteString("providers:\n")
	for i := range 100 {
		fmt.Fprintf(&p, "  - {id: provider-%03d, adapter: openai, base_url: \"https://llm-%03d.example.com/v1\", api_key: k%d}\n", i, i, i)
	}
	os.WriteFile(filepath.Join(dir, "providers.yaml"), []byte(p.String()), 0o644)
	for f := range 10 {
		var m strings.Builder
		m.WriteString("models:\n")
		for i := f * 100; i < f*100+100; i++ {
			fmt.Fprintf(&m, "  - id: model-%04d\n    provider_id: provider-%03d\n    upstream_model: up-%d\n    context_window: 128000\n    max_output_tokens: 16384\n    knowledge_cutoff: 2025-06\n",
				i, i%100, i)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("models-%02d.yaml", f)), []byte(m.String()), 0o644)
	}
	var pl strings.Builder
	pl.WriteString("model_pools:\n")
	for i := range 50 {
		fmt.Fprintf(&pl, "  - id: pool-%02d\n    members: [{model_id: model-%04d, weight: 2}, {model_id: model-%04d}]\n", i, i, i+500)
	}
	os.WriteFile(filepath.Join(dir, "pools.yaml"), []byte(pl.String()), 0o644)
	os.MkdirAll(filepath.Join(dir, "agents"), 0o755)
	for f := range 488 {
		writeAgents(dir, f, "")
	}
	// A directory in place for a while, as a daemon's is: its files'
	// times are not too recent for a reload to trust their stat.
	past := time.Now().Add(-time.Hour)
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error { return os.Chtimes(p, past, past) })
	return dir
}

// writeAgents writes agent file f (agents f*21 … up to 10,000), with a
// marker in each system prompt.
func writeAgents(dir string, f int, marker string) {
	var a strings.Builder
	a.WriteString("agents:\n")
	for i := f * 21; i < min(f*21+21, 10000); i++ {
		target := fmt.Sprintf("model-%04d", i%1000)
		if i%10 == 0 {
			target = fmt.Sprintf("pool-%02d", i%50)
		}
		fmt.Fprintf(&a, "  - id: agent-%05d\n    model_id: %s\n    system_prompt: \"You are agent %d.%s\"\n    reasoning_effort: medium\n    delegates: [agent-%05d]\n",
			i, target, i, marker, (i+1)%10000)
	}
	os.WriteFile(filepath.Join(dir, "agents", fmt.Sprintf("a-%03d.yaml", f)), []byte(a.String()), 0o644)
}

// BenchmarkOneFileEdit measures a reload after one agent file of the
// 10,000-agent directory changed: stat every file, read and decode the
// edited one, merge, link and validate the whole, diff and swap (the work
// of one applied reload).
func BenchmarkOneFileEdit(b *testing.B) {
	dir := writeLargeDir(b)
	a := NewApplier(dir, config.Options{Cache: config.NewCache()}, provider.New)
	ctx := context.Background()
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied {
		b.Fatal(res.Err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		writeAgents(dir, 7, fmt.Sprint(" edit ", i))
		b.StartTimer()
		res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch})
		if res.Outcome != reload.OutcomeApplied || res.Changes != "~21 agents (system_prompt)" {
			b.Fatalf("%s %s %v", res.Outcome, res.Changes, res.Err)
		}
	}
}

// BenchmarkSaveToApplied measures, through the real watcher and reload
// loop, the time from a file save to the new version being served, over
// 100 edits of the example directory. The debounce is reported apart:
// save-to-applied minus the debounce is what awakend adds.
func BenchmarkSaveToApplied(b *testing.B) {
	const debounce = 50 * time.Millisecond
	dir := b.TempDir()
	for _, f := range []string{"providers.yaml", "models.yaml", "agents/assistant.yaml", "agents/researcher.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", "configs", f))
		if err != nil {
			b.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	a := NewApplier(dir, config.Options{}, provider.New)
	if res := a.Apply(context.Background(), reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied {
		b.Fatal(res.Err)
	}
	applied := make(chan reload.Result, 1)
	loop := reload.New(a.Apply, reload.Options{
		Dir: dir, Debounce: debounce, MaxWait: time.Second, RescanInterval: -1,
		OnResult: func(r reload.Result) {
			if r.Outcome == reload.OutcomeApplied {
				applied <- r
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { loop.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	for loop.Status().Watcher.Mode != reload.ModeFsnotify {
		time.Sleep(time.Millisecond) // the watcher comes up as Run starts
	}

	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for range 100 {
			content := fmt.Sprintf("agents:\n  - {id: extra, model_id: mock-fast, system_prompt: \"edit %d\"}\n", len(lat))
			t0 := time.Now()
			if err := os.WriteFile(filepath.Join(dir, "agents", "extra.yaml"), []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
			select {
			case <-applied:
			case <-time.After(10 * time.Second):
				b.Fatal("edit not applied within 10 s")
			}
			lat = append(lat, time.Since(t0))
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	b.ReportMetric(float64(debounce.Microseconds())/1000, "debounce-ms")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64((pct(0.99)-debounce).Microseconds())/1000, "p99-over-debounce-ms")
}
