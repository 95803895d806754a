package registry

import (
	"fmt"
	"sync"
	"testing"
)

// rwHandle is the RWMutex-guarded handle awaken uses (parking_lot RwLock),
// kept here only to compare read paths in one run.
type rwHandle struct {
	mu   sync.RWMutex
	snap Snapshot
}

func (h *rwHandle) current() Snapshot {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.snap
}

// BenchmarkSnapshotRead compares the lock-free read path with an RWMutex
// one. Run with -cpu 1,2,4 to see contention.
func BenchmarkSnapshotRead(b *testing.B) {
	set := seedSet(b)
	b.Run("atomic", func(b *testing.B) {
		h := NewHandle(set)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var v uint64
			for pb.Next() {
				v += h.Current().Version
			}
			_ = v
		})
	})
	b.Run("rwmutex", func(b *testing.B) {
		h := &rwHandle{snap: Snapshot{Version: 1, Set: set}}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var v uint64
			for pb.Next() {
				v += h.current().Version
			}
			_ = v
		})
	})
}

func TestSnapshotReadDoesNotAllocate(t *testing.T) {
	h := NewHandle(seedSet(t))
	if n := testing.AllocsPerRun(1000, func() { _ = h.Current().Set }); n != 0 {
		t.Fatalf("Current allocates %v times per call", n)
	}
}

// largeUpdate is the benchmark registry: 100 providers, 1,000 models,
// 50 pools and 10,000 agents, every agent delegating and every tenth on a
// pool.
func largeUpdate() Update {
	var u Update
	for i := range 100 {
		p := provider(fmt.Sprintf("provider-%03d", i))
		p.Spec.Adapter = "openai"
		p.Spec.BaseURL = fmt.Sprintf("https://llm-%03d.example.com/v1", i)
		u.Providers = append(u.Providers, p)
	}
	for i := range 1000 {
		m := model(fmt.Sprintf("model-%04d", i), fmt.Sprintf("provider-%03d", i%100))
		m.ContextWindow, m.MaxOutputTokens = u32(128000), u32(16384)
		m.KnowledgeCutoff = "2025-06"
		m.InputTokenPricePerMillionUSD, m.OutputTokenPricePerMillionUSD = f64(2.5), f64(10)
		m.Modalities.Input = []Modality{ModalityText, ModalityImage}
		u.Models = append(u.Models, m)
	}
	for i := range 50 {
		u.Pools = append(u.Pools, pool(fmt.Sprintf("pool-%02d", i),
			fmt.Sprintf("model-%04d", i), fmt.Sprintf("model-%04d", i+50), fmt.Sprintf("model-%04d", i+100)))
	}
	for i := range 10000 {
		target := fmt.Sprintf("model-%04d", i%1000)
		if i%10 == 0 {
			target = fmt.Sprintf("pool-%02d", i%50)
		}
		a := agent(fmt.Sprintf("agent-%05d", i), target)
		a.Delegates = []string{fmt.Sprintf("agent-%05d", (i+1)%10000)}
		a.ReasoningEffort = &ReasoningEffort{Level: EffortMedium}
		u.Agents = append(u.Agents, a)
	}
	return u
}

// BenchmarkValidate measures validating the whole large set (spec rules and
// graph), the work every reload does after parsing.
func BenchmarkValidate(b *testing.B) {
	s, err := Rebuild(nil, largeUpdate())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := s.Diagnose(); len(d) != 0 {
			b.Fatal(d)
		}
	}
}

// BenchmarkRebuild measures assembling and validating the large set from an
// update, as a reload does.
func BenchmarkRebuild(b *testing.B) {
	u := largeUpdate()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Rebuild(nil, u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatch measures patching 20 agents' prompts in the large set,
// validation and the diff included: what a one-file edit costs the
// registry.
func BenchmarkPatch(b *testing.B) {
	s, err := Rebuild(nil, largeUpdate())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var p Patch
		for _, id := range s.AgentIDs()[100:120] {
			a, _ := s.Agent(id)
			a.SystemPrompt = fmt.Sprintf("edit %d", i)
			p.Put.Agents = append(p.Put.Agents, a)
		}
		next, err := s.Patch(p)
		if err != nil {
			b.Fatal(err)
		}
		if d := Diff(s, next); len(d) != 20 {
			b.Fatal(d)
		}
		s = next
	}
}
