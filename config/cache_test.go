package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/awakend/awakend/internal/scaleset"
	"github.com/awakend/awakend/registry"
)

// A cached load must give exactly what an uncached load gives, through
// edits, syntax errors and deleted files.
func TestCacheMatchesUncachedLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"p.yaml": {Data: []byte("providers:\n  - {id: p, adapter: mock}\n")},
		"m.yaml": {Data: []byte("models:\n  - {id: m, provider_id: p, upstream_model: u}\n---\nagents:\n  - {id: a, model_id: m}\n")},
		"x.yaml": {Data: []byte("agents:\n  - {id: b, model_id: m}\n")},
	}
	cache := NewCache()
	steps := []struct {
		name string
		edit func()
	}{
		{"first load", func() {}},
		{"unchanged", func() {}},
		{"edit one file", func() {
			fsys["x.yaml"] = &fstest.MapFile{Data: []byte("agents:\n  - {id: b, model_id: m, system_prompt: hi}\n")}
		}},
		{"syntax error", func() { fsys["x.yaml"] = &fstest.MapFile{Data: []byte("agents:\n  - {id: b, model_id: m\n")} }},
		{"syntax error again", func() {}},
		{"graph error", func() { fsys["x.yaml"] = &fstest.MapFile{Data: []byte("agents:\n  - {id: b, model_id: ghost}\n")} }},
		{"file deleted", func() { delete(fsys, "x.yaml") }},
	}
	for _, st := range steps {
		st.edit()
		want, wantErr := Load(fsys, Options{})
		got, gotErr := Load(fsys, Options{Cache: cache})
		if !reflect.DeepEqual(uncached(got), uncached(want)) || !reflect.DeepEqual(gotErr, wantErr) {
			t.Fatalf("%s: cached load differs:\n got %+v, %v\nwant %+v, %v", st.name, got, gotErr, want, wantErr)
		}
	}
	if n := cache.Len(); n != 2 {
		t.Fatalf("cache holds %d files after a deletion, want 2", n)
	}
}

// uncached is c without what a load with a cache records for Build.
func uncached(c *Config) *Config {
	if c == nil {
		return nil
	}
	u := *c
	u.cache, u.lists = nil, nil // units are compared: they hold the specs
	return &u
}

// countingFS counts the files opened through it.
type countingFS struct {
	fs.FS
	mu     sync.Mutex
	opened map[string]int
}

func (c *countingFS) Open(name string) (fs.File, error) {
	c.mu.Lock()
	c.opened[name]++
	c.mu.Unlock()
	return c.FS.Open(name)
}

// Stat is the directory's, not counted: a stat is not a read.
func (c *countingFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(c.FS, name) }

func (c *countingFS) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.opened
	c.opened = map[string]int{}
	return o
}

