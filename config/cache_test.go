package config

import (
	"reflect"
	"testing"
	"testing/fstest"

	"go.yaml.in/yaml/v3"
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
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
			t.Fatalf("%s: cached load differs:\n got %+v, %v\nwant %+v, %v", st.name, got, gotErr, want, wantErr)
		}
	}
	if n := cache.Len(); n != 2 {
		t.Fatalf("cache holds %d files after a deletion, want 2", n)
	}
}

// The cache must hand back the parsed documents of unchanged files rather
// than parse them again.
func TestCacheReusesParse(t *testing.T) {
	c := NewCache()
	data := []byte("providers:\n  - {id: p, adapter: mock}\n")
	var first, second []any
	c.parse("p.yaml", data, func(doc *yaml.Node) { first = append(first, doc) })
	c.parse("p.yaml", append([]byte(nil), data...), func(doc *yaml.Node) { second = append(second, doc) })
	if len(first) != 1 || first[0] != second[0] {
		t.Fatal("unchanged bytes were parsed again")
	}
	c.parse("p.yaml", []byte("providers: []\n"), func(doc *yaml.Node) { second = append(second, doc) })
	if second[1] == first[0] {
		t.Fatal("changed bytes were served from the cache")
	}
}