// A reload reads only the files whose stat changed, or was too recent to
// trust, and decodes only those whose bytes changed, or whose references
// read something else.
func TestCacheReadsAndDecodesOnlyChanges(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	write := func(name, content string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write("p.yaml", "providers:\n  - {id: p, adapter: mock, api_key: \"${file:key.txt}\"}\n", old)
	write("key.txt", "k1\n", old)
	write("m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u}\n", old)
	write("a.yaml", "agents:\n  - {id: a, model_id: m, system_prompt: \"${PROMPT}\"}\n", old)
	env := map[string]string{"PROMPT": "one"}
	fsys := &countingFS{FS: os.DirFS(dir), opened: map[string]int{}}
	cache := NewCache()
	opts := Options{Cache: cache, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	load := func() *Config {
		t.Helper()
		c, err := Load(fsys, opts)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	units := func() map[string]*unit {
		out := map[string]*unit{}
		for name, e := range cache.files {
			out[name] = e.unit
		}
		return out
	}

	first := load()
	before := units()
	fsys.reset()
	if load().Fingerprint != first.Fingerprint {
		t.Fatal("fingerprint changed without a change")
	}
	// Nothing read but the referenced file (whose bytes decide), nothing
	// decoded.
	if o := fsys.reset(); o["key.txt"] == 0 || o["p.yaml"]+o["m.yaml"]+o["a.yaml"] != 0 {
		t.Fatalf("unchanged directory: opened %v, want key.txt only", o)
	}
	if !maps.Equal(units(), before) {
		t.Fatal("unchanged files were decoded again")
	}

	// An edit with a fresh mtime: that file is read and decoded; the
	// others are not.
	write("m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u2}\n", time.Now())
	if c := load(); c.Models()[0].UpstreamModel != "u2" {
		t.Fatalf("upstream_model %q after the edit", c.Models()[0].UpstreamModel)
	}
	if o := fsys.reset(); o["m.yaml"] != 1 || o["p.yaml"]+o["a.yaml"] != 0 {
		t.Fatalf("after editing m.yaml: opened %v", o)
	}
	after := units()
	if after["m.yaml"] == before["m.yaml"] || after["p.yaml"] != before["p.yaml"] || after["a.yaml"] != before["a.yaml"] {
		t.Fatal("decoded other files than the edited one")
	}
	// Its mtime is too recent to trust: read again next time (same
	// bytes: not decoded again).
	load()
	if o := fsys.reset(); o["m.yaml"] != 1 {
		t.Fatalf("a file modified just now was not read again: opened %v", o)
	}
	if units()["m.yaml"] != after["m.yaml"] {
		t.Fatal("same bytes decoded again")
	}

	// A same-size edit that keeps the old mtime (a clock set back, a copy
	// with its times) is not seen: the stat decides, as in git and make;
	// a load with Reread sees it.
	write("m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u3}\n", old)
	load() // reads m.yaml (its last read was too soon after its write) and trusts its stat from now on
	write("m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u4}\n", old)
	if c := load(); c.Models()[0].UpstreamModel != "u3" {
		t.Fatalf("upstream_model %q: a file with its stat unchanged was read", c.Models()[0].UpstreamModel)
	}
	opts.Reread = true
	if c := load(); c.Models()[0].UpstreamModel != "u4" {
		t.Fatalf("upstream_model %q with Reread", c.Models()[0].UpstreamModel)
	}
	opts.Reread = false

	// A changed referenced file or variable is seen.
	write("key.txt", "k2\n", old)
	env["PROMPT"] = "two"
	c := load()
	if c.Providers()[0].APIKey != "k2" || c.Agents()[0].SystemPrompt != "two" {
		t.Fatalf("api_key %q, system_prompt %q after changing their inputs", c.Providers()[0].APIKey, c.Agents()[0].SystemPrompt)
	}
	if c.Fingerprint == first.Fingerprint {
		t.Fatal("fingerprint unchanged after a referenced file changed")
	}
}

// randomEditSteps is how many random edits TestCacheMatchesColdLoadOverRandomEdits
// makes: each costs two loads of the whole scale set.
var randomEditSteps = 30

// Over random edits of the scale set with clients, a load with the cache
// gives exactly what a cold load gives: the same config, or the same
// diagnostics; and a Build of it on the set built before (a patch of that
// set, for the cached load) gives the same registry, or the same
// diagnostics, and the same Diff from the set before.
func TestCacheMatchesColdLoadOverRandomEdits(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, data := range scaleset.WithClients() {
		fsys["conf.d/"+name] = &fstest.MapFile{Data: data}
	}
	names := slices.Sorted(maps.Keys(fsys))
	rng := rand.New(rand.NewPCG(1, 2))
	cache := NewCache()
	sum0 := sha256.Sum256([]byte(scaleset.ClientKey(0)))
	edits := []struct {
		name string
		edit func(name string, data string) (string, bool) // new contents; false deletes the file
	}{
		{"prompt", func(_, d string) (string, bool) {
			return strings.Replace(d, "Answer briefly", fmt.Sprintf("Answer in %d words", rng.IntN(100)), 1), true
		}},
		{"missing model", func(_, d string) (string, bool) {
			return strings.Replace(d, "model_id: model-", "model_id: modle-", 1), true
		}},
		{"duplicate agent", func(_, d string) (string, bool) {
			return strings.Replace(d, "agents:\n", "agents:\n  - {id: agent-7, model_id: model-1, delegates: [agent-0]}\n", 1), true
		}},
		{"new agent", func(_, d string) (string, bool) {
			return strings.Replace(d, "agents:\n", fmt.Sprintf("agents:\n  - {id: agent-new-%d, model_id: pool-1}\n", rng.IntN(1000)), 1), true
		}},
		{"new model", func(_, d string) (string, bool) {
			return strings.Replace(d, "models:\n", fmt.Sprintf("models:\n  - {id: model-new-%d, provider_id: provider-%d, upstream_model: u}\n", rng.IntN(1000), rng.IntN(120)), 1), true
		}},
		{"provider", func(_, d string) (string, bool) {
			return strings.Replace(d, "timeout_secs: 120", fmt.Sprintf("timeout_secs: %d", rng.IntN(3)), 1), true
		}},
		{"client key taken", func(_, d string) (string, bool) {
			return regexp.MustCompile(`key_sha256: [0-9a-f]+`).ReplaceAllLiteralString(d, "key_sha256: "+hex.EncodeToString(sum0[:])), true
		}},
		{"client key changed", func(_, d string) (string, bool) {
			k := sha256.Sum256([]byte(fmt.Sprint(rng.Int())))
			i := strings.Index(d, "key_sha256: ") + len("key_sha256: ")
			return d[:i] + hex.EncodeToString(k[:]) + d[i+64:], true
		}},
		{"client scope", func(_, d string) (string, bool) {
			return strings.Replace(d, "models: [agent-", "models: [agnet-", 1), true
		}},
		{"agent renamed", func(_, d string) (string, bool) {
			return renameFirst(d, "agent-renamed-"+strconv.Itoa(rng.IntN(1000))), true
		}},
		{"agent renamed to a taken id", func(_, d string) (string, bool) { return renameFirst(d, "agent-7"), true }},
		{"model renamed to an agent's id", func(_, d string) (string, bool) {
			return strings.Replace(d, "- id: model-", "- id: agent-", 1), true
		}},
		{"syntax error", func(_, d string) (string, bool) { return d + "  - {id: broken\n", true }},
		{"unknown key", func(_, d string) (string, bool) { return d + "provider: []\n", true }},
		{"wrong type", func(_, d string) (string, bool) {
			return strings.Replace(d, "max_rounds: 8", "max_rounds: eight", 1), true
		}},
		{"delete", func(string, string) (string, bool) { return "", false }},
		{"restore", nil}, // put back the original of a changed file
		{"restore", nil},
	}
	original := maps.Clone(fsys)
	opts := Options{LookupEnv: scaleset.LookupEnv}
	warmOpts := opts
	warmOpts.Cache = cache
	load := func(o Options) *registry.Set {
		c, err := Load(fsys, o)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Build(nil, benchFactory)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	coldSet, warmSet := load(opts), load(warmOpts)
	applied := 0
	var changed []string
	for step := range randomEditSteps {
		e := edits[rng.IntN(len(edits))]
		name := names[rng.IntN(len(names))]
		restore := func() { // a changed file, put back as it was
			i := rng.IntN(len(changed))
			fsys[changed[i]] = original[changed[i]]
			name, changed = changed[i], slices.Delete(changed, i, i+1)
		}
		for len(changed) > 1 || len(changed) > 0 && rng.IntN(2) == 0 {
			restore() // and edit another: most edits break the load, a few at a time build
			name = names[rng.IntN(len(names))]
		}
		if e.edit == nil && len(changed) > 0 {
			restore()
		} else if !slices.Contains(changed, name) {
			changed = append(changed, name)
		}
		if e.edit == nil {
			fsys[name] = original[name]
		} else if data, ok := e.edit(name, string(fileData(fsys, name))); ok {
			fsys[name] = &fstest.MapFile{Data: []byte(data)}
		} else {
			delete(fsys, name)
		}
		cold, coldErr := Load(fsys, opts)
		warm, warmErr := Load(fsys, warmOpts)
		if !reflect.DeepEqual(diagnostics(t, warmErr), diagnostics(t, coldErr)) {
			t.Fatalf("step %d (%s %s): diagnostics differ:\n%v\nwant\n%v", step, e.name, name, warmErr, coldErr)
		}
		if (warm == nil) != (cold == nil) {
			t.Fatalf("step %d (%s %s): warm %v, cold %v", step, e.name, name, warm != nil, cold != nil)
		}
		if cold == nil {
			if warmErr.(*Error).Fingerprint != coldErr.(*Error).Fingerprint {
				t.Fatalf("step %d: fingerprints differ", step)
			}
			continue
		}
		if !reflect.DeepEqual(warm.Providers(), cold.Providers()) || !reflect.DeepEqual(warm.Models(), cold.Models()) ||
			!reflect.DeepEqual(warm.Pools(), cold.Pools()) || !reflect.DeepEqual(warm.Agents(), cold.Agents()) ||
			!reflect.DeepEqual(warm.Clients(), cold.Clients()) ||
			!slices.Equal(warm.Files, cold.Files) || warm.Fingerprint != cold.Fingerprint || !reflect.DeepEqual(warm.index, cold.index) {
			t.Fatalf("step %d (%s %s): configs differ", step, e.name, name)
		}
		if _, ok := warm.patch(warmSet, benchFactory); !ok {
			t.Fatalf("step %d (%s %s): the cached load's Build would rebuild, not patch", step, e.name, name)
		}
		ws, werr := warm.Build(warmSet, benchFactory)
		cs, cerr := cold.Build(coldSet, benchFactory)
		if !reflect.DeepEqual(diagnostics(t, werr), diagnostics(t, cerr)) {
			t.Fatalf("step %d (%s %s): Build diagnostics differ:\n%v\nwant\n%v", step, e.name, name, werr, cerr)
		}
		if cerr == nil {
			applied++
			if !sameSet(ws, cs) {
				t.Fatalf("step %d (%s %s): registries differ", step, e.name, name)
			}
			if wd, cd := registry.Diff(warmSet, ws), registry.Diff(coldSet, cs); !reflect.DeepEqual(wd, cd) {
				t.Fatalf("step %d (%s %s): Diff %v, want %v", step, e.name, name, wd, cd)
			}
			warmSet, coldSet = ws, cs
		}
		// Positions come from the merged field tables.
		for _, a := range []string{"agent-0", "agent-9999", "agent-4321"} {
			ref := registry.Ref{Namespace: registry.NSAgents, ID: a}
			wp, wok := warm.Position(ref, "model_id")
			cp, cok := cold.Position(ref, "model_id")
			if wp != cp || wok != cok {
				t.Fatalf("step %d: position of %s: %v, want %v", step, a, wp, cp)
			}
		}
	}
	t.Logf("%d of %d edits built", applied, randomEditSteps)
	if applied < randomEditSteps/10 {
		t.Fatalf("%d of %d edits built: the registries were hardly compared", applied, randomEditSteps)
	}
}

// renameFirst gives the first agent of a scale-set file the id id.
func renameFirst(data, id string) string {
	at := regexp.MustCompile(`- id: agent-\d+\n`).FindStringIndex(data)
	if at == nil {
		return data
	}
	return data[:at[0]] + "- id: " + id + "\n" + data[at[1]:]
}

// diagnostics returns the diagnostics of a *Error, nil for nil.
func diagnostics(t *testing.T, err error) []Diagnostic {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, not *Error: %v", err, err)
	}
	return e.Diagnostics
}

// sameSet reports whether two sets hold the same specs under the same ids,
// and find the same client by each key.
func sameSet(a, b *registry.Set) bool {
	same := func(ids, other []string, eq func(string) bool) bool {
		return slices.Equal(ids, other) && !slices.ContainsFunc(ids, func(id string) bool { return !eq(id) })
	}
	return same(a.ProviderIDs(), b.ProviderIDs(), func(id string) bool {
		p, _ := a.Provider(id)
		q, _ := b.Provider(id)
		return reflect.DeepEqual(p.Spec, q.Spec)
	}) && same(a.ModelIDs(), b.ModelIDs(), func(id string) bool {
		m, _ := a.Model(id)
		n, _ := b.Model(id)
		return reflect.DeepEqual(m, n)
	}) && same(a.PoolIDs(), b.PoolIDs(), func(id string) bool {
		p, _ := a.Pool(id)
		q, _ := b.Pool(id)
		return reflect.DeepEqual(p, q)
	}) && same(a.AgentIDs(), b.AgentIDs(), func(id string) bool {
		x, _ := a.Agent(id)
		y, _ := b.Agent(id)
		return reflect.DeepEqual(x, y)
	}) && same(a.ClientIDs(), b.ClientIDs(), func(id string) bool {
		x, _ := a.Client(id)
		y, _ := b.Client(id)
		h, _ := x.KeyHash()
		bx, _ := a.ClientByKey(h)
		by, _ := b.ClientByKey(h)
		return reflect.DeepEqual(x, y) && bx.ID == id && by.ID == id
	})
}

func fileData(fsys fstest.MapFS, name string) []byte {
	if f := fsys[name]; f != nil {
		return f.Data
	}
	return nil
}
